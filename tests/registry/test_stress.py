"""8 processes x 25 mixed operations through the public FeatureStore API on one repository.

Each process cycles through apply (a view of its own, re-described each round, beside the
shared definitions), ingest (rows of its own plus shared keys every process rewrites),
training_data, create_token and register_model. Afterwards: no errors, every numbered
series 1..N without gaps or duplicates, one audit entry per operation and an intact chain.
Run with ``-s`` to see the figures docs/reliability.md records.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field

PROCESSES = 8
OPS = 25
T0 = datetime(2024, 1, 1, tzinfo=UTC)
USER = Entity("user", join_keys=["user_id"])
STATS = FeatureGroup("stats", USER, features=[Field("clicks", "int64")])
FRAUD = FeatureView("fraud", [STATS])

WORKER = textwrap.dedent("""
    import json, os, sys, time, traceback
    from datetime import UTC, datetime, timedelta
    from pathlib import Path
    import pyarrow as pa
    from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field

    repo, me, go, ops = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    T0 = datetime(2024, 1, 1, tzinfo=UTC)
    user = Entity("user", join_keys=["user_id"])
    stats = FeatureGroup("stats", user, features=[Field("clicks", "int64")])
    fraud = FeatureView("fraud", [stats])
    store = FeatureStore(repo)
    Path(f"{go}.ready{me}").touch()
    while not os.path.exists(go):
        time.sleep(0.005)
    results, last_td = [], None
    for i in range(ops):
        op = ("apply", "ingest", "training_data", "create_token", "register_model")[i % 5]
        started = time.perf_counter()
        try:
            if op == "apply":
                mine = FeatureView(f"view_p{me}", [stats], description=f"round {i}")
                store.apply([user, stats, fraud, mine])
                got = store.get_feature_view(f"view_p{me}").description
            elif op == "ingest":
                at = T0 + timedelta(hours=i)
                got = store.ingest("stats", {
                    "user_id": [1000 * (me + 1) + i, 1, 2],
                    "event_timestamp": [at, at, at],
                    "clicks": [i, me, me],
                }).version
            elif op == "training_data":
                frame = pa.table({"user_id": [1, 2, 1000 * (me + 1)],
                                  "event_timestamp": [T0 + timedelta(days=2)] * 3})
                last_td = store.training_data("fraud", frame)
                got = last_td.record.number
            elif op == "create_token":
                got = len(store.create_token("reader", ["fraud"], purpose=f"p{me}"))
            else:
                artifact = Path(repo).parent / f"model-p{me}-{i}.bin"
                artifact.write_text(f"weights {me} {i}")
                got = store.register_model(
                    "fraud_model", artifact, training_dataset=last_td, metrics={"auc": 0.9}
                ).version
            results.append({"op": op, "got": got, "error": None})
        except Exception as exc:
            results.append({"op": op, "got": None,
                            "error": f"{type(exc).__name__}: {exc}"[:500]})
        results[-1]["seconds"] = time.perf_counter() - started
    store.close()
    print(json.dumps(results))
""")


@pytest.mark.slow
@pytest.mark.subprocess
def test_many_processes_mixed_operations(registry_url: str, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".featureledger").mkdir(parents=True)
    backend = registry_url.split(":", 1)[0].split("+", 1)[0]
    (repo / "featureledger.yaml").write_text(f"project: stress\nregistry: {registry_url}\n")
    store = FeatureStore(repo)
    store.apply([USER, STATS, FRAUD])
    store.ingest("stats", {"user_id": [1, 2], "event_timestamp": [T0, T0], "clicks": [0, 0]})
    store.close()
    setup_entries = len(store.registry.audit_log())
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    go = str(tmp_path / "go")
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(repo), str(me), go, str(OPS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "FEATURELEDGER_USER": f"p{me}"},
        )
        for me in range(PROCESSES)
    ]
    deadline = time.monotonic() + 300
    while not all(os.path.exists(f"{go}.ready{me}") for me in range(PROCESSES)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), [
            p.communicate()[1][-2000:] for p in procs if p.poll() is not None
        ]
        time.sleep(0.02)
    started = time.perf_counter()
    Path(go).touch()
    outputs = [p.communicate(timeout=900) for p in procs]
    seconds = time.perf_counter() - started
    assert [p.returncode for p in procs] == [0] * PROCESSES, [err[-2000:] for _, err in outputs]
    results = [r for out, _ in outputs for r in json.loads(out.strip().splitlines()[-1])]
    errors = [r["error"] for r in results if r["error"]]
    per_kind = {
        op: sorted(r["seconds"] for r in results if r["op"] == op)
        for op in dict.fromkeys(r["op"] for r in results)
    }
    print(
        f"\nSTRESS {backend}: {PROCESSES} processes x {OPS} ops = {len(results)} ops, "
        f"{len(errors)} errors, {seconds:.1f} s wall; per op median/max s: "
        + ", ".join(f"{op} {t[len(t) // 2]:.2f}/{t[-1]:.2f}" for op, t in per_kind.items())
    )
    assert errors == []

    books = FeatureStore(repo)
    per_op = PROCESSES * OPS // 5
    numbers = sorted(r["got"] for r in results if r["op"] == "training_data")
    assert numbers == list(range(1, per_op + 1))
    assert [t.number for t in books.training_datasets("fraud")] == numbers
    models = sorted(r["got"] for r in results if r["op"] == "register_model")
    assert models == list(range(1, per_op + 1))
    assert [m.version for m in books.models("fraud_model")] == models
    versions = [v.version for v in books.versions("stats")]
    assert versions == list(range(per_op + 2))  # 0 (apply), the setup ingest, then ours
    assert sorted(r["got"] for r in results if r["op"] == "ingest") == versions[2:]
    assert len(books.tokens()) == per_op
    for me in range(PROCESSES):  # created, then re-described 4 times: patch versions
        semvers = [d.semver for d in books.registry.definitions("feature_view", f"view_p{me}")]
        assert semvers == ["1.0.0", "1.0.1", "1.0.2", "1.0.3", "1.0.4"]
    log = books.registry.audit_log()
    assert [e.seq for e in log] == list(range(1, setup_entries + PROCESSES * OPS + 1))
    assert books.audit_verify() == []
    books.close()
