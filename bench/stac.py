"""Benchmark: catalog 1,000 small COGs into pgstac and into a static catalog, geoproc vs the peer way.

Writes ``--n`` small COGs (64x64 uint8, EPSG:4326) to a temporary directory, starts a private
PostgreSQL + pgstac (or uses ``--dsn`` / ``GEOPROC_PGSTAC_DSN``), then measures, in items per second:

* geoproc: the ``stac_catalog`` job on a 2-process LocalCluster, once into pgstac and once into a
  static catalog (header reads, item building, checked batch loading / streamed collection);
* peer:    one process, a plain loop of ``rio_stac.create_stac_item`` per file, then
  - pgstac: one ``pypgstac`` ``Loader.load_items([item], upsert)`` call per item (per-item inserts,
    as scripts and the seed system do), and
  - static: ``pystac`` ``Collection.add_item`` for every item, then ``normalize_hrefs`` and
    ``save(SELF_CONTAINED)``;
* load only: the pgstac load of already-built items, geoproc's checked batches vs per-item upserts.

    python bench/stac.py              # 1,000 COGs
    python bench/stac.py --n 2000 --dsn postgresql://postgres@127.0.0.1:5432/pgstac
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PGBIN = Path("/usr/lib/postgresql/15/bin")


def write_cogs(directory: Path, n: int) -> list[Path]:
    import numpy as np
    import rasterio
    from rasterio.transform import from_bounds

    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        x0, y0 = -10.0 + (i % 100) * 0.05, 40.0 + (i // 100) * 0.05
        p = directory / f"tile_{i:05d}_2024{1 + i % 12:02d}{1 + i % 28:02d}.tif"
        data = np.full((1, 64, 64), (i % 250) + 1, dtype="uint8")
        with rasterio.open(p, "w", driver="COG", width=64, height=64, count=1, dtype="uint8", crs="EPSG:4326",
                           nodata=0, transform=from_bounds(x0, y0, x0 + 0.05, y0 + 0.05, 64, 64)) as dst:
            dst.write(data)
        out.append(p)
    return out


def start_postgres(base: Path) -> tuple[str, list[str], Path]:
    """A private PostgreSQL cluster with pgstac migrated; returns (dsn, runuser prefix, data dir)."""
    base.mkdir(parents=True, exist_ok=True)
    base.parent.chmod(0o755)
    base.chmod(0o755)
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_pg:
        shutil.chown(base, "postgres", "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = base / "data"
    subprocess.run(as_pg + [str(PGBIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                            "--locale=C.UTF-8"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(as_pg + [str(PGBIN / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w", "-o",
                            f"-c listen_addresses=127.0.0.1 -p {port} -k {base}", "start"],
                   check=True, stdout=subprocess.DEVNULL)
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    from geoproc.stac.pgstac import setup

    setup(dsn)
    return dsn, as_pg, data


def peer_items(paths: list[Path], collection: str) -> list:
    from rio_stac import create_stac_item

    return [create_stac_item(str(p), collection=collection, with_proj=True, with_raster=False,
                             id=p.stem, input_datetime=None) for p in paths]


def peer_pgstac(dsn: str, items: list, collection: str) -> None:
    from pypgstac.load import Loader, Methods

    from geoproc.stac import pgstac as pg
    from geoproc.stac.collections import CollectionStats, collection_dict

    with pg.connect(dsn) as db:
        pg.upsert_collection(db, collection_dict(collection, CollectionStats()))
        loader = Loader(db=db)
        for it in items:
            loader.load_items(iter([it]), insert_mode=Methods.upsert)


def peer_static(root: Path, items: list, collection: str) -> None:
    import pystac

    coll = pystac.Collection(collection, "peer", pystac.Extent(pystac.SpatialExtent([[-180, -90, 180, 90]]),
                                                               pystac.TemporalExtent([[None, None]])))
    for it in items:
        coll.add_item(it)
    coll.update_extent_from_items()
    cat = pystac.Catalog("peer", "peer catalog")
    cat.add_child(coll)
    cat.normalize_hrefs(str(root))
    cat.save(pystac.CatalogType.SELF_CONTAINED)


def count_items(dsn: str, collection: str) -> int:
    from geoproc.stac import pgstac as pg

    with pg.connect(dsn) as db:
        return db.query_one("SELECT count(*) FROM items WHERE collection = %s", [collection])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="number of COGs")
    ap.add_argument("--dsn", default=os.environ.get("GEOPROC_PGSTAC_DSN"), help="pgstac DSN (default: start one)")
    args = ap.parse_args()

    from dask.distributed import LocalCluster

    import geoproc
    from geoproc.stac import pgstac as pg

    tmp = Path(tempfile.mkdtemp(prefix="geoproc-bench-stac-"))
    pg_proc = None
    try:
        t = time.perf_counter()
        paths = write_cogs(tmp / "cogs", args.n)
        print(f"wrote {args.n} COGs in {time.perf_counter() - t:.1f}s", flush=True)
        dsn = args.dsn
        if not dsn:
            dsn, as_pg, data = start_postgres(tmp / "pg")
            pg_proc = (as_pg, data)
        tag = str(time.time_ns() % 10**9)
        rates: dict[str, tuple[float, float]] = {}
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster:
            # geoproc into pgstac
            t = time.perf_counter()
            res = geoproc.run("stac_catalog", cluster=cluster.scheduler_address, ledger=f"sqlite:///{tmp}/l1.db",
                              input=str(tmp / "cogs"), stac_collection=f"gp-pg-{tag}", pgstac_dsn=dsn)
            gp_pg = time.perf_counter() - t
            assert res.status == "completed" and count_items(dsn, f"gp-pg-{tag}") == args.n, res
            # geoproc into a static catalog
            t = time.perf_counter()
            res = geoproc.run("stac_catalog", cluster=cluster.scheduler_address, ledger=f"sqlite:///{tmp}/l2.db",
                              input=str(tmp / "cogs"), stac_collection=f"gp-st-{tag}",
                              stac_catalog=str(tmp / "gp-static"))
            gp_st = time.perf_counter() - t
            assert res.status == "completed" and res.result["static"]["items"] == args.n, res

        # peer: rio-stac loop, then per-item pgstac upserts / pystac save
        t = time.perf_counter()
        items = peer_items(paths, f"peer-pg-{tag}")
        build = time.perf_counter() - t
        dicts = [it.to_dict() for it in items]
        t = time.perf_counter()
        peer_pgstac(dsn, dicts, f"peer-pg-{tag}")
        peer_load = time.perf_counter() - t
        assert count_items(dsn, f"peer-pg-{tag}") == args.n
        for it in items:
            it.collection_id = None
        t = time.perf_counter()
        peer_static(tmp / "peer-static", items, f"peer-st-{tag}")
        peer_save = time.perf_counter() - t

        # load only: geoproc's checked batches of the same items into a fresh collection
        from geoproc.stac.collections import CollectionStats, collection_dict

        again = [dict(d, collection=f"gp-load-{tag}") for d in dicts]
        t = time.perf_counter()
        with pg.connect(dsn) as db:
            pg.upsert_collection(db, collection_dict(f"gp-load-{tag}", CollectionStats()))
            pg.load_items(db, again)
        gp_load = time.perf_counter() - t
        assert count_items(dsn, f"gp-load-{tag}") == args.n

        n = args.n
        rates["pgstac (list+read+build+load)"] = (n / gp_pg, n / (build + peer_load))
        rates["static catalog (list+read+build+write)"] = (n / gp_st, n / (build + peer_save))
        rates["pgstac load only (items built)"] = (n / gp_load, n / peer_load)
        print()
        print(f"{n} small COGs, 2 cores; geoproc = stac_catalog job on a 2-process LocalCluster; "
              "peer = rio-stac loop + per-item pypgstac upserts / pystac save")
        print(f"  {'':42s} {'geoproc items/s':>16s} {'peer items/s':>14s} {'ratio':>7s}")
        for name, (g, p) in rates.items():
            print(f"  {name:42s} {g:16.0f} {p:14.0f} {g / p:6.1f}x")
        print(f"  (peer phases: rio-stac items {n / build:.0f}/s, per-item upserts {n / peer_load:.0f}/s, "
              f"pystac save {n / peer_save:.0f}/s; target >= 200 items/s into pgstac)")
    finally:
        if pg_proc:
            as_pg, data = pg_proc
            subprocess.run(as_pg + [str(PGBIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                           stdout=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
