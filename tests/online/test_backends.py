"""What is particular to each backend: SQLite's options and files, Redis's key layout."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from featureledger.errors import ConfigError, FeatureLedgerError
from featureledger.online import ONLINE_STORES, OnlineStore, RedisOnlineStore, SQLiteOnlineStore

T0 = datetime(2025, 3, 1, tzinfo=UTC)
TABLE = pa.table(
    {
        "user_id": pa.array([1, 2], pa.int64()),
        "ts": pa.array([T0, T0], pa.timestamp("us", tz="UTC")),
        "score": [1.0, 2.0],
    }
)


def _roundtrip(store: OnlineStore) -> list[float | None]:
    store.write("u", TABLE, ["user_id"], event_time_column="ts", source_version="v#1")
    out = store.read("u", pa.table({"user_id": [2, 1]}), ["score"], now=T0, ttl=None)
    return out.column("score").to_pylist()


def test_both_backends_satisfy_the_protocol_and_are_registered() -> None:
    assert {"sqlite": SQLiteOnlineStore, "redis": RedisOnlineStore} == ONLINE_STORES
    assert isinstance(SQLiteOnlineStore(":memory:"), OnlineStore)


def test_sqlite_in_memory_is_shared_by_threads() -> None:
    store = SQLiteOnlineStore(":memory:")
    assert _roundtrip(store) == [2.0, 1.0]
    seen: list[object] = []
    thread = threading.Thread(
        target=lambda: seen.append(
            store.read("u", pa.table({"user_id": [1]}), ["score"], now=T0, ttl=None)
        )
    )
    thread.start()
    thread.join()
    assert seen[0].column("score").to_pylist() == [1.0]  # type: ignore[attr-defined]


def test_sqlite_file_is_wal_with_16k_pages_and_one_table_per_key(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "online.db"
    store = SQLiteOnlineStore(path, synchronous="off")
    assert _roundtrip(store) == [2.0, 1.0]
    store.close()
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert con.execute("PRAGMA page_size").fetchone() == (16384,)
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"fl_online__u", "fl_online_tables", "fl_online_schemas"} <= names
    con.close()


def test_sqlite_options_and_closing_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteOnlineStore(tmp_path / "x.db", synchronous="full")  # type: ignore[arg-type]
    store = SQLiteOnlineStore(tmp_path / "y.db")
    store.close()
    with pytest.raises(FeatureLedgerError, match="closed"):
        store.tables()


def test_redis_key_layout_is_the_documented_one(redis_url: str) -> None:
    store = RedisOnlineStore(redis_url, prefix="layout")
    try:
        _roundtrip(store)
        client = store._r
        keys = set(client.keys("layout:*"))
        gen = client.get("layout:u:gen")
        row = b"layout:u:" + gen + b":r:" + (1 ^ (1 << 63)).to_bytes(8, "big")
        assert {b"layout:tables", b"layout:u:" + gen + b":meta", b"layout:u:gen", row} <= keys
        record = client.get(row)
        assert int.from_bytes(record[:8], "big") - (1 << 63) == int(T0.timestamp() * 1e6)
        meta = client.hgetall(b"layout:u:" + gen + b":meta")
        vid = int.from_bytes(record[8:12], "big")
        assert meta[f"vid:{vid}".encode()] == b"v#1"
        store.delete_table("u")
        assert set(client.keys("layout:*")) == {b"layout:generations"}
    finally:
        store.close()


def test_redis_prefix_is_validated() -> None:
    with pytest.raises(ConfigError, match="prefix"):
        RedisOnlineStore("redis://localhost:1/0", prefix="a:b")
