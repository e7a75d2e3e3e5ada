"""Validators every STAC test applies: stac-pydantic (offline) and a pystac read-back."""

from __future__ import annotations

import json
from typing import Any


def validate_item(item: dict[str, Any]) -> None:
    """The item passes stac-pydantic (offline) and reads back with pystac."""
    import pystac
    import stac_pydantic

    stac_pydantic.Item.model_validate(item)
    back = pystac.Item.from_dict(json.loads(json.dumps(item)))
    assert back.id == item["id"]
    assert not any(str(v).startswith("0001") for k, v in item["properties"].items() if "datetime" in k)


def validate_collection(coll: dict[str, Any]) -> None:
    import pystac
    import stac_pydantic

    stac_pydantic.Collection.model_validate(coll)
    assert pystac.Collection.from_dict(json.loads(json.dumps(coll))).id == coll["id"]


def pgstac_ids(dsn: str, collection: str) -> list[str]:
    """The ids of ``collection``'s items in pgstac, sorted."""
    from geoproc.stac import pgstac as pg

    with pg.connect(dsn) as db, db.connect().cursor() as cur:
        cur.execute("SELECT id FROM items WHERE collection = %s ORDER BY id", [collection])
        return [r[0] for r in cur.fetchall()]
