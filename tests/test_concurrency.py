"""Concurrent writers and crashes: no version is lost, and a dead writer damages nothing."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from deltalake import DeltaTable

from featureledger import FeatureStore, content_hash
from featureledger.offline import DeltaGroupTable
from featureledger.registry.sql import runs_table
from writer_processes import STATS, T0, USER, child, rows


@pytest.fixture
def store(store: FeatureStore) -> FeatureStore:
    """conftest's empty store with the group applied and one version of 10 rows."""
    store.apply([USER, STATS])
    store.ingest("stats", rows(list(range(10)), 0, 0, -1))
    return store


def check_books(store: FeatureStore) -> None:
    """Versions contiguous, each version's hash equal to a recount, storage unique."""
    fresh = FeatureStore(store.repo)
    versions = fresh.versions("stats")
    delta_latest = DeltaTable(str(fresh._svc.tables.table("stats", 1).path)).version()
    assert [v.version for v in versions] == list(range(delta_latest + 1))
    for v in versions:
        table = fresh.read("stats", version=v.version)
        assert v.content == content_hash(table), v.version
        assert v.rows == table.num_rows
    latest = fresh.read("stats")
    keys = Counter(
        zip(
            latest.column("user_id").to_pylist(),
            latest.column("event_timestamp").to_pylist(),
            strict=True,
        )
    )
    assert max(keys.values()) == 1


def run_statuses(store: FeatureStore) -> dict[str, str]:
    with store.registry.engine.connect() as conn:
        return {r.id: r.status for r in conn.execute(runs_table.select())}


# -- concurrent writers ---------------------------------------------------------------------

WRITER = """
    me, go, batches = int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    open(go + f".ready{me}", "w").close()
    while not os.path.exists(go):
        time.sleep(0.005)
    out = []
    for b in range(batches):
        # users 0..99 are written by both processes, with process 1's created_time newer;
        # each process also writes users of its own
        users = list(range(100)) + list(range(1000 * (me + 1), 1000 * (me + 1) + 50))
        v = store.ingest("stats", rows(users, 1 + b, 10 * me + b, 1000 * me + b))
        out.append({"version": v.version, "run": v.run_id, "user": v.user})
    print(json.dumps(out))
"""


@pytest.mark.subprocess
def test_two_processes_ingesting_concurrently_lose_no_version(
    store: FeatureStore, tmp_path: Path
) -> None:
    batches = 4
    go = str(tmp_path / "go")
    procs = [
        child(tmp_path, f"writer{p}", WRITER, str(store.repo), str(p), go, str(batches))
        for p in (0, 1)
    ]
    deadline = time.monotonic() + 60
    while not all(os.path.exists(f"{go}.ready{p}") for p in (0, 1)):
        assert time.monotonic() < deadline, [p.poll() for p in procs]
        time.sleep(0.01)
    Path(go).touch()
    # a reader in this process keeps looking while they write
    reader = FeatureStore(store.repo)
    seen = 0
    while any(p.poll() is None for p in procs):
        versions = reader.versions("stats")
        assert [v.version for v in versions] == list(range(len(versions)))
        latest = versions[-1]
        assert content_hash(reader.read("stats", version=latest.version)) == latest.content
        seen = max(seen, latest.version)
        time.sleep(0.02)
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=60)
        assert p.returncode == 0, stderr
        outs.append(json.loads(stdout.strip().splitlines()[-1]))

    written = [v["version"] for out in outs for v in out]
    assert sorted(written) == list(range(2, 2 + 2 * batches))  # distinct, none lost
    for p, out in enumerate(outs):
        assert all(v["user"] == f"writer{p}" for v in out)
        assert [v["version"] for v in out] == sorted(v["version"] for v in out)
    versions = store.versions("stats")
    assert [v.version for v in versions] == list(range(2 + 2 * batches))
    by_version = {v.version: v for v in versions}
    for out in outs:
        for v in out:
            assert by_version[v["version"]].run_id == v["run"]
            assert "recovered" not in by_version[v["version"]].note
    statuses = run_statuses(store)
    assert all(statuses[v["run"]] == "succeeded" for out in outs for v in out)

    table = store.read("stats")
    assert table.num_rows == 10 + batches * (100 + 50 + 50)
    got = {(r["user_id"], r["event_timestamp"]): r["clicks"] for r in table.to_pylist()}
    for b in range(batches):
        at = T0 + timedelta(hours=1 + b)
        assert all(got[(u, at)] == 1000 + b for u in range(100))  # newest created_time won
        assert all(got[(u, at)] == b for u in range(1000, 1050))
        assert all(got[(u, at)] == 1000 + b for u in range(2000, 2050))
    assert versions[-1].content == content_hash(table)
    check_books(store)
    # the audit chain stayed linked although two processes appended to it
    log = store.registry.audit_log()
    assert [e.action for e in log].count("ingest") == 1 + 2 * batches
    assert store.registry.audit_verify() == []


# -- crashes -------------------------------------------------------------------------------

BIG_WRITER = """
    n, overlap = int(sys.argv[2]), sys.argv[3] == "overlap"
    start = 0 if overlap else 10_000_000
    batch = pa.table({
        "user_id": pa.array(np.arange(start, start + n), pa.int64()),
        "event_timestamp": pa.array(np.full(n, np.datetime64("2024-01-01T00:00:00", "us")), TS),
        "created": pa.array(np.full(n, np.datetime64("2024-01-02T00:00:00", "us")), TS),
        "clicks": pa.array(np.arange(n), pa.int64()),
        "spend": pa.array(np.random.default_rng(0).random(n)),
    })
    print("started", flush=True)
    store.ingest("stats", batch)
    print("finished", flush=True)
"""


def data_files(store: FeatureStore) -> set[Path]:
    root = store._svc.tables.table("stats", 1).path
    return {p for p in root.rglob("*.parquet") if "_delta_log" not in p.parts}


def assert_recovers_after_crash(store: FeatureStore, before_versions, before_rows) -> None:
    """The store reopens, the old version is intact, and the next ingest lands exactly."""
    fresh = FeatureStore(store.repo)
    versions = fresh.versions("stats")
    assert versions[: len(before_versions)] == before_versions
    assert fresh.read("stats", version=before_versions[-1].version).equals(before_rows)
    assert len(versions) in (len(before_versions), len(before_versions) + 1)
    check_books(fresh)
    table_path = str(fresh._svc.tables.table("stats", 1).path)
    live = {Path(u).name for u in DeltaTable(table_path).file_uris()}
    assert all(
        Path(p).name in live for v in versions for p in v.files if v.version == versions[-1].version
    )
    # newer than anything the killed writer may have committed
    nxt = fresh.ingest("stats", rows([1, 2, 3, 10**9], 0, 10**7, 42))
    assert nxt.version == versions[-1].version + 1
    got = {
        r["user_id"]: r["clicks"]
        for r in fresh.read("stats").to_pylist()
        if r["event_timestamp"] == T0
    }
    assert got[10**9] == 42 and got[1] == 42
    check_books(fresh)


@pytest.mark.subprocess
@pytest.mark.parametrize("overlap", ["new-keys", "overlap"])
def test_sigkill_mid_ingest_leaves_the_previous_version_intact(
    store: FeatureStore, tmp_path: Path, overlap: str
) -> None:
    before_versions = store.versions("stats")
    before_rows = store.read("stats")
    before_files = data_files(store)
    proc = child(tmp_path, "big", BIG_WRITER, str(store.repo), "120000", overlap)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    # kill as soon as the new data file is being written, or after a while regardless
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.poll() is None:
        if data_files(store) - before_files:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert_recovers_after_crash(store, before_versions, before_rows)


CRASH_BEFORE_COMMIT = """
    # die after the data file is written but before the Delta log commit, as a power cut
    # or OOM kill would
    import deltalake
    import pyarrow.parquet as pq
    import featureledger.offline.delta as delta

    def die(uri, data):
        pq.write_table(data, os.path.join(uri, "part-00000-crashed.snappy.parquet"))
        os.kill(os.getpid(), signal.SIGKILL)

    # the append path (offline/delta.py imports write_deltalake from deltalake when it writes)
    deltalake.write_deltalake = lambda uri, data, **kw: die(uri, data)
    delta.DeltaGroupTable.merge = lambda self, data, *a, **kw: die(self.uri, data)  # upsert path
    users = list(range(5, 50)) if sys.argv[2] == "merge" else list(range(100, 150))
    store.ingest("stats", rows(users, 0, 10, 7))
"""


@pytest.mark.subprocess
@pytest.mark.parametrize("path", ["append", "merge"])
def test_crash_before_the_commit_leaves_an_ignored_orphan(
    store: FeatureStore, tmp_path: Path, path: str
) -> None:
    before_versions = store.versions("stats")
    before_rows = store.read("stats")
    proc = child(tmp_path, "crash_before", CRASH_BEFORE_COMMIT, str(store.repo), path)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, stderr
    orphan = store._svc.tables.table("stats", 1).path / "part-00000-crashed.snappy.parquet"
    assert orphan.exists()
    fresh = FeatureStore(store.repo)
    assert fresh.versions("stats") == before_versions
    assert fresh.read("stats").equals(before_rows)
    # the run that died is not reported as having succeeded
    statuses = run_statuses(fresh)
    assert sorted(statuses.values()) == ["running", "succeeded"]
    assert_recovers_after_crash(store, before_versions, before_rows)
    assert "part-00000-crashed.snappy.parquet" not in {
        Path(u).name for u in DeltaTable(str(fresh._svc.tables.table("stats", 1).path)).file_uris()
    }


CRASH_AFTER_COMMIT = """
    # die after the Delta commit, before the registry records the version
    from featureledger.store._records import VersionRecords

    original = VersionRecords.record

    def record_then_die(self, group, table, version, operation, *args, **kwargs):
        if operation != "create":
            print(json.dumps({"version": version}), flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, group, table, version, operation, *args, **kwargs)

    VersionRecords.record = record_then_die
    store.ingest("stats", rows(list(range(5, 50)), 0, 10, 7))
"""


@pytest.mark.subprocess
def test_crash_after_the_commit_is_recovered_by_the_next_operation(
    store: FeatureStore, tmp_path: Path
) -> None:
    before = store.versions("stats")
    proc = child(tmp_path, "crash_after", CRASH_AFTER_COMMIT, str(store.repo))
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert json.loads(stdout.strip()) == {"version": 2}
    assert DeltaTable(str(store._svc.tables.table("stats", 1).path)).version() == 2
    assert store.registry.data_version("stats", 1, 2) is None  # not recorded yet

    fresh = FeatureStore(store.repo)
    versions = fresh.versions("stats")  # any store operation records the missing version
    assert [v.version for v in versions] == [0, 1, 2]
    assert versions[:2] == before
    recovered = versions[2]
    assert "recovered" in recovered.note
    (dead_run,) = [rid for rid, s in run_statuses(fresh).items() if s == "running"]
    assert recovered.run_id == dead_run  # matched through the commit's metadata
    table = fresh.read("stats")
    assert recovered.content == content_hash(table)
    assert recovered.rows == table.num_rows == 50
    assert {r["user_id"]: r["clicks"] for r in table.to_pylist()}[20] == 7
    assert recovered.files  # checksums of the committed files are recorded too
    # and the next ingest builds on it incrementally
    nxt = fresh.ingest("stats", rows([1, 60], 0, 20, 8))
    assert (nxt.version, nxt.rows) == (3, 51)
    assert nxt.content == content_hash(fresh.read("stats"))
    check_books(fresh)


# -- commits made outside featureledger (in process) ---------------------------------------


def test_external_commit_is_recorded_before_the_next_ingest(store: FeatureStore) -> None:
    table = DeltaGroupTable(store._svc.tables.table("stats", 1).path)
    batch = rows([500, 501], 0, 0, 5).cast(STATS.arrow_schema)
    assert table.append(batch, "external-run") == 2
    v = store.ingest("stats", rows([600], 0, 0, 6))
    assert v.version == 3
    versions = store.versions("stats")
    assert [x.version for x in versions] == [0, 1, 2, 3]
    assert versions[2].run_id == "external-run" and "recovered" in versions[2].note
    assert versions[2].rows == 12
    assert v.content == content_hash(store.read("stats"))
    check_books(store)


def test_external_commit_during_an_ingest_is_recounted(
    store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that ignores the lock commits between our read and our commit."""
    original = DeltaGroupTable.append
    calls = []

    def sneaky_append(self, data, run_id):
        if not calls:
            calls.append(run_id)
            original(self, rows([900], 0, 0, 9).cast(STATS.arrow_schema), "sneaky")
        return original(self, data, run_id)

    monkeypatch.setattr(DeltaGroupTable, "append", sneaky_append)
    v = store.ingest("stats", rows([800], 0, 0, 8))
    assert v.version == 3 and v.run_id == calls[0]
    versions = store.versions("stats")
    assert [x.version for x in versions] == [0, 1, 2, 3]
    assert versions[2].run_id == "sneaky" and "recovered" in versions[2].note
    assert v.rows == 12 and v.content == content_hash(store.read("stats"))
    assert run_statuses(store)[v.run_id] == "succeeded"
    check_books(store)


def test_readers_leave_a_live_writers_commit_to_that_writer(store: FeatureStore) -> None:
    """A reader must not record a commit whose writer is still about to record it."""
    table = store._svc.tables.table("stats", 1)
    seen: dict[str, list[int]] = {}

    def reader() -> None:
        seen["versions"] = [v.version for v in FeatureStore(store.repo).versions("stats")]

    with table.lock():  # a writer between its Delta commit and its registry record
        table.append(rows([70], 0, 0, 7).cast(STATS.arrow_schema), "live-writer")
        thread = threading.Thread(target=reader)
        thread.start()
        thread.join()
        assert seen["versions"] == [0, 1]
        assert store.registry.data_version("stats", 1, 2) is None
    # had the writer died instead, the next operation recovers its commit
    versions = store.versions("stats")
    assert [v.version for v in versions] == [0, 1, 2]
    assert versions[2].run_id == "live-writer"
    check_books(store)


APPLIER = """
    from featureledger import Entity, FeatureGroup, Field

    go = sys.argv[2]
    user = Entity("user", join_keys=["user_id"])
    stats = FeatureGroup("stats", user, features=[Field("clicks", "int64"), Field("spend")],
                         created_time="created")
    other = FeatureGroup("other", user, features=["x"])
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.002)
    plan = store.apply([user, stats, other])
    print(json.dumps(sorted(i.action for i in plan.items)))
"""


@pytest.mark.subprocess
def test_two_processes_applying_the_same_definitions(tmp_path: Path) -> None:
    """Pipelines commonly apply their definitions at start-up; two may do so at once."""
    repo = FeatureStore.init(tmp_path / "repo").repo
    go = tmp_path / "go"
    procs = [child(tmp_path, f"apply{i}", APPLIER, str(repo), str(go)) for i in range(2)]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.touch()
    results = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=60)
        assert p.returncode == 0, stderr
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    # one created everything, the other found it unchanged
    assert sorted(results) == [["create"] * 3, ["unchanged"] * 3]
    store = FeatureStore(repo)
    for kind, name in (("entity", "user"), ("feature_group", "stats"), ("feature_group", "other")):
        assert [d.semver for d in store.registry.definitions(kind, name)] == ["1.0.0"]
    for group in ("stats", "other"):
        assert [v.version for v in store.versions(group)] == [0]
    assert store.registry.audit_verify() == []


EXIT_CLEANLY = """
    import pandas as pd
    from featureledger import Entity, FeatureGroup, Field

    city = Entity("city", join_keys=[Field("city_id", "string")])
    fg = FeatureGroup("cities", city, features=[Field("country", "string")], event_time=None)
    store.apply([city, fg])
    frame = pd.DataFrame({"city_id": ["b", "p"], "country": ["DE", "FR"]})
    for data in (frame, frame.astype({"country": "category"}), frame):
        store.ingest("cities", data)
    store.read("cities")
    print("done", flush=True)
"""


@pytest.mark.slow
@pytest.mark.subprocess
def test_processes_exit_cleanly(tmp_path: Path) -> None:
    """A script that used the store must exit 0, not abort in DuckDB's teardown."""
    for i in range(2):
        repo = FeatureStore.init(tmp_path / f"repo{i}").repo
        proc = child(tmp_path, f"clean{i}", EXIT_CLEANLY, str(repo))
        stdout, stderr = proc.communicate(timeout=60)
        assert stdout.strip() == "done"
        assert proc.returncode == 0, stderr
