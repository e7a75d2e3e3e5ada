"""``geoproc stac setup``: idempotent, reports the version, never prints a password."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from geoproc.cli import app


def test_stac_setup_is_idempotent_and_redacts(pgstac_dsn):
    runner = CliRunner()
    dsn = pgstac_dsn.replace("postgresql://postgres@", "postgresql://postgres:topsecret@")
    first = runner.invoke(app, ["stac", "setup", "--dsn", dsn, "--json"])
    assert first.exit_code == 0, first.output
    info = json.loads(first.output)
    assert info["version"].startswith("0.") and not info["changed"]  # the fixture migrated it already
    assert "topsecret" not in first.output
    again = runner.invoke(app, ["stac", "setup", "--dsn", dsn])
    assert again.exit_code == 0 and "already up to date" in again.output and "topsecret" not in again.output
    bad = runner.invoke(app, ["stac", "setup", "--dsn", "postgresql://nobody:topsecret@127.0.0.1:1/none"])
    assert bad.exit_code == 5 and "topsecret" not in bad.output
    missing = runner.invoke(app, ["stac", "setup"], env={"GEOPROC_PGSTAC_DSN": ""})
    assert missing.exit_code == 5 and "GEOPROC_PGSTAC_DSN" in missing.output
