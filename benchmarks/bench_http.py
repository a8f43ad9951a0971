"""HTTP feature server benchmark: latency and throughput of ``POST /features/{view}``.

    python benchmarks/bench_http.py [--requests 2000] [--max-seconds 60] [--entities 10000]
                                    [--url URL --token TOKEN --view VIEW]

Without ``--url`` it builds a temporary repository (``--entities`` int64 keys, 14 float64
features, one online group, materialized into SQLite), creates a reader token and starts
``featureledger serve`` (one uvicorn worker) in a child process on a free loopback port.
Then it sends 1 random entity per request over keep-alive connections, one per worker
thread, with a minimal HTTP/1.1 client on a raw socket (``--client httpx`` uses httpx,
which adds client-side Python per request): ``--requests`` requests at concurrency 1, then
at concurrency 8, each phase bounded by ``--max-seconds``, after 200 warm-up requests. It
prints p50/p99 latency (client-measured, milliseconds) and requests/s per phase. The client
runs on the same machine and shares its cores (and, for 8 clients, one Python interpreter)
with the server.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import summarize_us

FEATURES = [f"f{i}" for i in range(14)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_repo(root: Path, entities: int) -> tuple[str, str]:
    """A repository with one online group of ``entities`` rows; returns (view, token)."""
    from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field

    store = FeatureStore.init(root)
    user = Entity("user", join_keys=["user_id"])
    group = FeatureGroup(
        "user_stats", user, features=[Field(f, "float64") for f in FEATURES], online=True
    )
    store.apply([user, group, FeatureView("user_features", [group])])
    rng = np.random.default_rng(0)
    columns = {
        "user_id": pa.array(np.arange(entities, dtype=np.int64)),
        "event_timestamp": pa.array([datetime.now(UTC)] * entities, pa.timestamp("us", "UTC")),
        **{f: pa.array(rng.random(entities)) for f in FEATURES},
    }
    store.ingest("user_stats", pa.table(columns))
    store.materialize()
    return "user_features", store.create_token("reader", ["user_features"])


def start_server(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    exe = Path(sys.executable).parent / "featureledger"
    proc = subprocess.Popen(
        [str(exe), "serve", "--port", str(port), "--repo", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_healthy(proc, url)
    return proc, url


def wait_until_healthy(proc: subprocess.Popen[bytes], url: str, timeout: float = 30) -> None:
    """Poll ``GET url/health`` until it answers 200; kill ``proc`` and exit if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url + "/health", timeout=0.5).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"the server at {url} did not start within {timeout:.0f} s")


class RawClient:
    """Keep-alive HTTP/1.1 POSTs on one socket; just enough to time a JSON endpoint.

    Without a token no Authorization header is sent. A connection the server closed (a
    worker recycled) is reopened and the request sent again, inside the timed call.
    """

    def __init__(self, url: str, token: str = "") -> None:
        host, port = url.removeprefix("http://").split(":")
        self.address = (host, int(port))
        self.head = f"Host: {host}\r\n" + (f"Authorization: Bearer {token}\r\n" if token else "")
        self.reconnects = 0
        self._connect()

    def _connect(self) -> None:
        self.sock = socket.create_connection(self.address)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")

    def post(self, path: str, body: bytes) -> int:
        return self.request(path, body)[0]

    def request(self, path: str, body: bytes) -> tuple[int, bytes]:
        """POST ``body``; the status and the response body."""
        message = (
            f"POST {path} HTTP/1.1\r\n{self.head}Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        for attempt in (1, 2):
            try:
                self.sock.sendall(message)
                status_line = self.reader.readline()
            except ConnectionError:
                status_line = b""
            if status_line:
                break
            if attempt == 2:
                raise ConnectionError(f"{self.address}: the server closed the connection")
            self.close()
            self._connect()
            self.reconnects += 1
        status = int(status_line.split()[1])
        length = 0
        while (line := self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        return status, self.reader.read(length)

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def http_phase(
    url: str,
    path: str,
    make_body: Callable[[random.Random], bytes],
    total: int,
    clients: int,
    max_seconds: float,
    *,
    token: str = "",
    kind: str = "raw",
) -> dict[str, float]:
    """``total`` POSTs to ``path`` spread over ``clients`` threads, one keep-alive connection
    each, bodies from ``make_body(rnd)``; client-side latencies and requests/s."""
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + max_seconds
    errors = 0
    reconnects = 0

    def worker(n: int, seed: int) -> None:
        nonlocal errors, reconnects
        rnd = random.Random(seed)
        mine = []
        raw = RawClient(url, token) if kind == "raw" else None
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        client = httpx.Client(base_url=url, headers=headers, timeout=10)
        for _ in range(n):
            if time.monotonic() > deadline:
                break
            body = make_body(rnd)
            t0 = time.perf_counter()
            if raw is not None:
                status = raw.post(path, body)
            else:
                status = client.post(path, content=body).status_code
            mine.append(time.perf_counter() - t0)
            if status != 200:
                with lock:
                    errors += 1
        client.close()
        if raw is not None:
            raw.close()
        with lock:
            latencies.extend(mine)
            reconnects += raw.reconnects if raw is not None else 0

    threads = [threading.Thread(target=worker, args=(total // clients, i)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    summary = summarize_us([x * 1e6 for x in latencies])
    return {
        "requests": len(latencies),
        "errors": errors,
        "reconnects": reconnects,
        "p50_ms": summary["p50_us"] / 1000,
        "p99_ms": summary["p99_us"] / 1000,
        "rps": len(latencies) / wall,
    }


def phase(
    url: str,
    token: str,
    view: str,
    keys: int,
    total: int,
    clients: int,
    max_seconds: float,
    kind: str = "raw",
) -> dict[str, float]:
    """``total`` requests of 1 random entity to ``POST /features/{view}``."""

    def body(rnd: random.Random) -> bytes:
        return json.dumps({"entities": [{"user_id": rnd.randrange(keys)}]}).encode()

    return http_phase(
        url, f"/features/{view}", body, total, clients, max_seconds, token=token, kind=kind
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--url")
    parser.add_argument("--token")
    parser.add_argument("--view", default="user_features")
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw")
    args = parser.parse_args()

    proc, root = None, None
    if args.url:
        url, token, view = args.url, args.token or "", args.view
    else:
        root = Path(tempfile.mkdtemp(prefix="fl-bench-http-")) / "repo"
        view, token = build_repo(root, args.entities)
        proc, url = start_server(root)
    try:
        phase(url, token, view, args.entities, 200, 1, args.max_seconds, args.client)  # warm-up
        print(
            f"load average {os.getloadavg()[0]:.2f}; 1 entity x 14 float64 per request; "
            f"{args.client} client"
        )
        print(f"{'clients':>8} {'requests':>9} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}")
        for clients in (1, 8):
            r = phase(
                url,
                token,
                view,
                args.entities,
                args.requests,
                clients,
                args.max_seconds,
                args.client,
            )
            print(
                f"{clients:>8} {r['requests']:>9,} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
                f"{r['rps']:>8,.0f}" + (f"  ({r['errors']} errors)" if r["errors"] else "")
            )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        if root is not None:
            shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
