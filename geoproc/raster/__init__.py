"""Raster operations: validation rules, type detection, COG tiers and creation, collections, samples.

Everything here works on open rasterio datasets or local paths and knows nothing of Dask or the
ledger; the job declarations in :mod:`geoproc.jobs` call these functions from their handlers.
"""
