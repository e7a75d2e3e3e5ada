"""Helpers the test suite shares, imported one way: ``from kit import services`` (``tests`` is on the path).

Modules are named after what they hold:

* ``services``   — Azurite, PostgreSQL (+ pgstac) and ``dask`` command-line processes, started for real.
* ``rasters``    — synthetic GeoTIFFs and COGs, and GDAL's whole-array warp as a reference.
* ``debian``     — real-world files from Debian packages, downloaded once into a persistent cache.
* ``runner``     — a job's stages run handler by handler in this process (no Dask, no ledger).
* ``drivers``    — ``geoproc`` command-line processes and the process trees they start.
* ``faults``     — fault injection that needs more than a process kill (a worker killed mid-task).
* ``blobs``      — rasters uploaded to and hashed in a container.
* ``ledger``     — job ids and task counts as the tests compute them.
* ``polling``    — waiting for a condition another process brings about.
* ``stac``       — the validators every STAC test applies.
* ``inventory``  — the container layout the inventory tests list, and what its summary must say.
* ``testjobs``, ``reportjobs`` — job types only the tests use; they register on import.

Fixtures stay in the ``conftest.py`` files, where pytest finds them; they are thin wrappers of these.
"""
