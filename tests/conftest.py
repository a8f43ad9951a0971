"""Shared fixtures for the featureledger test suite.

How to add a server fixture
---------------------------
`make test` runs the suite under pytest-xdist (``pytest -n auto``): each worker is its own
Python process with its own share of the tests, so every copy of a server fixture must work
while the others run on the same machine. A fixture for a real server process (redis-server,
PostgreSQL, moto_server...) follows five rules:

1. **Session scope, one server per worker.** xdist has no session shared between workers, so
   ``scope="session"`` starts one server per worker, reused by that worker's tests. Reset its
   state per test (FLUSHDB, a fresh database, schema or bucket name) instead of restarting it.
2. **Its own directory** from ``tmp_path_factory.mktemp("postgres")``: pytest's base temp
   folder is per worker (``.../pytest-N/popen-gw0/``), so data folders, sockets and logs of
   two workers never meet. Never write to a fixed path or the working directory.
3. **A free loopback port** from the ``free_port`` fixture, then check that the server that
   answers is the one you started (its pid, as in ``redis_url``, or uvicorn's ``started``
   flag, as in ``run_server``): another worker can take the port between ``free_port()`` and
   your server's bind, so retry with a new port when yours did not come up.
4. **Stopped at the end**, in the fixture's ``finally``: terminate, wait, kill after a timeout,
   close its log. When it does not start, ``pytest.fail`` with the tail of its log and with
   how to install it (scripts/install-services.sh installs every server the suite needs).
5. **The worker id** is the ``worker_id`` fixture of pytest-xdist ("gw0", "gw1"...; "master"
   without ``-n``), or ``os.environ.get("PYTEST_XDIST_WORKER", "master")`` outside fixtures.
   Use it in names that outlive the process (a database or bucket name, a key prefix), never
   to compute ports.

Examples: ``redis_url`` in tests/online/conftest.py (a server process) and ``server`` in
tests/server/conftest.py (uvicorn in a thread).

Hypothesis keeps one example database (``.hypothesis/``) for every worker: entries are keyed
by test and each test runs on one worker, and the database writes by atomic rename, so a
failing example found by one worker is replayed by whichever worker runs that test next.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from featureledger import FeatureStore


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` go first (in their order), so under xdist the longest ones start
    at once on different workers instead of ending the run on one worker while the others
    idle (test_pit_join_matches_reference alone takes about 2 minutes)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """``free_port()`` is a loopback port no process listens on now (see rule 3 above)."""
    return _free_port


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    """A fresh, empty repository in a temporary folder."""
    return FeatureStore.init(tmp_path / "repo")
