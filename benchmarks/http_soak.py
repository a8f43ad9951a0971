"""HTTP soak: the feature server at saturation for a long while; 5xx answers and memory growth.

    python benchmarks/http_soak.py [--minutes 10] [--clients 4] [--entities 10000]
                                   [--warmup-seconds 60]

Builds a temporary repository (as benchmarks/bench_http.py: one online group of
``--entities`` keys and 14 float64 features, materialized into SQLite), starts
``featureledger serve`` (real uvicorn, one worker) on a free 127.0.0.1 port, then runs
``--clients`` client processes, each sending requests back to back on one keep-alive
connection for ``--minutes``. The mix, per client: 80 % reads of 1 random entity, 10 %
reads of 20 entities, 4 % online pushes of one row (a writer token), and 6 % requests the
server must refuse (no token, a reader pushing, a body that is not JSON, an unknown view,
JSON nested 2,000 deep). Every answer's status is counted; any 5xx, any connection the
server dropped and any refused request answered 2xx is a failure.

The server's resident memory (VmRSS of its process) is sampled every 5 s; the growth is
the last sample against the first after ``--warmup-seconds`` (caches, the token cache and
allocator arenas fill during warm-up). The baseline is the server itself at the end of
warm-up, on the same data in the same run. Clients and server share the machine's cores:
say how loaded it was (the load averages are printed).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_http import RawClient, _free_port, build_repo, wait_until_healthy

DEEP = b'{"entities": ' + b"[" * 2000 + b"]" * 2000 + b"}"


def start_server(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``featureledger serve`` on a free loopback port (startup may be slow on a busy machine)."""
    port = _free_port()
    exe = Path(sys.executable).parent / "featureledger"
    proc = subprocess.Popen(
        [str(exe), "serve", "--port", str(port), "--repo", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_healthy(proc, url, timeout=300)
    return proc, url


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` in KiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def client(
    url: str, tokens: dict[str, str], view: str, seconds: float, seed: int, out: Any
) -> None:
    """One client process: requests back to back until ``seconds`` pass; counts by kind."""
    rnd = random.Random(seed)
    conns = {name: RawClient(url, token) for name, token in tokens.items()}
    conns["none"] = RawClient(url, "")
    counts: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    pushed = 0
    while time.monotonic() < deadline:
        roll = rnd.random()
        refused = False
        if roll < 0.80:
            conn, path = conns["reader"], f"/features/{view}"
            body = orjson.dumps({"entities": [{"user_id": rnd.randrange(10_000)}]})
        elif roll < 0.90:
            conn, path = conns["reader"], f"/features/{view}"
            keys = [{"user_id": rnd.randrange(10_000)} for _ in range(20)]
            body = orjson.dumps({"entities": keys})
        elif roll < 0.94:
            pushed += 1
            row = {"user_id": 1_000_000 + seed * 1_000_000 + pushed % 50_000}
            row |= {"event_timestamp": "2025-01-01T00:00:00+00:00"}
            row |= {f"f{i}": rnd.random() for i in range(14)}
            conn, path = conns["writer"], "/push/user_stats"
            body = orjson.dumps({"rows": [row]})
        else:
            refused = True
            kind = rnd.randrange(5)
            conn, path, body = [
                (conns["none"], f"/features/{view}", b'{"entities": [{"user_id": 1}]}'),
                (conns["reader"], "/push/user_stats", b'{"rows": [{"user_id": 1}]}'),
                (conns["reader"], f"/features/{view}", b"{not json"),
                (conns["reader"], "/features/nope", b'{"entities": [{"user_id": 1}]}'),
                (conns["reader"], f"/features/{view}", DEEP),
            ][kind]
        try:
            status, _ = conn.request(path, body)
        except ConnectionError:
            counts["dropped"] += 1
            continue
        counts[f"{status // 100}xx"] += 1
        if refused and status < 400:
            counts["refused-but-2xx"] += 1
    for c in conns.values():
        counts["reconnects"] += c.reconnects
        c.close()
    out.put(dict(counts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--warmup-seconds", type=float, default=60.0)
    args = parser.parse_args()
    seconds = args.minutes * 60
    warmup = min(args.warmup_seconds, seconds / 4)
    root = Path(tempfile.mkdtemp(prefix="fl-soak-"))
    try:
        view, reader = build_repo(root / "repo", args.entities)
        from featureledger import FeatureStore

        store = FeatureStore(root / "repo")
        writer = store.create_token("writer", [view])
        store.close()
        proc, url = start_server(root / "repo")
        try:
            load_before = os.getloadavg()
            queue: mp.Queue[dict[str, int]] = mp.Queue()
            tokens = {"reader": reader, "writer": writer}
            workers = [
                mp.Process(target=client, args=(url, tokens, view, seconds, i, queue))
                for i in range(args.clients)
            ]
            start = time.monotonic()
            for w in workers:
                w.start()
            samples: list[tuple[float, int]] = []
            while any(w.is_alive() for w in workers):
                samples.append((time.monotonic() - start, rss_kib(proc.pid)))
                time.sleep(5)
            counts: Counter[str] = Counter()
            for _ in workers:
                counts.update(queue.get(timeout=60))
            for w in workers:
                w.join()
            elapsed = time.monotonic() - start
            load_after = os.getloadavg()
            alive = proc.poll() is None
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    after_warmup = [kib for t, kib in samples if t >= warmup]
    base, last = after_warmup[0], after_warmup[-1]
    total = sum(v for k, v in counts.items() if k.endswith("xx"))
    result = {
        "minutes": round(elapsed / 60, 2),
        "clients": args.clients,
        "requests": total,
        "requests_per_s": round(total / elapsed, 1),
        "statuses": {k: v for k, v in sorted(counts.items()) if k.endswith("xx")},
        "5xx": counts.get("5xx", 0),
        "dropped_connections": counts.get("dropped", 0),
        "refused_but_2xx": counts.get("refused-but-2xx", 0),
        "reconnects": counts.get("reconnects", 0),
        "server_alive_at_end": alive,
        "rss_mib_first_sample": round(samples[0][1] / 1024, 1),
        "rss_mib_after_warmup": round(base / 1024, 1),
        "rss_mib_end": round(last / 1024, 1),
        "rss_mib_peak": round(max(k for _, k in samples) / 1024, 1),
        "rss_growth_after_warmup_pct": round(100 * (last - base) / base, 2),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    ok = result["5xx"] == 0 and not result["dropped_connections"] and alive
    ok = ok and not result["refused_but_2xx"] and result["rss_growth_after_warmup_pct"] < 10
    print("PASS" if ok else "FAIL: see the figures above")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
