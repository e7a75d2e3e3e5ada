"""Container inventories: sharded streaming listings, filters, mergeable summaries, raster headers.

The jobs that use these pieces are declared in :mod:`geoproc.jobs.inventory`
(``list_container`` and ``summarize_container``).
"""

from .filters import BlobFilter
from .listing import Blob, open_lister, plan_units
from .summary import Summary, bucket_of, extension_of

__all__ = ["Blob", "BlobFilter", "Summary", "bucket_of", "extension_of", "open_lister", "plan_units"]
