"""Raster operations: validation rules, type detection, COG tiers and creation, tiled assembly, checks.

* reading: ``io`` (opening a URL inside a task), ``header`` (the one header record), ``crs``;
* validating: ``validate`` (the rules and their finding codes), ``detect`` (raster types);
* writing COGs: ``profiles`` (tiers and creation options), ``cog`` (rio-cogeo conversion), ``heap``
  (glibc tuning for GDAL's buffers), ``checks`` (what every output passes before it is published);
* large rasters: ``grid`` and ``tiling`` (the plan), ``warp`` (one tile), ``writers``, ``vrt``,
  ``overviews`` and ``assemble`` (one COG in bounded memory), ``stats`` (exact, mergeable statistics);
* ``collection`` (homogeneity), ``footprint``, ``quicklook``, ``samples``.

Everything here works on open rasterio datasets or local paths and knows nothing of Dask or the
ledger; the job declarations in :mod:`geoproc.jobs` call these functions from their handlers.
"""
