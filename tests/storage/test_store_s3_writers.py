"""Writers of one S3 table through `FeatureStore`: concurrent ingests retry lost commit
races instead of failing, and a commit whose writer died before recording it is
recovered by the next operation, while a live writer's commit is left to it."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import yaml

from featureledger import FeatureStore, content_hash
from featureledger.store._records import VersionRecords
from featureledger.versioning.writer import rebuild_content
from writer_processes import STATS, USER, child, rows

from .conftest import make_s3_repo

WRITERS = 8
BATCHES = 4
SHARED = 9999  # a key every writer restates: the newest created_time must win


@pytest.fixture
def repo(tmp_path: Path, s3_endpoint: str, aws_env: None) -> Path:
    """A repository with its tables in a fresh bucket, the group applied, one version."""
    path = tmp_path / "repo"
    make_s3_repo(path, s3_endpoint)
    with FeatureStore(path) as store:
        store.apply([USER, STATS])
        store.ingest("stats", rows(list(range(10)), 0, 0, -1))
    return path


def check_books(store: FeatureStore) -> None:
    """Versions contiguous up to the table's latest, each hash equal to a recount."""
    versions = store.versions("stats")
    table = store._svc.tables.table("stats", 1)
    assert [v.version for v in versions] == list(range(table.latest_version() + 1))
    for v in versions:
        data = store.read("stats", version=v.version)
        assert v.content == content_hash(data), f"version {v.version}"
        assert v.rows == data.num_rows


WRITER = """
    me, batches, go = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    open(f"{go}.ready{me}", "w").close()
    while not os.path.exists(go):
        time.sleep(0.01)
    out = []
    for j in range(batches):
        v = store.ingest("stats", rows([1000 * (me + 1) + j, 9999], 1 + j, 10 * me + j, me))
        out.append({"version": v.version, "run": v.run_id, "note": v.note})
    store.close()
    print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.subprocess
def test_eight_processes_ingesting_one_s3_table_lose_and_duplicate_no_version(
    repo: Path, tmp_path: Path
) -> None:
    go = str(tmp_path / "go")
    procs = [
        child(tmp_path, f"writer{w}", WRITER, str(repo), str(w), str(BATCHES), go)
        for w in range(WRITERS)
    ]
    deadline = time.monotonic() + 120
    while not all(os.path.exists(f"{go}.ready{w}") for w in range(WRITERS)):
        assert time.monotonic() < deadline, [p.poll() for p in procs]
        time.sleep(0.05)
    start = time.perf_counter()
    Path(go).touch()
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=900)
        assert p.returncode == 0, stderr[-3000:]  # no error: lost races were retried
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    elapsed = time.perf_counter() - start

    writes = [v for out in outs for v in out]
    # every batch holds a key no other batch writes, so every ingest makes one version
    assert sorted(v["version"] for v in writes) == list(range(2, 2 + WRITERS * BATCHES))
    store = FeatureStore(repo)
    versions = store.versions("stats")
    assert [v.version for v in versions] == list(range(2 + WRITERS * BATCHES))
    by_version = {v.version: v for v in versions}
    for w in writes:
        assert by_version[w["version"]].run_id == w["run"]  # recorded by its own writer
        assert "recovered" not in by_version[w["version"]].note
    assert all(store.registry.run(w["run"]).status == "succeeded" for w in writes)
    # the recorded content hash equals a recomputation from the rows at every version
    table = store._svc.tables.table("stats", 1)
    for v in versions:
        assert v.content == rebuild_content(table, v.version), f"version {v.version}"
    check_books(store)
    # the rows are those of any serial order: the newest created_time wins the shared key
    latest = store.read("stats")
    got = {(r["user_id"], r["event_timestamp"].hour): r["clicks"] for r in latest.to_pylist()}
    expected = {(u, 0): -1 for u in range(10)}
    expected |= {(1000 * (w + 1) + j, 1 + j): w for w in range(WRITERS) for j in range(BATCHES)}
    expected |= {(SHARED, 1 + j): WRITERS - 1 for j in range(BATCHES)}
    assert got == expected and latest.num_rows == len(expected)
    retried = sum(
        int(n.split("after ")[1].split(" lost")[0])
        for n in (w["note"] for w in writes)
        if "lost commit race" in n
    )
    print(
        f"\n{WRITERS} processes x {BATCHES} FeatureStore.ingest on one S3 table: "
        f"{len(writes)} versions in {elapsed:.1f} s, {retried} lost commit races retried"
    )
    store.close()


CRASH_AFTER_COMMIT = """
    # die after the S3 commit, before the registry records the version
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
def test_a_commit_whose_writer_was_killed_is_recovered_by_the_next_operation(
    repo: Path, tmp_path: Path
) -> None:
    store = FeatureStore(repo)
    before = store.versions("stats")
    proc = child(tmp_path, "crash_after", CRASH_AFTER_COMMIT, str(repo))
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, stderr[-3000:]
    assert json.loads(stdout.strip()) == {"version": 2}
    table = store._svc.tables.table("stats", 1)
    assert table.latest_version() == 2
    assert store.registry.data_version("stats", 1, 2) is None  # not recorded yet
    logged = table.commit(2).content
    assert logged is not None  # the S3 commit carries the hash its writer computed

    fresh = FeatureStore(repo)  # the default grace period (15 min) has not passed
    versions = fresh.versions("stats")  # any operation records the missing version
    assert [v.version for v in versions] == [0, 1, 2]
    assert versions[:2] == before
    recovered = versions[2]
    assert "recovered" in recovered.note
    with fresh.registry.engine.connect() as conn:
        from featureledger.registry.sql import runs_table

        running = [r.id for r in conn.execute(runs_table.select()) if r.status == "running"]
    assert running == [recovered.run_id]  # matched through the commit's metadata
    data = fresh.read("stats")
    assert recovered.content == logged == content_hash(data)
    assert recovered.rows == data.num_rows == 50 and recovered.files
    # and the next ingest builds on it incrementally
    nxt = fresh.ingest("stats", rows([1, 60], 0, 20, 8))
    assert (nxt.version, nxt.rows) == (3, 51)
    assert "recovered" not in nxt.note
    check_books(fresh)


def test_a_live_writers_commit_is_left_for_it_to_record(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another store reading between the commit and its record must not record it: the
    writer is alive on this host and its run is still running."""
    writer, reader = FeatureStore(repo), FeatureStore(repo)
    original = VersionRecords.record
    seen: list[list[int]] = []

    def look_first(self, group, table, version, operation, *args, **kwargs):  # type: ignore[no-untyped-def]
        if operation == "upsert" and not seen:
            seen.append([v.version for v in reader.versions("stats")])
            # a writer of its own builds on the unrecorded commit by its logged hash
            seen.append([reader.ingest("stats", rows([777], 3, 30, 3)).version])
        return original(self, group, table, version, operation, *args, **kwargs)

    monkeypatch.setattr(VersionRecords, "record", look_first)
    mine = writer.ingest("stats", rows([500], 2, 20, 5))
    assert seen == [[0, 1], [3]]
    assert mine.version == 2 and "recovered" not in mine.note
    assert writer.registry.data_version("stats", 1, 2).run_id == mine.run_id
    check_books(writer)


def test_a_commit_made_outside_featureledger_is_recorded_before_the_next_ingest(
    repo: Path,
) -> None:
    """No run of the registry made it, so no writer will record it: the next operation does."""
    store = FeatureStore(repo)
    table = store._svc.tables.table("stats", 1)
    assert table.append(rows([900, 901], 0, 0, 9).cast(STATS.arrow_schema), "external") == 2
    v = store.ingest("stats", rows([600], 0, 0, 6))
    assert v.version == 3 and v.rows == 13
    versions = store.versions("stats")
    assert versions[2].run_id == "external" and "recovered" in versions[2].note
    assert versions[2].rows == 12
    check_books(store)


def test_an_open_runs_commit_is_recovered_after_the_grace_period(repo: Path) -> None:
    """A commit whose run is still open and whose writer may be alive (here: this very
    process; elsewhere: another machine) is left unrecorded until ``storage.recover_after``
    has passed; writers build on it meanwhile and readers still check every file."""
    store = FeatureStore(repo)
    run = store._svc.runs.start("ingest", "elsewhere", {"group": "stats"})
    table = store._svc.tables.table("stats", 1)
    assert table.append(rows([900, 901], 0, 0, 9).cast(STATS.arrow_schema), run.id) == 2
    assert [v.version for v in store.versions("stats")] == [0, 1]
    v = store.ingest("stats", rows([600], 0, 0, 6))  # built on the unrecorded commit
    assert v.version == 3 and v.rows == 13
    assert v.content == content_hash(store.read("stats"))
    assert [x.version for x in store.versions("stats")] == [0, 1, 3]
    config = yaml.safe_load((repo / "featureledger.yaml").read_text())
    config["storage"]["recover_after"] = 0
    (repo / "featureledger.yaml").write_text(yaml.safe_dump(config))
    later = FeatureStore(repo)
    versions = later.versions("stats")
    assert [x.version for x in versions] == [0, 1, 2, 3]
    assert versions[2].run_id == run.id and "recovered" in versions[2].note
    assert versions[2].rows == 12
    check_books(later)
