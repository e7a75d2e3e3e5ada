"""STAC items from what geoproc already knows about a raster: a pure function of a result dict.

:func:`create_item` turns a *raster record* into a STAC 1.1 item (a JSON-able dict). The record is
exactly what a ``cog`` task returns (``output``, ``size``, ``sha256``, ``crs``, ``bounds``, ``shape``,
``transform``, ``count``, ``dtype``, ``nodata``, ``band_stats``, ``datetime``, ...), or what
:func:`geoproc.stac.header.raster_record` reads from a raster header, so no pixel is read twice.

What an item holds:

* ``geometry``: the valid-data footprint when the record carries one (``footprint``, GeoJSON in
  EPSG:4326), else the raster's bounds densified along their edges and reprojected to EPSG:4326;
* ``proj:code`` (or ``proj:wkt2`` when the CRS has no authority code), ``proj:shape``,
  ``proj:transform``, ``proj:bbox`` (projection v2.0.0);
* on the ``data`` asset: ``raster:bands`` with the raster extension's own keys (``nodata``,
  ``data_type``, ``statistics.minimum/maximum/mean/stddev/valid_percent``, ``histogram``), ``file:size``
  and ``file:checksum`` (a sha2-256 multihash, ``"1220" + hex``), and ``eo:bands`` for RGB(A) rasters;
* ``processing:software`` (geoproc, GDAL and rasterio versions) and ``processing:lineage`` (job id);
  ``version`` (version extension): the output's revision, when the record has one (``cog`` results);
  ``geoproc:job_id`` and ``geoproc:datetime_source`` say where the item and its datetime came from.

**Datetime rule** (first that applies; never a sentinel date): the ``datetime`` the caller gives
(``"2024-05-01T00:00:00Z"``, or ``"start/end"`` for a range); the record's ``datetime`` (the file's
``TIFFTAG_DATETIME`` or acquisition metadata); a date in the file name (``YYYYMMDD`` or
``YYYY-MM-DD``, read as midnight UTC); the source file's last-modified time (``last_modified``). A
record with none of these is refused with :class:`geoproc.errors.DatetimeMissing`.

**Item ids** (:func:`item_id`): the file's path relative to its source prefix, without a ``.tif``
suffix, when that is a plain name (``[A-Za-z0-9._-]``, e.g. ``elev``); otherwise the path with every
other run of characters (``/`` included) replaced by ``-``, plus ``-`` and the first 8 hex digits of
the sha256 of the relative path (``2024-01-tile-3fa2c1d0``). The same file always gets the same id and
two files never share one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from typing import Any

import pystac
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.file import FileExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import RasterBand, RasterExtension

from ..errors import BadDatetime, CrsMissing, DatetimeMissing, HrefMissing
from ..units import utc_iso
from ..version import __version__
from .footprint import bounds_geometry

log = logging.getLogger(__name__)

PROCESSING_SCHEMA = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
VERSION_SCHEMA = "https://stac-extensions.github.io/version/v1.2.0/schema.json"
COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
GEOTIFF_MEDIA_TYPE = "image/tiff; application=geotiff"
ASSET_KEY = "data"

_PLAIN = re.compile(r"^[A-Za-z0-9._-]+$")
_TIF = re.compile(r"\.tiff?$", re.IGNORECASE)
_DATE_IN_NAME = re.compile(r"(?<!\d)((?:19|20)\d{2})-?(0[1-9]|1[0-2])-?(0[1-9]|[12]\d|3[01])(?!\d)")
_RGB = ("red", "green", "blue", "alpha")


def item_id(relative_path: str) -> str:
    """The deterministic id of the item for a file at ``relative_path`` below its source prefix."""
    rel = relative_path.strip("/")
    if rel.endswith(".tif") and _PLAIN.match(rel[:-4]):
        return rel[:-4]
    slug = re.sub(r"[^A-Za-z0-9._]+", "-", _TIF.sub("", rel)).strip("-.") or "item"
    return f"{slug}-{hashlib.sha256(rel.encode()).hexdigest()[:8]}"


def multihash_sha256(hex_digest: str) -> str:
    """``file:checksum`` for a sha256 hex digest: multihash code 0x12, length 0x20, then the digest."""
    if not re.fullmatch(r"[0-9a-fA-F]{64}", hex_digest or ""):
        raise ValueError(f"not a sha256 hex digest: {hex_digest!r}")
    return "1220" + hex_digest.lower()


def parse_datetime(value: str) -> dt.datetime:
    """An ISO 8601 datetime (``Z`` allowed) or a date, as an aware UTC datetime.

    Raises:
        BadDatetime: ``value`` is not ISO 8601.
    """
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadDatetime(f"datetime {value!r} is not ISO 8601 (e.g. 2024-05-01T00:00:00Z)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def choose_datetime(record: dict[str, Any], given: str | None = None
                    ) -> tuple[dt.datetime | None, dt.datetime | None, dt.datetime | None, str]:
    """(datetime, start, end, source) by the documented rule; see the module docstring."""
    if given:
        if "/" in given:
            start_s, end_s = given.split("/", 1)
            start, end = parse_datetime(start_s), parse_datetime(end_s)
            if start > end:
                raise BadDatetime(f"datetime range {given!r} ends before it starts")
            return None, start, end, "user"
        return parse_datetime(given), None, None, "user"
    if record.get("datetime"):
        return parse_datetime(str(record["datetime"])), None, None, "metadata"
    names = [str(record.get(k) or "").rsplit("/", 1)[-1] for k in ("input", "output")]
    m = next((m for m in map(_DATE_IN_NAME.search, names) if m), None)
    if m:
        when = dt.datetime(int(m[1]), int(m[2]), int(m[3]), tzinfo=dt.UTC)
        return when, None, None, "filename"
    if record.get("last_modified"):
        return parse_datetime(str(record["last_modified"])), None, None, "last_modified"
    raise DatetimeMissing(
        f"no datetime for {record.get('output') or record.get('input')!r}: none given, none in the file's "
        "metadata or name, and no last-modified time")


def crs_fields(crs: str | None) -> dict[str, Any]:
    if not crs:
        return {"code": None}
    m = re.fullmatch(r"(?i)(epsg|esri|iau_\d+|ogc):(\w+)", crs.strip())
    if m:
        return {"code": f"{m[1].upper()}:{m[2]}"}
    from rasterio.crs import CRS

    parsed = CRS.from_user_input(crs)
    auth = parsed.to_authority()
    if auth:
        return {"code": f"{auth[0]}:{auth[1]}"}
    return {"code": None, "wkt2": parsed.to_wkt(version="WKT2_2019")}


def _band(record: dict[str, Any], i: int) -> RasterBand:
    stats_list = record.get("band_stats") or []
    stats = stats_list[i] if i < len(stats_list) and stats_list[i] else {}
    nodata = record.get("nodata")
    if isinstance(nodata, float) and nodata != nodata:
        nodata = "nan"
    band = RasterBand.create(nodata=nodata, data_type=record.get("dtype"))
    keep = ("minimum", "maximum", "mean", "stddev", "valid_percent")
    statistics = {k: stats[k] for k in keep if stats.get(k) is not None}
    if statistics:
        band.properties["statistics"] = statistics
    if stats.get("histogram"):
        band.properties["histogram"] = stats["histogram"]
    if record.get("units") and i < len(record["units"]) and record["units"][i]:
        band.properties["unit"] = record["units"][i]
    return band


def create_item(record: dict[str, Any], *, collection: str | None = None, id: str | None = None,
                href: str | None = None, datetime: str | None = None, job_id: str | None = None,
                job_type: str | None = None, properties: dict[str, Any] | None = None) -> dict[str, Any]:
    """A STAC item (dict) for one raster record, without reading the raster.

    Args:
        record: a ``cog`` task result or a header record (see the module docstring for the keys).
        collection: the collection id the item belongs to.
        id: the item id; default :func:`item_id` of the output's file name.
        href: the asset href; default ``record["output"]`` (URLs carry no secrets).
        datetime: the caller's datetime or ``start/end`` range; overrides the record's.
        job_id: the geoproc job that made the item (``processing:lineage``, ``geoproc:job_id``).
        job_type: that job's type, for the lineage sentence.
        properties: extra item properties, merged last.

    Raises:
        HrefMissing: the record names no URL and no ``href`` is given.
        CrsMissing: the record has no CRS or bounds.
        DatetimeMissing, BadDatetime: no datetime can be found, or a given one is not ISO 8601.
    """
    href = href or record.get("output") or record.get("input")
    if not href:
        raise HrefMissing("the raster record names no output or input URL")
    if not record.get("crs") or not record.get("bounds"):
        raise CrsMissing(f"{href}: no CRS or bounds; a STAC item needs both",
                         remediation="Give the raster a CRS (e.g. the cog job's input_crs) before cataloguing it.")
    when, start, end, source = choose_datetime(record, datetime)
    geometry = record.get("footprint") or bounds_geometry(record["bounds"], record["crs"])
    bbox = geometry_bbox(geometry)
    props: dict[str, Any] = {"geoproc:datetime_source": source}
    if start and end:
        props.update(start_datetime=utc_iso(start), end_datetime=utc_iso(end))
    item = pystac.Item(id=id or item_id(href.rsplit("/", 1)[-1]), geometry=geometry, bbox=bbox,
                       datetime=when, properties=props, collection=collection)

    proj = ProjectionExtension.ext(item, add_if_missing=True)
    crs = crs_fields(record["crs"])
    proj.code = crs["code"]
    if crs.get("wkt2"):
        proj.wkt2 = crs["wkt2"]
    if record.get("shape"):
        proj.shape = [int(v) for v in record["shape"]]
    if record.get("transform"):
        proj.transform = [float(v) for v in record["transform"][:6]]
    proj.bbox = [float(v) for v in record["bounds"]]

    is_cog = bool(record.get("is_cog", "tier" in record))
    asset = pystac.Asset(href=href, media_type=COG_MEDIA_TYPE if is_cog else GEOTIFF_MEDIA_TYPE,
                         roles=["data"], title=record.get("title"))
    item.add_asset(ASSET_KEY, asset)
    count = int(record.get("count") or len(record.get("band_stats") or []) or 1)
    RasterExtension.ext(asset, add_if_missing=True).bands = [_band(record, i) for i in range(count)]
    fext = FileExtension.ext(asset, add_if_missing=True)
    if record.get("size") is not None:
        fext.size = int(record["size"])
    if record.get("sha256"):
        fext.checksum = multihash_sha256(record["sha256"])
    eo = _eo_bands(record, count)
    if eo:
        EOExtension.ext(asset, add_if_missing=True).bands = eo

    item.stac_extensions.append(PROCESSING_SCHEMA)
    software = {"geoproc": __version__}
    if record.get("gdal_version"):
        software["GDAL"] = record["gdal_version"]
    if record.get("rasterio_version"):
        software["rasterio"] = record["rasterio_version"]
    item.properties["processing:software"] = software
    if job_id:
        item.properties["geoproc:job_id"] = job_id
        source_url = record.get("input") if record.get("input") and record.get("input") != href else None
        lineage = f"geoproc {job_type or 'job'} {job_id}"
        item.properties["processing:lineage"] = lineage + (f" from {source_url}" if source_url else "")
    if record.get("revision"):  # the output's revision: a re-run that replaced it updates the item in place
        item.stac_extensions.append(VERSION_SCHEMA)
        item.properties["version"] = str(record["revision"])
    if properties:
        item.properties.update(properties)
    return item.to_dict(include_self_link=False, transform_hrefs=False)


def _eo_bands(record: dict[str, Any], count: int) -> list[Band] | None:
    kind = str(record.get("raster_type") or "").lower()
    if kind in ("rgb", "rgba") and count in (3, 4):
        return [Band.create(name=_RGB[i], common_name=_RGB[i] if i < 3 else None) for i in range(count)]
    names = record.get("band_names")
    if names and len(names) == count and all(names):
        return [Band.create(name=str(n)) for n in names]
    return None


def geometry_bbox(geometry: dict[str, Any]) -> list[float]:
    from shapely.geometry import shape

    minx, miny, maxx, maxy = shape(geometry).bounds
    return [minx, miny, maxx, maxy]
