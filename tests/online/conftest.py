"""Fixtures for the online store suite: every test runs once per backend.

Redis is a real ``redis-server`` started once per xdist worker on a free port in the
worker's temporary directory (no persistence), never a mock. When the binary is missing the
fixture fails and says how to install it: scripts/install-services.sh (CI runs it before the
tests).
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pytest

from featureledger.online import OnlineStore, RedisOnlineStore, SQLiteOnlineStore

BACKENDS = ["sqlite", "redis"]
_PID = re.compile(rb"process_id:(\d+)\r\n")


def _server_pid(port: int) -> int | None:
    """The pid of the Redis server on ``port`` (from INFO server), None when none answers."""
    reply = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"INFO server\r\n")
            while (found := _PID.search(reply)) is None:
                chunk = s.recv(4096)
                if not chunk:
                    return None
                reply += chunk
    except OSError:
        return None
    return int(found.group(1))


def _start(binary: str, port: int, workdir: Path, log: IO[bytes]) -> subprocess.Popen[bytes] | None:
    """A redis-server on ``port``, once it answers as itself; None when it does not start
    (another worker may have taken the port since it was free)."""
    proc = subprocess.Popen(
        [
            binary,
            *("--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", str(workdir)),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None:
        if _server_pid(port) == proc.pid:
            return proc
        time.sleep(0.02)
    _stop(proc)
    return None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def redis_url(
    tmp_path_factory: pytest.TempPathFactory, free_port: Callable[[], int]
) -> Iterator[str]:
    """URL of a redis-server started for this test session (one per xdist worker, in the
    worker's own folder, on a free port; see tests/conftest.py)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is not installed, so the Redis online store cannot be tested. "
            "Run scripts/install-services.sh (it installs Debian's redis-server; CI runs it "
            "before the tests), then run pytest again.",
            pytrace=False,
        )
    workdir = tmp_path_factory.mktemp("redis")
    with (workdir / "redis.log").open("wb") as log:
        proc = None
        for _attempt in range(5):
            port = free_port()
            proc = _start(binary, port, workdir, log)
            if proc is not None:
                break
        if proc is None:
            log.flush()
            text = (workdir / "redis.log").read_text(errors="replace")[-2000:]
            pytest.fail(f"redis-server did not start; its log ends with:\n{text}", pytrace=False)
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            _stop(proc)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[], OnlineStore]]:
    """Opens handles on one fresh store; several handles stand for several processes."""
    opened: list[OnlineStore] = []
    prefix = "t" + uuid.uuid4().hex[:12]
    url = request.getfixturevalue("redis_url") if backend == "redis" else ""

    def make() -> OnlineStore:
        store: OnlineStore
        if backend == "sqlite":
            store = SQLiteOnlineStore(tmp_path / "online.db")
        else:
            store = RedisOnlineStore(url, prefix=prefix)
        opened.append(store)
        return store

    yield make
    if backend == "redis" and opened:
        opened[0]._r.flushdb()  # type: ignore[attr-defined]
    for store in opened:
        store.close()


@pytest.fixture
def online(make_store: Callable[[], OnlineStore]) -> OnlineStore:
    return make_store()


@contextmanager
def round_trips(store: OnlineStore) -> Iterator[list[int]]:
    """Counts the statements (SQLite) or commands (Redis) the block sends to the store."""
    counter = [0]
    if isinstance(store, SQLiteOnlineStore):
        con = store._con()

        def trace(sql: str) -> None:
            counter[0] += 1

        con.set_trace_callback(trace)
        try:
            yield counter
        finally:
            con.set_trace_callback(None)
    else:
        client = store._r  # type: ignore[attr-defined]
        before = client.info("stats")["total_commands_processed"]
        yield counter
        after = client.info("stats")["total_commands_processed"]
        counter[0] = after - before - 1  # the first INFO is counted by the second


@pytest.fixture(params=["sqlite", "redis"])
def repo_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A new repository whose online store is SQLite or this worker's (emptied) Redis."""
    from featureledger import FeatureStore

    store = FeatureStore.init(tmp_path / "repo")
    if request.param == "redis":
        import redis

        url = request.getfixturevalue("redis_url")
        redis.Redis.from_url(url).flushdb()  # a worker runs its tests one after another
        cfg = store.repo / "featureledger.yaml"
        cfg.write_text(
            cfg.read_text()
            .replace("type: sqlite", "type: redis")
            .replace("url: null", f"url: {url}")
        )
        store = FeatureStore(store.repo)
    return store
