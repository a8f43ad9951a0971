"""Vacuum never deletes a version a pointer file names; its own commits are maintenance; a
data version and its audit entry are recorded together or not at all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from featureledger import Entity, FeatureGroup, FeatureStore, Field
from featureledger.cli.main import app
from featureledger.errors import IntegrityError, NotFoundError
from featureledger.registry import sqlaudit

T0 = datetime(2024, 1, 1, tzinfo=UTC)
USER = Entity("user", join_keys=["user_id"])
GROUP = FeatureGroup("g", USER, features=[Field("x", "float64")])


def rows(keys: list[int], x: float) -> dict[str, list[object]]:
    return {"user_id": keys, "event_timestamp": [T0] * len(keys), "x": [x] * len(keys)}


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    s = FeatureStore.init(tmp_path / "repo")
    s.apply([USER, GROUP])
    s.ingest("g", rows([1, 2], 1.0))  # 1
    s.ingest("g", rows([1, 2], 2.0), mode="overwrite")  # 2: version 1's file is unreferenced
    s.ingest("g", rows([1, 2], 3.0), mode="overwrite")  # 3
    return s


def test_pinned_version_survives_vacuum_and_checks_out(store: FeatureStore, tmp_path: Path) -> None:
    pointer = store.pin("feature_group/g@v1#1", tmp_path / "old")
    assert [(p["version"], p["path"]) for p in store.registry.pins("g")] == [(1, str(pointer))]
    result = store.vacuum(older_than=timedelta(0), dry_run=False)
    assert result.pinned["feature_group/g@v1"] == {1: [str(pointer)]}
    assert result["feature_group/g@v1"]  # version 2's file went
    with pytest.raises(IntegrityError, match="missing"):
        store.read("g", version=2)
    report = store.checkout(pointer, tmp_path / "old.parquet")
    assert report.ok and pq.read_table(tmp_path / "old.parquet").column("x").to_pylist() == [
        1.0,
        1.0,
    ]
    vacuum_entry = store.audit_log("feature_group/g@v1")[-1]
    assert vacuum_entry.action == "vacuum" and 1 in vacuum_entry.details["kept_versions"]


def test_vacuum_commits_are_maintenance_not_versions(store: FeatureStore) -> None:
    store.vacuum(older_than=timedelta(0), dry_run=False)
    # a fresh store (nothing cached) sees the same: no "recovered" versions appear
    again = FeatureStore(store.repo)
    versions = again.versions("g")
    assert [v.version for v in versions] == [0, 1, 2, 3]
    assert not any("recovered" in v.note for v in versions)
    maintenance = again.registry.maintenance_versions("g", 1)
    assert sorted(maintenance.values()) == ["vacuum end", "vacuum start"]
    assert min(maintenance) == 4
    # a later write builds on the maintenance commits with the right content hash
    v = again.ingest("g", rows([3], 4.0))
    assert v.version == 6 and again.verify(str(v.identity))[0].ok
    assert [e.action for e in again.audit_log() if e.action == "maintenance"] == [
        "maintenance",
        "maintenance",
    ]
    assert again.audit_verify() == []


def test_force_overrides_pins_and_is_audited(store: FeatureStore, tmp_path: Path) -> None:
    pointer = store.pin("feature_group/g@v1#1", tmp_path / "old.fl.yaml")
    result = store.vacuum(older_than=timedelta(0), dry_run=False, force=True)
    assert result.forced and result.pinned["feature_group/g@v1"] == {1: [str(pointer)]}
    with pytest.raises(IntegrityError, match="missing"):
        store.checkout(pointer, tmp_path / "old.parquet")
    entry = store.audit_log("feature_group/g@v1")[-1]
    assert entry.action == "vacuum" and entry.details["forced"] is True
    assert entry.details["pins_overridden"] == {"1": [str(pointer)]}
    assert store.audit_verify() == []


def test_training_set_pointer_pins_its_group_versions(store: FeatureStore, tmp_path: Path) -> None:
    import pyarrow as pa

    from featureledger import FeatureView

    store.apply([FeatureView("v", [GROUP])])
    td = store.training_data(
        "v", pa.table({"user_id": [1], "event_timestamp": [T0]}), versions={"g": 2}
    )
    pointer = store.pin(str(td.identity), tmp_path / "train")
    assert [(p["version"], p["pinned"]) for p in store.registry.pins("g")] == [
        (2, str(td.identity))
    ]
    assert Path(pointer).exists()


def test_vacuum_cli_says_what_pins_kept(store: FeatureStore, tmp_path: Path) -> None:
    pointer = store.pin("feature_group/g@v1#1", tmp_path / "old")
    runner = CliRunner()
    args = ["vacuum", "--older-than", "0d", "--apply", "--repo", str(store.repo)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "feature_group/g@v1#1: kept, pinned by" in result.output
    assert pointer.name in result.output.replace("\n", "")
    assert (
        runner.invoke(
            app,
            [
                "checkout",
                str(pointer),
                "-o",
                str(tmp_path / "o.parquet"),
                "--repo",
                str(store.repo),
            ],
        ).exit_code
        == 0
    )


def test_version_and_its_entry_commit_together(
    store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure between the version row and its entry (a crash there) leaves neither; the
    next call records the Delta commit as recovered, with its entry."""

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("crash between the version row and its audit entry")

    monkeypatch.setattr(sqlaudit, "append", fail)
    with pytest.raises(RuntimeError, match="crash between"):
        store.ingest("g", rows([7], 7.0))
    assert [v.version for v in store.registry.data_versions("g", 1)] == [0, 1, 2, 3]
    monkeypatch.undo()
    versions = store.versions("g")  # the next call repairs
    assert [v.version for v in versions] == [0, 1, 2, 3, 4]
    assert versions[-1].note.startswith("recovered")
    entry = store.audit_log("feature_group/g@v1#4")[-1]
    assert entry.action == "recovered" and entry.details["operation"] == "write"
    assert store.audit_verify() == []


KILLED_INGEST = """
import os, signal, sys
from datetime import UTC, datetime
from featureledger import FeatureStore
from featureledger.registry import sqlaudit

real = sqlaudit.append

def die(conn, key, user, action, obj, details, *, where):
    if obj.endswith("#4"):  # inside the transaction that inserted the version row
        os.kill(os.getpid(), signal.SIGKILL)
    return real(conn, key, user, action, obj, details, where=where)

sqlaudit.append = die
t0 = datetime(2024, 1, 1, tzinfo=UTC)
FeatureStore(sys.argv[1]).ingest("g", {"user_id": [7], "event_timestamp": [t0], "x": [7.0]})
"""


@pytest.mark.subprocess
def test_kill_9_inside_the_version_transaction(store: FeatureStore, tmp_path: Path) -> None:
    """kill -9 after the version row is inserted and before its entry: neither is kept;
    the Delta commit is recovered with a `recovered` entry by the next call."""
    import subprocess
    import sys

    script = tmp_path / "killed.py"
    script.write_text(KILLED_INGEST)
    done = subprocess.run([sys.executable, str(script), str(store.repo)], check=False)
    assert done.returncode == -9
    again = FeatureStore(store.repo)
    assert [v.version for v in again.registry.data_versions("g", 1)] == [0, 1, 2, 3]
    versions = again.versions("g")
    assert [v.version for v in versions] == [0, 1, 2, 3, 4]
    assert again.audit_log("feature_group/g@v1#4")[-1].action == "recovered"
    assert again.audit_verify() == []
    assert again.read("g").num_rows == 3


def test_unpin_releases_a_version_to_vacuum(store: FeatureStore, tmp_path: Path) -> None:
    pointer = store.pin("feature_group/g@v1#1", tmp_path / "old")
    released = store.unpin(pointer)
    assert [(p["version"], p["path"]) for p in released] == [(1, str(pointer))]
    assert not pointer.exists() and store.pins("g") == []
    result = store.vacuum(older_than=timedelta(0), dry_run=False)
    assert not any(result.pinned.values())
    with pytest.raises(IntegrityError, match="missing"):
        store.read("g", version=1)
    entry = [e for e in store.audit_log("feature_group/g@v1#1") if e.action == "unpin"]
    assert entry and entry[0].details == {"file": str(pointer), "pinned": "feature_group/g@v1#1"}
    assert store.audit_verify() == []


def test_unpin_after_a_crash_that_removed_only_the_file(
    store: FeatureStore, tmp_path: Path
) -> None:
    # the file goes first: a crash before the registry step leaves only the pin, which
    # still keeps the data, and unpin of the (missing) file finishes the job
    pointer = store.pin("feature_group/g@v1#1", tmp_path / "old")
    pointer.unlink()
    assert store.vacuum(older_than=timedelta(0), dry_run=True).pinned
    assert [p["version"] for p in store.unpin(pointer)] == [1]
    with pytest.raises(NotFoundError, match="no pins registered"):
        store.unpin(pointer)


def test_unpin_and_pins_cli(store: FeatureStore, tmp_path: Path) -> None:
    pointer = store.pin("feature_group/g@v1#2", tmp_path / "kept")
    runner = CliRunner()
    listed = runner.invoke(app, ["pins", "--repo", str(store.repo)], terminal_width=200)
    assert listed.exit_code == 0 and "feature_group/g@v1#2" in listed.output
    args = ["unpin", str(pointer), "--keep-file", "--repo", str(store.repo)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "released feature_group/g@v1#2" in result.output and pointer.exists()
    again = runner.invoke(app, args)
    assert again.exit_code != 0 and "no pins registered" in again.output
    empty = runner.invoke(app, ["pins", "--repo", str(store.repo)])
    assert "no pins" in empty.output
