"""Settings are read from the environment in one place; renamed knobs keep their old names for a while."""

from __future__ import annotations

import pytest

from geoproc.ledger import default_url
from geoproc.settings import Settings


def test_batches_per_worker_keeps_its_old_name_with_a_deprecation_warning(monkeypatch):
    monkeypatch.delenv("GEOPROC_BATCHES_PER_WORKER", raising=False)
    monkeypatch.setenv("GEOPROC_CHUNKS_PER_WORKER", "3")
    with pytest.warns(DeprecationWarning, match="chunks_per_worker .* use batches_per_worker"):
        assert Settings().batches_per_worker == 3
    with pytest.warns(DeprecationWarning, match="GEOPROC_BATCHES_PER_WORKER"):
        assert Settings(batches_per_worker=5).batches_per_worker == 5  # the new name wins
    monkeypatch.delenv("GEOPROC_CHUNKS_PER_WORKER")
    with pytest.warns(DeprecationWarning):
        s = Settings(chunks_per_worker=4)
    assert s.batches_per_worker == 4 and "chunks_per_worker" not in s.model_dump()
    assert Settings().batches_per_worker == 8


def test_environment_reads_go_through_settings(monkeypatch, tmp_path):
    monkeypatch.delenv("GEOPROC_LEDGER", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.setenv("GEOPROC_K8S_SPEC", "/etc/dask/cluster.yaml")
    monkeypatch.setenv("GEOPROC_LOG_LEVEL", "loud")  # checked where logging is set up, not here
    s = Settings()
    assert (s.data_home, s.k8s_spec, s.log_level) == (str(tmp_path), "/etc/dask/cluster.yaml", "loud")
    assert default_url(s) == f"sqlite:///{tmp_path}/geoproc/ledger.db"
    assert default_url(Settings(data_home="/srv/data")) == "sqlite:////srv/data/geoproc/ledger.db"
    assert default_url(Settings(ledger="postgresql://u@h/db")) == "postgresql://u@h/db"
