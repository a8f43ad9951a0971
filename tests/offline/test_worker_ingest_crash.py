"""kill -9 between the workers' writes and the commit (Daft engine, native runner).

A child process ingests an upsert that replaces stored rows; it is stopped right after the
workers wrote the batch's files and before the one Delta commit, and killed with SIGKILL.
What a user would notice: the previous version stays the latest, readable and unchanged
(the written files are in no version), the next ingest succeeds and gives DuckDB's
version, and `vacuum` is what deletes the orphaned files. Every Daft call runs in a child
process; this process only reads the table and compares.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from featureledger import Entity, FeatureGroup, FeatureStore, Field
from featureledger.offline import DeltaGroupTable
from featureledger.versioning.writer import rebuild_content

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

T0 = datetime(2025, 1, 1, tzinfo=UTC)
TS = "event_timestamp"
USER = Entity("user", join_keys=["user_id"])
GROUP = FeatureGroup("g", USER, [Field("x", "float64")])
#: seconds a child may take (Daft's start on a loaded 2-core machine included)
WAIT = 240

CHILD = textwrap.dedent("""
    import sys, time
    import pyarrow as pa
    from featureledger import FeatureStore
    from featureledger.offline.delta import DeltaGroupTable

    repo, mode, data = sys.argv[1:4]
    store = FeatureStore(repo)
    assert store.engine.name == "daft", store.engine.name
    batch = pa.ipc.open_file(data).read_all()
    if mode == "crash":
        # stop where a crash hurts most: the workers wrote every file, nothing committed
        def stopped(self, files, *args, **kwargs):
            print("written", *[f.path for f in files], flush=True)
            time.sleep(3600)
        DeltaGroupTable.commit_files = stopped
    done = store.ingest("g", batch)
    print("done", done.version, done.content, flush=True)
""")


def _batch(rows: list[tuple[int, int, float]]) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array([k for k, _, _ in rows], pa.int64()),
            TS: pa.array(
                [T0 + timedelta(seconds=s) for _, s, _ in rows], pa.timestamp("us", "UTC")
            ),
            "x": pa.array([x for _, _, x in rows], pa.float64()),
        }
    )


FIRST = _batch([(1, 0, 1.0), (2, 0, 2.0), (3, 5, 3.0)])
# replaces (1, 0) and (3, 5), adds (4, 1): the stored file is rewritten in that commit
SECOND = _batch([(1, 0, 10.0), (3, 5, 30.0), (4, 1, 4.0)])


def _child(script: Path, repo: Path, mode: str, data: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(script), str(repo), mode, str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _ingest(script: Path, repo: Path, tmp: Path, batch: pa.Table) -> tuple[int, str]:
    data = _save(tmp, batch)
    child = _child(script, repo, "ingest", data)
    try:
        out, err = child.communicate(timeout=WAIT)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err
    _, version, content = out.strip().splitlines()[-1].split()
    return int(version), content


def _save(tmp: Path, batch: pa.Table) -> Path:
    path = tmp / f"batch-{len(list(tmp.glob('batch-*')))}.arrow"
    with pa.ipc.new_file(path, batch.schema) as writer:
        writer.write_table(batch)
    return path


def test_kill_after_worker_writes_leaves_previous_version(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    repo = tmp_path / "repo"
    FeatureStore.init(repo).apply([USER, GROUP])
    config = repo / "featureledger.yaml"
    config.write_text(config.read_text().replace("engine: duckdb", "engine: daft"))
    duck = FeatureStore.init(tmp_path / "duck")
    duck.apply([USER, GROUP])

    v1, c1 = _ingest(script, repo, tmp_path, FIRST)
    assert (v1, c1) == (1, str(duck.ingest("g", FIRST).content))
    (log,) = repo.rglob("g/v1/_delta_log")  # under the repository's offline.path
    table = DeltaGroupTable(log.parent)
    files_v1 = sorted(table.files(v1))
    rows_v1 = table.read(v1).to_pylist()

    child = _child(script, repo, "crash", _save(tmp_path, SECOND))
    try:
        assert child.stdout is not None
        line = child.stdout.readline().split()
        assert line[:1] == ["written"], child.stderr.read() if child.stderr else line
        orphans = line[1:]
        assert orphans and all((table.path / p).is_file() for p in orphans)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(WAIT)
    assert child.returncode == -signal.SIGKILL

    # the previous version is still the latest, readable and unchanged
    fresh = DeltaGroupTable(table.path)
    assert fresh.latest_version() == v1
    assert sorted(fresh.files(v1)) == files_v1
    assert fresh.read(v1).to_pylist() == rows_v1
    assert str(rebuild_content(fresh, v1)) == c1
    assert not set(orphans) & {Path(f).name for f in fresh.files(v1)}

    # the next write succeeds and gives DuckDB's version
    v2, c2 = _ingest(script, repo, tmp_path, SECOND)
    want = duck.ingest("g", SECOND)
    assert (v2, c2) == (want.version, str(want.content))
    keys = [("user_id", "ascending"), (TS, "ascending")]
    got = DeltaGroupTable(table.path).read(v2).sort_by(keys)
    assert got.to_pylist() == duck.read("g").sort_by(keys).select(got.column_names).to_pylist()
    assert not set(orphans) & {Path(f).name for f in DeltaGroupTable(table.path).files(v2)}

    # vacuum is what deletes them (it dates them by modification time), and only them
    # when every version is kept
    table = DeltaGroupTable(table.path)
    assert table.vacuum(1, keep=[0, 1, 2], dry_run=True) == []
    listed = table.vacuum(0, keep=[0, 1, 2], dry_run=False)
    assert sorted(Path(p).name for p in listed) == sorted(orphans)
    assert not any((table.path / p).exists() for p in orphans)
    assert table.read(v1).to_pylist() == rows_v1
    assert table.read(v2).num_rows == got.num_rows
