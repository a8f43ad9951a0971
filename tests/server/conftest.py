"""A real uvicorn server on a free loopback port, over a store with online data.

The servers run in a thread of the worker that uses them (module scope), so each xdist worker
has its own; tests/conftest.py says how server fixtures share the machine."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field
from featureledger.server import create_app
from serving import start_uvicorn

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
USER = Entity("user", join_keys=["user_id"])
STATS = FeatureGroup(
    "stats",
    USER,
    features=[Field("spend", "float64"), Field("n", "int64")],
    online=True,
)
PROFILE = FeatureGroup(
    "profile",
    USER,
    event_time=None,
    features=[Field("city", "string"), Field("email", "string", classification="pii")],
    online=True,
)
SPEND = FeatureView("spend", [STATS])
PROFILES = FeatureView("profiles", [PROFILE], purpose="fraud scoring")
MAX_ENTITIES = 50
MAX_BODY = 256 << 10


@dataclass
class Server:
    url: str
    store: FeatureStore
    t0: datetime = T0
    max_entities: int = MAX_ENTITIES

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)


def make_store(path: Path) -> FeatureStore:
    store = FeatureStore.init(path)
    store.apply([USER, STATS, PROFILE, SPEND, PROFILES])
    store.ingest(
        "stats",
        {
            "user_id": [1, 2, 3],
            "event_timestamp": [T0, T0, T0],
            "spend": [1.5, 2.5, 3.5],
            "n": [1, 2, 3],
        },
    )
    store.ingest(
        "profile",
        {"user_id": [1, 2], "city": ["Oslo", "Lyon"], "email": ["a@x.io", "b@x.io"]},
    )
    store.materialize()
    return store


@contextmanager
def run_server(
    store: FeatureStore, *, free_port: Callable[[], int], insecure: bool = False
) -> Iterator[Server]:
    app = create_app(store, insecure=insecure, max_entities=MAX_ENTITIES, max_body_bytes=MAX_BODY)
    server, thread, url = start_uvicorn(app, free_port)
    try:
        assert httpx.get(url + "/health", timeout=10).status_code == 200
        yield Server(url, store)
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, free_port: Callable[[], int]
) -> Iterator[Server]:
    store = make_store(tmp_path_factory.mktemp("serve") / "repo")
    with run_server(store, free_port=free_port) as running:
        yield running


@pytest.fixture
def fresh_store(tmp_path: Path) -> FeatureStore:
    """A store like the server's, with no tokens."""
    return make_store(tmp_path / "repo")


@pytest.fixture
def serve(free_port: Callable[[], int]) -> Callable[..., AbstractContextManager[Server]]:
    """``with serve(store, insecure=True) as server:`` runs another server."""
    return functools.partial(run_server, free_port=free_port)


@pytest.fixture(scope="module")
def tokens(server: Server) -> dict[str, str]:
    s = server.store
    return {
        "reader": s.create_token("reader", all_views=True),
        "writer": s.create_token("writer", all_views=True),
        "admin": s.create_token("admin", all_views=True),
        "scoped": s.create_token("writer", views=["spend"]),
        "purpose": s.create_token("reader", all_views=True, purpose="fraud scoring"),
    }
