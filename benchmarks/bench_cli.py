"""CLI start-up: `featureledger --help` and the light commands, beside `feast --help`.

    python benchmarks/bench_cli.py [--repeat 15] [--baseline-src DIR] [--json PATH]

Each command runs ``--repeat`` times as a new process (after one untimed warm-up run, so
bytecode caches are written), the commands taking turns so a burst of load elsewhere on the
machine hits them alike. Wall time is measured around the process; CPU time (user + system)
is the child's own, from wait4. Printed per command: median and best wall, median CPU.

Commands: ``featureledger --help``, ``featureledger list groups``, ``featureledger versions
stats`` and ``featureledger show feature_group/stats@v1#1`` on a small repository built here
(one entity, one group with two data versions, one view), run by the console script beside
this interpreter with this interpreter's ``sys.path`` first (so a worktree's ``src`` on
PYTHONPATH is what runs). ``--baseline-src DIR`` also runs the same commands with DIR (the
``src`` folder of another checkout, e.g. the commit before a change) first on the path.

``feast --help`` runs from benchmarks/.venv-feast (benchmarks/setup_feast.sh) when it
exists; otherwise a note says it was skipped. Ratios are Feast's median wall over
featureledger's. Target (issue 17): under 0.3 s for `--help`, `list`, `versions`, `show`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FEAST_VENV, machine_facts

TARGET_S = 0.3


def build_repo(root: Path) -> Path:
    """A small repository: entity user, group stats (two data versions), view fraud."""
    from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field

    store = FeatureStore.init(root / "repo")
    user = Entity("user", join_keys=["user_id"])
    stats = FeatureGroup(
        "stats", user, features=[Field("spend", "float64"), Field("n", "int64")], online=True
    )
    store.apply([user, stats, FeatureView("fraud", [stats])])
    t0 = datetime(2025, 3, 1, tzinfo=UTC)
    for day in range(2):
        ids = list(range(1000))
        store.ingest(
            "stats",
            {
                "user_id": ids,
                "event_timestamp": [t0 + timedelta(days=day)] * len(ids),
                "spend": [float(i) for i in ids],
                "n": ids,
            },
        )
    store.close()
    return store.repo


def run_once(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``cmd``; raises when it fails."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise RuntimeError(f"{' '.join(cmd)} failed: {err[-1000:]}")
    if proc.stderr:
        proc.stderr.close()
    proc.returncode = 0
    return wall, usage.ru_utime + usage.ru_stime


def featureledger_cmd() -> list[str]:
    script = Path(sys.executable).parent / "featureledger"
    return [str(script)] if script.exists() else [sys.executable, "-m", "featureledger.cli.main"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=15, help="timed runs per command")
    ap.add_argument("--baseline-src", type=Path, help="src folder of another checkout")
    ap.add_argument("--json", type=Path, help="write the figures here too")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    try:
        measure(args, build_repo(work))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(args: argparse.Namespace, repo: Path) -> None:
    here_path = os.pathsep.join(p for p in sys.path if p)
    fl = featureledger_cmd()
    light = {
        "--help": ["--help"],
        "list groups": ["list", "groups", "--repo", str(repo)],
        "versions stats": ["versions", "stats", "--repo", str(repo)],
        "show stats@v1#1": ["show", "feature_group/stats@v1#1", "--repo", str(repo)],
    }
    trees = {"featureledger": here_path}
    if args.baseline_src:
        trees["featureledger (baseline)"] = os.pathsep.join([str(args.baseline_src), here_path])
    runs: dict[str, tuple[list[str], dict[str, str]]] = {}
    for tree, path in trees.items():
        env = {**os.environ, "PYTHONPATH": path}
        for name, argv in light.items():
            runs[f"{tree} {name}"] = (fl + argv, env)
    feast = FEAST_VENV / "bin" / "feast"
    if feast.exists():
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        runs["feast --help"] = ([str(feast), "--help"], env)
    else:
        print(
            f"note: {feast} not found, so feast --help is skipped "
            "(benchmarks/setup_feast.sh creates the Feast venv)"
        )

    print(f"machine: {machine_facts().get('cpu', '?')}, {os.cpu_count()} CPUs")
    load_before = os.getloadavg()
    for cmd, env in runs.values():  # warm-up: bytecode caches, page cache
        run_once(cmd, env)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for _ in range(args.repeat):
        for name, (cmd, env) in runs.items():
            samples[name].append(run_once(cmd, env))
    load_after = os.getloadavg()

    results: dict[str, dict[str, Any]] = {}
    for name, values in samples.items():
        walls = [w for w, _ in values]
        results[name] = {
            "median_s": statistics.median(walls),
            "best_s": min(walls),
            "cpu_median_s": statistics.median(c for _, c in values),
            "runs": len(values),
        }
    feast_s = results.get("feast --help", {}).get("median_s")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print(f"{'command':40} {'median':>8} {'best':>8} {'cpu':>8}  {'feast/this':>10}  under 0.3 s")
    for name, r in results.items():
        ratio = met = ""
        if not name.startswith("feast"):
            met = (
                "/".join("yes" if r[k] < TARGET_S else "no" for k in ("median_s", "cpu_median_s"))
                + " (wall/cpu)"
            )
            if feast_s is not None:
                ratio = f"{feast_s / r['median_s']:.1f}x"
        print(
            f"{name:40} {r['median_s']:7.3f}s {r['best_s']:7.3f}s {r['cpu_median_s']:7.3f}s"
            f"  {ratio:>10}  {met}"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"results": results, "load": [load_before, load_after], "repeat": args.repeat},
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
