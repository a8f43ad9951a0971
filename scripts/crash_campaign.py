"""Crash campaign: kill -9 at random points of ingest, materialization, pipeline runs and
training data, and check the books and the online copy after every kill.

    python scripts/crash_campaign.py --kills 200 [--online sqlite|redis] [--seed 1]

Children are forked from a preloaded fork server (multiprocessing "forkserver"), so a kill
costs no interpreter start-up. Each child opens the repository, signals that its operation
starts, and is killed with SIGKILL after a random delay drawn from 0 to that operation's
measured duration.
``--kills`` counts kills that landed inside an operation (a child that finished before its
delay ran out is counted apart, and tightens that operation's delay range). After every
attempt a fresh `FeatureStore` checks:

- online holes: entities of the materialized group reading NULL, and reads mixing values of
  two data versions (every version writes one value to all entities);
- lost versions: a version a child reported committed that the registry no longer lists;
  half-written versions: a recorded version failing `verify` (files' SHA-256, content hash);
  Delta commits no registry record names (``unrecorded``), counted after the next open;
- versions without an audit entry;
- the previous latest version: still readable with its recorded row count and content hash;
- runs still "running" once listed (a killed run must be found abandoned);
- training sets: every recorded one passes `verify`.

Figures go to stdout as JSON (and ``--out``); docs/reliability.md records a run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

T0 = datetime(2024, 1, 1, tzinfo=UTC)
N = int(os.environ.get("FL_CAMPAIGN_ENTITIES", "5000"))
OPS = ("ingest", "materialize-full", "materialize-incremental", "pipeline", "training-data")
GONE_RUN_STATES = ("running",)


def _definitions() -> list[Any]:
    from featureledger import Entity, FeatureGroup, FeatureView, Field
    from featureledger.definitions import FileSource, SQLTransform

    user = Entity("user", join_keys=["user_id"])
    group = FeatureGroup("g", user, features=[Field("value")], online=True)
    daily = FeatureGroup(
        "daily",
        user,
        features=[Field("spend", "float64"), Field("n", "int64")],
        source=FileSource("raw/txns.parquet"),
        transform=SQLTransform(
            "SELECT user_id, date_trunc('day', event_timestamp) + INTERVAL 1 DAY AS "
            "event_timestamp, sum(amount) AS spend, count(*) AS n FROM source GROUP BY ALL"
        ),
    )
    return [user, group, daily, FeatureView("v", [group])]


def _rows(value: float) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array(range(N), pa.int64()),
            "event_timestamp": pa.array(
                [T0 + timedelta(minutes=value)] * N, pa.timestamp("us", tz="UTC")
            ),
            "value": pa.array([value] * N, pa.float64()),
        }
    )


def _entities() -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array(range(0, N, 5), pa.int64()),
            "event_timestamp": pa.array(
                [T0 + timedelta(days=400)] * len(range(0, N, 5)), pa.timestamp("us", tz="UTC")
            ),
        }
    )


def child(repo: str, op: str, value: float, conn: Any) -> None:
    """One operation in a forked child; tells the parent when it starts and what it wrote."""
    from featureledger import FeatureStore

    store = FeatureStore(repo)
    conn.send(("start", None))
    done: Any = None
    if op == "ingest":
        done = store.ingest("g", _rows(value)).version
    elif op == "materialize-full":
        done = [m.version for m in store.materialize(incremental=False)]
    elif op == "materialize-incremental":
        done = [m.version for m in store.materialize()]
    elif op == "pipeline":
        day = int(value) % 20
        out = store.run_pipeline(
            "daily", start=T0 + timedelta(days=day), end=T0 + timedelta(days=day + 3)
        )
        done = getattr(out, "version", None)
    elif op == "training-data":
        done = store.training_data("v", _entities()).record.number
    store.close()
    conn.send(("done", done))
    conn.close()
    os._exit(0)


def _write_raw(repo: Path) -> None:
    (repo / "raw").mkdir(exist_ok=True)
    n = 2000
    pq.write_table(
        pa.table(
            {
                "user_id": [i % 50 for i in range(n)],
                "event_timestamp": [T0 + timedelta(minutes=17 * i) for i in range(n)],
                "amount": [float(i % 13) for i in range(n)],
            }
        ),
        repo / "raw" / "txns.parquet",
    )


def _start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed: run scripts/install-services.sh")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    return proc, f"redis://127.0.0.1:{port}/0"


class Checker:
    """The checks run after every kill, with running totals."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.totals: Counter[str] = Counter()
        self.verified: set[str] = set()
        self.reported: set[int] = set()  # versions of g children said they committed
        self.problems: list[str] = []
        # conditions that persist between checks are counted once each, by identity
        self.unaudited: set[str] = set()
        self.half_written: set[str] = set()
        self.unrecorded: set[str] = set()
        self.ever_unaudited: set[str] = set()

    def check(self, previous: dict[str, tuple[int, int, str]]) -> dict[str, tuple[int, int, str]]:
        from featureledger import FeatureStore

        store = FeatureStore(self.repo)
        try:
            found: dict[str, int] = Counter()
            # online copy
            if store.online_store().tables():
                got = store.get_online_features(
                    "v", {"user_id": list(range(N))}, now=T0 + timedelta(days=4000)
                ).to_dict()["value"]
                holes = sum(v is None for v in got)
                found["online_holes"] += holes
                found["online_mixed_reads"] += len(set(got) - {None}) > 1
            # runs: a killed run must be abandoned once runs are listed
            found["runs_left_running"] += len(store.runs("running"))
            audited = {e.object for e in store.audit_log()}
            latest: dict[str, tuple[int, int, str]] = {}
            for group in ("g", "daily"):
                versions = store.versions(group)
                numbers = {v.version for v in versions}
                if group == "g":
                    found["lost_versions"] += len(self.reported - numbers)
                for v in versions:
                    ident = f"feature_group/{group}@v1#{v.version}"
                    # version 0 is the empty table `apply` creates: audited as that apply
                    if ident not in audited and v.version > 0:
                        self.unaudited.add(ident)
                    else:
                        self.unaudited.discard(ident)  # a recovery may write it later
                    if ident not in self.verified:
                        report = store.verify(ident)[0]
                        if report.ok:
                            self.verified.add(ident)
                            self.half_written.discard(ident)
                        else:
                            self.half_written.add(ident)
                            self.problems.append(f"{ident}: {report.problems}")
                if versions:
                    last = versions[-1]
                    latest[group] = (last.version, last.rows, str(last.content))
                # the previous latest version: still readable, same rows and hash
                if group in previous:
                    number, rows, content = previous[group]
                    try:
                        table = store.read(group, version=number)
                        record = next(v for v in versions if v.version == number)
                        ok = table.num_rows == rows and str(record.content) == content
                    except Exception as exc:  # any failure is the finding
                        ok = False
                        self.problems.append(f"{group}#{number} unreadable: {exc}")
                    found["previous_version_unreadable"] += not ok
                # Delta commits without a registry record (the log is the truth on disk)
                logs = list((self.repo / ".featureledger").rglob(f"{group}*/_delta_log/*.json"))
                commits = {int(p.stem) for p in logs if p.stem.isdigit()}
                self.unrecorded |= {f"{group}#{c}" for c in commits - numbers}
            for record in store.training_datasets("v"):
                ident = f"training_dataset/v@v1/{record.number}"
                if ident not in self.verified:
                    report = store.verify(ident)[0]
                    if report.ok:
                        self.verified.add(ident)
                    else:
                        found["bad_training_sets"] += 1
                        self.problems.append(f"{ident}: {report.problems}")
            self.ever_unaudited |= self.unaudited
            self.totals.update(found)
            self.totals["versions_without_audit"] = len(self.ever_unaudited)
            self.totals["versions_without_audit_at_end"] = len(self.unaudited)
            self.totals["half_written_versions"] = len(self.half_written)
            self.totals["unrecorded_commits"] = len(self.unrecorded)
            return latest
        finally:
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--online", choices=("sqlite", "redis"), default="sqlite")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the repository afterwards")
    args = parser.parse_args()

    from featureledger import FeatureStore

    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="fl-crash-"))
    repo = work / "repo"
    redis_proc = None
    FeatureStore.init(repo).close()
    if args.online == "redis":
        import yaml

        redis_proc, url = _start_redis(work)
        config = repo / "featureledger.yaml"
        data = yaml.safe_load(config.read_text())
        data["online"] = {"type": "redis", "url": url}
        config.write_text(yaml.safe_dump(data))
    _write_raw(repo)
    with FeatureStore(repo) as store:
        store.apply(_definitions())
        store.ingest("g", _rows(0.0))
        store.materialize()

    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["featureledger", "featureledger.store", "pyarrow", "deltalake"])
    checker = Checker(repo)
    value = 0.0

    def run(op: str, delay: float | None) -> tuple[str, float, Any]:
        """Run ``op`` in a child; kill it ``delay`` s after it starts (None: let it end)."""
        nonlocal value
        if op == "ingest":
            value += 1.0
        parent, conn = ctx.Pipe()
        proc = ctx.Process(target=child, args=(str(repo), op, value, conn))
        proc.start()
        conn.close()
        if not parent.poll(120):
            proc.kill()
            proc.join()
            return "no-start", 0.0, None
        parent.recv()
        started = time.monotonic()
        outcome, result = "done", None
        if delay is None:
            if parent.poll(600):
                result = parent.recv()[1]
        else:
            if parent.poll(delay):  # finished before the kill
                result = parent.recv()[1]
                outcome = "finished-before-kill"
            else:
                os.kill(proc.pid, signal.SIGKILL)
                outcome = "killed"
        proc.join()
        if op == "ingest" and result is not None:
            checker.reported.add(int(result))
        return outcome, time.monotonic() - started, result

    # one clean run of each operation: its duration bounds the kill delays
    durations = {}
    for op in OPS:
        outcome, took, _ = run(op, None)
        durations[op] = max(took, 0.05)
    previous = checker.check({})
    per_op: dict[str, Counter[str]] = {op: Counter() for op in OPS}
    started = time.monotonic()
    landed = attempts = 0
    # --kills counts kills that landed inside an operation; a child that finished before
    # its delay ran out is counted apart, and its time tightens that operation's range
    while landed < args.kills and attempts < 3 * args.kills:
        op = OPS[attempts % len(OPS)]
        attempts += 1
        delay = rng.uniform(0.0, durations[op])
        outcome, took, _ = run(op, delay)
        per_op[op][outcome] += 1
        if outcome == "killed":
            landed += 1
        elif outcome == "finished-before-kill":
            durations[op] = max(0.05, 0.5 * durations[op] + 0.5 * took)
        previous = checker.check(previous)
        if attempts % 20 == 0:
            print(
                f"{attempts} attempts, {landed} kills, totals so far {dict(checker.totals)}",
                file=sys.stderr,
            )
    # the next calls repair: a materialization brings the copy to the latest version
    with FeatureStore(repo) as store:
        store.materialize()
        got = store.get_online_features(
            "v", {"user_id": list(range(N))}, now=T0 + timedelta(days=4000)
        ).to_dict()["value"]
        latest_value = store.read("g").column("value").to_pylist()[0]
        final = {
            "online_holes_after_repair": sum(v is None for v in got),
            "online_stale_after_repair": sum(v != latest_value for v in got),
            "runs": Counter(f"{r.kind}:{r.status}" for r in store.runs()),
            "builds_left": len(store.online_store().builds()),
        }
    report = {
        "kills": landed,
        "attempts": attempts,
        "online": args.online,
        "entities": N,
        "seed": args.seed,
        "seconds": round(time.monotonic() - started, 1),
        "load_average": os.getloadavg(),
        "op_seconds": {op: round(d, 2) for op, d in durations.items()},
        "outcomes": {op: dict(c) for op, c in per_op.items()},
        "totals": {
            key: checker.totals.get(key, 0)
            for key in (
                "online_holes",
                "online_mixed_reads",
                "lost_versions",
                "half_written_versions",
                "unrecorded_commits",
                "versions_without_audit",
                "versions_without_audit_at_end",
                "previous_version_unreadable",
                "runs_left_running",
                "bad_training_sets",
            )
        },
        "final": final,
        "problems": checker.problems[:20],
        "unaudited": sorted(checker.ever_unaudited)[:20],
    }
    text = json.dumps(report, indent=2, default=dict)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    if redis_proc is not None:
        redis_proc.terminate()
        redis_proc.wait()
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"repository kept at {repo}", file=sys.stderr)


if __name__ == "__main__":
    main()
