"""Statistics at write time: every new data version and training set gets its statistics
after the commit (in the background by default), binned like its group's baseline, and a
failure to compute them never fails the write."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field
from featureledger.cli.main import app
from featureledger.errors import ConfigError
from featureledger.store import _stats

T0 = datetime(2025, 1, 1, tzinfo=UTC)
USER = Entity("user", join_keys=["user_id"])
GROUP = FeatureGroup(
    "g", USER, features=[Field("x", "float64"), Field("c", "string")], ttl=timedelta(days=1)
)
VIEW = FeatureView("v", [GROUP])


def rows(shift: float, seed: int, n: int = 3000) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "user_id": np.arange(n),
            "event_timestamp": [T0] * n,
            "x": rng.lognormal(shift, 1.0, n),  # skewed: bins of another sample differ
            "c": rng.choice(["a", "b", "c"], n),
        }
    )


def make(tmp_path: Path, mode: str | None = None) -> FeatureStore:
    store = FeatureStore.init(tmp_path / "repo")
    if mode is not None:
        config = store.repo / "featureledger.yaml"
        config.write_text(config.read_text() + f"\nmonitoring:\n  stats_on_write: {mode}\n")
        store = FeatureStore(store.repo)
    store.apply([USER, GROUP, VIEW])
    return store


def test_ingest_leaves_statistics_stored_after_close(tmp_path: Path) -> None:
    store = make(tmp_path)
    first = store.ingest("g", rows(0.0, 1))
    second = store.ingest("g", rows(0.5, 2), mode="overwrite")
    store.close()
    for record in (first, second):
        kept = store.registry.get_stats(str(record.identity))
        assert kept is not None, record.identity
    # later versions count against the baseline's bins, so versions compare bin for bin
    base, later = store.stats(str(first.identity)), store.stats(str(second.identity))
    assert later["x"].histogram is not None and base["x"].histogram is not None
    assert later["x"].histogram.edges == base["x"].histogram.edges
    assert later["x"].count == 3000


def test_sync_mode_stores_statistics_before_the_write_returns(tmp_path: Path) -> None:
    store = make(tmp_path, "sync")
    record = store.ingest("g", rows(0.0, 1))
    assert store.registry.get_stats(str(record.identity)) is not None


def test_off_mode_leaves_statistics_to_first_use(tmp_path: Path) -> None:
    store = make(tmp_path, "off")
    record = store.ingest("g", rows(0.0, 1))
    store.close()
    assert store.registry.get_stats(str(record.identity)) is None
    assert store.stats(str(record.identity))["x"].count == 3000
    assert store.registry.get_stats(str(record.identity)) is not None


def test_an_unknown_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="stats_on_write"):
        make(tmp_path, "later")


def test_a_failed_computation_never_fails_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = make(tmp_path)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(_stats, "compute_stats", broken)
    with caplog.at_level(logging.WARNING, logger="featureledger.store._stats"):
        record = store.ingest("g", rows(0.0, 1))
        store.close()
    assert store.versions("g")[-1].version == record.version  # published and kept
    assert "were not computed" in caplog.text
    assert store.registry.get_stats(str(record.identity)) is None
    monkeypatch.undo()
    assert store.stats(str(record.identity))["x"].count == 3000  # on demand, as before


def test_training_set_statistics_use_the_group_baseline_bins(tmp_path: Path) -> None:
    store = make(tmp_path)
    store.ingest("g", rows(0.0, 1))
    store.ingest("g", rows(0.0, 2), mode="overwrite")
    users = np.random.default_rng(3).choice(3000, 500, replace=False)
    entities = pa.table({"user_id": users, "event_timestamp": [T0 + timedelta(hours=1)] * 500})
    td = store.training_data("v", entities)  # pins version 2, a sample of 500 users
    store.close()
    assert store.registry.get_stats(str(td.identity)) is not None
    baseline = store.stats("feature_group/g@v1#1")["x"].histogram
    own = store.stats(str(td.identity))["x"].histogram
    assert baseline is not None and own is not None
    assert own.edges == baseline.edges and own.total == 500
    # so drift between the training set and any version of the group is exact, bin for bin
    report = store.drift(str(td.identity), "feature_group/g@v1#2", features=["x"])
    psi = report.features["x"].metric("psi")
    assert psi is not None and not psi.approximate and psi.status == "ok"


def test_a_rollback_reuses_the_statistics_of_the_version_it_restores(tmp_path: Path) -> None:
    store = make(tmp_path)
    first = store.ingest("g", rows(0.0, 1))
    store.ingest("g", rows(2.0, 2), mode="overwrite")
    restored = store.rollback("g", to=first.version)
    store.close()
    assert store.stats(str(restored.identity)) == store.stats(str(first.identity))


def test_the_cli_ingest_leaves_statistics_stored(tmp_path: Path) -> None:
    store = make(tmp_path)
    path = tmp_path / "batch.parquet"
    import pyarrow.parquet as pq

    pq.write_table(rows(0.0, 1), path)
    result = CliRunner().invoke(app, ["ingest", "g", str(path), "--repo", str(store.repo)])
    assert result.exit_code == 0, result.output
    latest = store.versions("g")[-1]
    assert store.registry.get_stats(str(latest.identity)) is not None  # no stats() call
