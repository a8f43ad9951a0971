"""Helpers shared by the benchmark scripts: child processes with their own peak memory,
machine facts, latency summaries and formatting. Standard library only, so the Feast venv
can import it too."""

from __future__ import annotations

import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
FEAST_VENV = HERE / ".venv-feast"
RESULT_TAG = "@@RESULT "


def emit(result: dict[str, Any]) -> None:
    """Print a child's result as one tagged JSON line for the parent to pick up."""
    sys.stdout.write(RESULT_TAG + json.dumps(result, default=str) + "\n")
    sys.stdout.flush()


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_child(
    cmd: list[str], *, timeout: float | None = None, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``cmd``; return its tagged result plus ``wall_s`` and ``proc_peak_rss``.

    ``proc_peak_rss`` is the child's own ru_maxrss, read with wait4 for that one child
    (RUSAGE_CHILDREN would be the maximum over every child so far).
    """
    load1 = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = None if timeout is None else t0 + timeout
    out_chunks: list[str] = []
    err_chunks: list[str] = []
    # read pipes in threads so a chatty child cannot block on a full pipe
    import threading

    def pump(stream: Any, sink: list[str]) -> None:
        for line in stream:
            sink.append(line)

    threads = [
        threading.Thread(target=pump, args=(proc.stdout, out_chunks), daemon=True),
        threading.Thread(target=pump, args=(proc.stderr, err_chunks), daemon=True),
    ]
    for t in threads:
        t.start()
    status = None
    rusage = None
    timed_out = False
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if deadline is not None and time.perf_counter() > deadline:
            proc.kill()
            pid, status, rusage = os.wait4(proc.pid, 0)
            timed_out = True
            break
        time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    for t in threads:
        t.join(timeout=5)
    wall = time.perf_counter() - t0
    stdout, stderr = "".join(out_chunks), "".join(err_chunks)
    result: dict[str, Any] = {}
    for line in stdout.splitlines():
        if line.startswith(RESULT_TAG):
            result = json.loads(line[len(RESULT_TAG) :])
    result["proc_wall_s"] = wall
    result["proc_peak_rss"] = rusage.ru_maxrss * 1024 if rusage else None
    result["returncode"] = proc.returncode
    result["load1_before"] = load1  # other work on the machine inflates times
    if timed_out:
        result["error"] = f"timed out after {timeout:.0f} s"
    elif proc.returncode != 0 or not result.get("ok", False):
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        result.setdefault("error", f"exit {proc.returncode}: {tail}")
    return result


def machine_facts() -> dict[str, str]:
    facts: dict[str, str] = {"nproc": str(os.cpu_count())}
    try:
        facts["nproc"] = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
        facts["free -g"] = subprocess.run(["free", "-g"], capture_output=True, text=True).stdout
    except OSError:
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    facts["python"] = platform.python_version()
    facts["platform"] = platform.platform()
    return facts


def gib(n: float | None) -> str:
    return "-" if n is None else f"{n / 2**30:.2f} GiB"


def secs(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f} s"


# -- latency samples (shared by the featureledger and the Feast side, so both are summarized
# -- the same way) ---------------------------------------------------------------------------
def percentile(sorted_values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of sorted values, interpolated linearly between the
    two nearest ranks (numpy's default method)."""
    if not sorted_values:
        return float("nan")
    rank = (len(sorted_values) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def summarize_us(samples_us: list[float]) -> dict[str, float]:
    """p50/p99/p99.9/mean of latencies in microseconds."""
    ordered = sorted(samples_us)
    return {
        "count": len(ordered),
        "p50_us": percentile(ordered, 50),
        "p99_us": percentile(ordered, 99),
        "p999_us": percentile(ordered, 99.9),
        "mean_us": sum(ordered) / len(ordered) if ordered else float("nan"),
    }


def time_calls(call: Any, requests: list[Any], warmup: int) -> dict[str, float]:
    """Call ``call(request)`` for the first ``warmup`` requests untimed, then time every
    request one call at a time; the summary of the timed calls in microseconds."""
    for request in requests[:warmup]:
        call(request)
    samples = []
    clock = time.perf_counter_ns
    for request in requests:
        start = clock()
        call(request)
        samples.append((clock() - start) / 1000)
    return summarize_us(samples)


def request_keys(entities: int, size: int, count: int, seed: int) -> list[list[int]]:
    """``count`` requests of ``size`` distinct random keys in ``range(entities)``; the same
    seed gives the same requests in every interpreter (``random.Random`` is stable)."""
    rnd = random.Random(seed)
    return [rnd.sample(range(entities), size) for _ in range(count)]


def write_feast_repo(repo: Path, offline_store: str) -> None:
    """A fresh Feast repository config in ``repo``: local provider, the given offline
    store, the SQLite online store (used by feast_runner.py and feast_online_runner.py)."""
    repo.mkdir(parents=True, exist_ok=True)
    for stale in ("registry.db", "online.db"):
        (repo / stale).unlink(missing_ok=True)
    (repo / "feature_store.yaml").write_text(
        "project: bench\n"
        f"registry: {repo / 'registry.db'}\n"
        "provider: local\n"
        "offline_store:\n"
        f"  type: {offline_store}\n"
        "online_store:\n"
        "  type: sqlite\n"
        f"  path: {repo / 'online.db'}\n"
        "entity_key_serialization_version: 3\n"
    )
