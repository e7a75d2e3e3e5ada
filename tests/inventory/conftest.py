"""Generated containers with known contents, on local disk and in Azurite (layout: ``kit.inventory``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kit.inventory import LAYOUT, MB, new_container, payload


@pytest.fixture
def local_container(tmp_path) -> Path:
    root = tmp_path / "container"
    for name, size in LAYOUT:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(payload(name, size))
    return root


@pytest.fixture
def blob_service(azurite):
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(azurite) as svc:
        yield svc


@pytest.fixture
def az_container(blob_service) -> str:
    """A fresh Azurite container holding ``LAYOUT``."""
    return new_container(blob_service, {n: payload(n, s) for n, s in LAYOUT})


@pytest.fixture
def sparse_sizes(tmp_path) -> Path:
    """Files of 0 B, 10 MiB - 1, 10 MiB, 150 MiB, 2 GiB and 11 GiB (sparse: no disk used)."""
    root = tmp_path / "sizes"
    root.mkdir()
    sizes = {"a_empty.bin": 0, "b_under10.bin": 10 * MB - 1, "c_10.bin": 10 * MB, "d_150.bin": 150 * MB,
             "e_2g.bin": 2 * 1024 * MB, "f_11g.bin": 11 * 1024 * MB}
    for name, size in sizes.items():
        with open(root / name, "wb") as fh:
            fh.truncate(size)
    os.utime(root / "a_empty.bin", (1_600_000_000, 1_600_000_000))
    os.utime(root / "f_11g.bin", (1_700_000_000, 1_700_000_000))
    return root
