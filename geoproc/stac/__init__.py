"""STAC output: items and collections from every raster geoproc touches, static catalogs and pgstac.

* :func:`create_item` (``items.py``): a pure function from a raster record (a ``cog`` task result,
  or a header record from :func:`raster_record`) to a STAC item dict.
* :func:`create_collection` (``collections.py``): a pure reduction of items into a collection.
* :class:`StaticCatalog` (``catalog.py``): a self-contained catalog written through fsspec.
* ``pgstac.py``: ``setup`` (``pypgstac migrate``), checked batch loading, DSN redaction.
* ``publish.py``: the options jobs share and the driver-side step that catalogs a stream of items.
"""

from .catalog import StaticCatalog
from .collections import CollectionStats, create_collection
from .header import raster_record
from .items import create_item, item_id
from .publish import StacOptions, publish

__all__ = ["CollectionStats", "StacOptions", "StaticCatalog", "create_collection", "create_item", "item_id",
           "publish", "raster_record"]
