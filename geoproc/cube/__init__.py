"""Datacubes: NetCDF and Zarr sources opened the CF way (:mod:`.sources`), and Zarr v3 stores written
region by region (:mod:`.store`)."""
