"""No secret reaches the ledger, the logs, the job ids, the results or the outputs.

A COG job with a STAC catalog runs against Azurite three times, once per credential kind (connection
string, account key, SAS token). Afterwards every byte geoproc wrote — the SQLite ledger and its WAL,
the CLI's output (which carries the driver's and the workers' logs), the COGs and the STAC files in
the container — is searched for the secrets in every form they could take.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import fsspec
import pytest


def _part(cs: str, name: str) -> str:
    return next(p.split("=", 1)[1] for p in cs.split(";") if p.startswith(name + "="))


def _needles(*secrets: str) -> set[bytes]:
    out = set()
    for s in secrets:
        for form in (s, urllib.parse.quote(s, safe=""), urllib.parse.quote_plus(s)):
            out.add(form.encode())
    return out


@pytest.fixture
def sas_token(azurite):
    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    return generate_account_sas(_part(azurite, "AccountName"), _part(azurite, "AccountKey"), resource_types=ResourceTypes(service=True, container=True,
                                                                               object=True),
                                permission=AccountSasPermissions(read=True, write=True, list=True, create=True,
                                                                 add=True, delete=True),
                                expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=2))


AUTH = {"connection_string": "connection_string", "account_key": "key", "sas_token": "sas"}


def test_no_secret_anywhere(azurite, sas_token, raster_factory, tmp_path):
    fs = fsspec.filesystem("az", connection_string=azurite)
    src_dir = raster_factory("a.tif", directory=tmp_path / "src", size=(128, 128)).parent
    raster_factory("b.tif", directory=src_dir, size=(128, 128), bounds=(510240, 5000000, 520480, 5010240))
    fs.mkdir("secrets-in")
    for f in src_dir.iterdir():
        fs.put_file(str(f), f"secrets-in/{f.name}")
    endpoint = _part(azurite, "BlobEndpoint")
    account, key = _part(azurite, "AccountName"), _part(azurite, "AccountKey")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
    kinds = {
        "connection_string": {"AZURE_STORAGE_CONNECTION_STRING": azurite},
        "account_key": {"AZURE_STORAGE_ACCOUNT_NAME": account, "AZURE_STORAGE_ACCOUNT_KEY": key,
                        "AZURE_STORAGE_BLOB_ENDPOINT": endpoint},
        "sas_token": {"AZURE_STORAGE_ACCOUNT_NAME": account, "AZURE_STORAGE_SAS_TOKEN": sas_token,
                      "AZURE_STORAGE_BLOB_ENDPOINT": endpoint},
    }
    ledger = tmp_path / "ledger.db"
    logs = []
    for kind, env in kinds.items():
        p = subprocess.run(
            [sys.executable, "-m", "geoproc.cli", "run", "cog", "--set", "input=az://secrets-in/",
             "--set", f"output=az://secrets-out/{kind}/", "--set", f"stac_catalog=az://secrets-out/{kind}-stac",
             "--set", "stac_datetime=2024-05-01T00:00:00Z", "--workers", "2", "--ledger", f"sqlite:///{ledger}",
             "--json"],
            capture_output=True, text=True, timeout=300, env={**clean, **env, "GEOPROC_AZURE_AUTH": AUTH[kind]})
        assert p.returncode == 0, (kind, p.stderr[-2000:])
        logs.append(p.stdout + p.stderr)
        assert len(fs.ls(f"secrets-out/{kind}")) == 2
    sig = urllib.parse.parse_qs(sas_token)["sig"][0]
    needles = _needles(key, sig, sas_token, azurite)
    haystacks: dict[str, bytes] = {"cli output and worker logs": "\n".join(logs).encode()}
    for f in Path(tmp_path).glob("ledger.db*"):
        haystacks[f.name] = f.read_bytes()
    for path in fs.find("secrets-out"):
        haystacks[path] = fs.cat_file(path)
    assert any(p.endswith("collection.json") for p in haystacks) and any(p.endswith(".tif") for p in haystacks)
    for name, data in haystacks.items():
        for needle in needles:
            assert needle not in data, f"a secret ({needle[:6]!r}...) was found in {name}"
    assert b"secrets-out" in haystacks["ledger.db"] or any(b"secrets-out" in v for k, v in haystacks.items()
                                                         if k.startswith("ledger"))
