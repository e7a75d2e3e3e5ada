"""Storage layer against the real things: local disk, memory://, and Azurite with every credential kind."""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import rasterio

from geoproc.errors import (
    SourceNotFound,
    StorageAccessDenied,
    StorageNotConfigured,
    StorageUnreachable,
    UnsafePath,
)
from geoproc.storage import (
    gdal_env,
    gdal_path,
    join,
    open_fs,
    publish,
    redact,
    resolve_storage_options,
    safe_relative,
    storage_errors,
)
from geoproc.storage.azure import DEV_CONNECTION_STRING, gdal_options, parse_connection_string
from geoproc.storage.listing import list_files


def test_gdal_paths():
    assert gdal_path("az://bronze/2025/a.tif") == "/vsiaz/bronze/2025/a.tif"
    assert gdal_path("abfs://bronze/a.tif") == "/vsiaz/bronze/a.tif"
    assert gdal_path("abfss://bronze@acct.dfs.core.windows.net/x/a.tif") == "/vsiaz/bronze/x/a.tif"
    assert gdal_path("https://example.org/a.tif") == "/vsicurl/https://example.org/a.tif"
    assert gdal_path("/data/a.tif") == "/data/a.tif"
    assert gdal_path("file:///data/a.tif") == "/data/a.tif"


def test_redact_removes_sas_and_userinfo():
    assert redact("https://acct.blob.core.windows.net/c/a.tif?sv=2024&sig=SECRET") == \
        "https://acct.blob.core.windows.net/c/a.tif"
    assert "pw" not in redact("https://user:pw@host/a.tif")
    assert redact("az://c/a.tif") == "az://c/a.tif"


@pytest.mark.parametrize("bad", ["../x.tif", "a/../../x.tif", "/etc/passwd", "", "C:/x.tif"])
def test_safe_relative_refuses_escapes(bad):
    with pytest.raises(ValueError, match=rf"^path '{re.escape(bad)}' is (absolute|empty or leaves its prefix)"):
        safe_relative(bad)


def test_unsafe_path_is_a_value_error():
    assert issubclass(UnsafePath, ValueError)


def test_safe_relative_normalizes():
    assert safe_relative("./a//b/c.tif") == "a/b/c.tif"


def test_credential_chain_from_environment():
    assert resolve_storage_options({}) == {}
    dev = resolve_storage_options({"AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"})
    assert parse_connection_string(dev["az"]["connection_string"])["BlobEndpoint"].startswith("http://127.0.0.1")
    key = resolve_storage_options({"AZURE_STORAGE_ACCOUNT": "acct", "AZURE_STORAGE_KEY": "k"})["az"]
    assert key == {"account_name": "acct", "account_key": "k"}
    sas = resolve_storage_options({"AZURE_STORAGE_ACCOUNT_NAME": "acct", "AZURE_STORAGE_SAS_TOKEN": "?sv=1&sig=x"})["az"]
    assert sas == {"account_name": "acct", "sas_token": "sv=1&sig=x"}
    anon = resolve_storage_options({"AZURE_STORAGE_ACCOUNT": "acct"})["az"]
    assert anon == {"account_name": "acct", "anon": True}
    with pytest.raises(StorageNotConfigured):
        resolve_storage_options({"AZURE_STORAGE_ACCOUNT": "acct", "GEOPROC_AZURE_AUTH": "key"})


def test_gdal_options_per_credential_kind():
    assert gdal_options({"connection_string": DEV_CONNECTION_STRING}) == {
        "AZURE_STORAGE_CONNECTION_STRING": DEV_CONNECTION_STRING}
    tok = gdal_options({"account_name": "acct", "token": "T", "expires_on": 0})
    assert tok == {"AZURE_STORAGE_ACCOUNT": "acct", "AZURE_STORAGE_ACCESS_TOKEN": "T"}
    ep = gdal_options({"account_name": "a", "account_key": "k", "blob_endpoint": "http://127.0.0.1:1/a"})
    assert ep["CPL_AZURE_ENDPOINT"] == "http://127.0.0.1:1/a" and ep["CPL_AZURE_USE_HTTPS"] == "NO"
    assert gdal_env("/local/a.tif", {"az": {"account_name": "a", "account_key": "k"}}) == {}


def test_open_fs_without_azure_credentials_names_the_fix():
    with pytest.raises(StorageNotConfigured, match="AZURE_STORAGE_CONNECTION_STRING"):
        open_fs("az://c/x.tif", {})


def _tif(path, value=7):
    with rasterio.open(path, "w", driver="GTiff", width=32, height=32, count=1, dtype="uint8", crs="EPSG:4326",
                       transform=rasterio.transform.from_bounds(0, 0, 1, 1, 32, 32)) as d:
        d.write(np.full((1, 32, 32), value, "uint8"))
    return str(path)


def test_publish_local_is_atomic_and_leaves_no_temp(tmp_path):
    src = _tif(tmp_path / "src.tif")
    dest = tmp_path / "out" / "deep" / "a.tif"
    publish(src, str(dest))
    assert dest.read_bytes() == open(src, "rb").read()
    publish(_tif(tmp_path / "src2.tif", 9), str(dest))  # replace
    with rasterio.open(dest) as ds:
        assert ds.read(1)[0, 0] == 9
    assert sorted(p.name for p in dest.parent.iterdir()) == ["a.tif"]


def test_publish_to_memory_filesystem(tmp_path):
    src = _tif(tmp_path / "src.tif")
    publish(src, "memory://geoproc-test/pub/a.tif", {})
    fs, path = open_fs("memory://geoproc-test/pub/a.tif", {})
    assert fs.cat(path) == open(src, "rb").read()


def test_listing_filters_local(tmp_path):
    for name, n in [("a/x.tif", 10), ("a/y.TIFF", 20), ("b/z.tif", 0), ("c.txt", 5), ("out/old.tif", 3)]:
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x" * n)
    files, skipped = list_files(str(tmp_path), suffixes=[".tif", ".tiff"], exclude=[str(tmp_path / "out")])
    assert [f.rel for f in files] == ["a/x.tif", "a/y.TIFF", "b/z.tif"]
    assert skipped["suffix"] == 1 and skipped["excluded"] == 1
    files, skipped = list_files(str(tmp_path), suffixes=[".tif", ".tiff"], min_size=1, limit=1)
    assert [f.rel for f in files] == ["a/x.tif"] and skipped["size"] == 1 and skipped["limit"] == 2
    single, _ = list_files(str(tmp_path / "a" / "x.tif"))
    assert [(f.rel, f.size) for f in single] == [("x.tif", 10)]
    with pytest.raises(SourceNotFound):
        list_files(str(tmp_path / "missing"))



def test_listing_walks_in_path_order_with_change_tokens_and_times(tmp_path):
    # '-' < '.' < '/' : a directory's files sort between names that share its prefix
    for name in ("a/x.tif", "a.tif", "a-b.tif", "a0.tif"):
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x" * 7)
    files, _ = list_files(str(tmp_path))
    assert [f.rel for f in files] == sorted(f.rel for f in files) == ["a-b.tif", "a.tif", "a/x.tif", "a0.tif"]
    st = os.stat(tmp_path / "a" / "x.tif")
    entry = files[2]
    assert entry.etag == f"7-{st.st_mtime}"  # size and the file system's own stamp: stable across runs
    assert entry.last_modified == datetime.fromtimestamp(st.st_mtime, UTC)
    assert entry.to_dict() == {"url": str(tmp_path / "a" / "x.tif"), "rel": "a/x.tif", "size": 7,
                               "etag": entry.etag}


def test_join_takes_one_or_more_parts():
    assert join("az://c/p/", "a.tif") == "az://c/p/a.tif"
    assert join("az://c/p/", "inventory.parquet", "part-00000.parquet") == "az://c/p/inventory.parquet/part-00000.parquet"
    assert join("/data", "/x.tif") == "/data/x.tif"

# --- Azurite ---------------------------------------------------------------------------------------------


def _account_key(cs: str) -> str:
    return parse_connection_string(cs)["AccountKey"]


def _endpoint(cs: str) -> str:
    return parse_connection_string(cs)["BlobEndpoint"].rstrip("/")


def _sas(cs: str, container: str) -> str:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    return generate_container_sas("devstoreaccount1", container, account_key=_account_key(cs),
                                  permission=ContainerSasPermissions(read=True, list=True, write=True, create=True),
                                  expiry=datetime.now(UTC) + timedelta(hours=1))


@pytest.mark.services
@pytest.mark.parametrize("kind", ["connection_string", "account_key", "sas"])
def test_every_credential_kind_feeds_adlfs_and_gdal(azurite, az_container, tmp_path, kind):
    base = {"AZURE_STORAGE_ACCOUNT": "devstoreaccount1", "AZURE_STORAGE_BLOB_ENDPOINT": _endpoint(azurite)}
    env = {"connection_string": {"AZURE_STORAGE_CONNECTION_STRING": azurite},
           "account_key": {**base, "AZURE_STORAGE_KEY": _account_key(azurite)},
           "sas": {**base, "AZURE_STORAGE_SAS_TOKEN": _sas(azurite, az_container)}}[kind]
    opts = resolve_storage_options(env)
    assert list(opts["az"]) != ["connection_string"] or kind == "connection_string"
    url = f"az://{az_container}/dir/a.tif"
    publish(_tif(tmp_path / "a.tif", 42), url, opts)
    fs, _ = open_fs(f"az://{az_container}", opts)
    assert fs.find(az_container) == [f"{az_container}/dir/a.tif"]
    # GDAL reads the same blob with range requests, credentials given only through rasterio.Env
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("AZURE_")}
    try:
        with rasterio.Env(**gdal_env(url, opts)), rasterio.open(gdal_path(url)) as ds:
            assert ds.read(1)[5, 5] == 42
    finally:
        os.environ.update(saved)


@pytest.mark.services
def test_missing_container_and_blob_are_not_found(azurite, az_container, az_options):
    with pytest.raises(SourceNotFound, match="does not exist"):
        list_files("az://no-such-container-xyz/prefix", az_options)
    with pytest.raises(SourceNotFound):
        list_files(f"az://{az_container}/nothing-here", az_options)


@pytest.mark.services
def test_wrong_key_is_access_denied_without_leaking_it(azurite, az_container):
    bad_key = "A" * 86 + "=="
    opts = {"az": {"connection_string": azurite.replace(_account_key(azurite), bad_key)}}
    with pytest.raises(StorageAccessDenied) as err:
        with storage_errors(f"az://{az_container}", "list"):
            open_fs(f"az://{az_container}", opts)[0].ls(az_container)
    assert bad_key not in str(err.value) and "AccountKey" not in str(err.value)


def test_unreachable_account_fails_fast_with_a_clear_code():
    cs = DEV_CONNECTION_STRING.replace("127.0.0.1:10000", "127.0.0.1:1")
    t0 = time.monotonic()
    with pytest.raises(StorageUnreachable) as err:
        list_files("az://somecontainer/x", {"az": {"connection_string": cs}})
    assert time.monotonic() - t0 < 20
    assert err.value.code == "STORAGE_UNREACHABLE"
