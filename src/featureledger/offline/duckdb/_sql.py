"""Small SQL helpers shared by the DuckDB engine's modules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    import duckdb


def q(name: str) -> str:
    """Quote an identifier for DuckDB."""
    return '"' + name.replace('"', '""') + '"'


def lit(text: str) -> str:
    """A DuckDB string literal."""
    return "'" + text.replace("'", "''") + "'"


def positions(n: int) -> pa.Array:
    """0..n-1 as int64, built by numpy (``pa.array(range(n))`` boxes n Python ints)."""
    return pa.array(np.arange(n, dtype=np.int64))


def sandbox() -> duckdb.DuckDBPyConnection:
    """A fresh connection that reads only what is registered on it: contract expressions
    and statistics over user data must not reach files or the network."""
    import duckdb  # here, not at the top: commands that never scan data skip loading it

    con = duckdb.connect(":memory:", config={"enable_external_access": False})
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    return con


def count_keys(
    con: duckdb.DuckDBPyConnection,
    scan: str,
    keys: Sequence[str],
    *,
    also: str = "",
    filtered: str = "",
    params: Sequence[object] = (),
) -> tuple[Any, ...]:
    """``count(*)``, the HyperLogLog estimate of distinct keys, then the ``also`` columns,
    of ``scan`` (``filtered``: a WHERE clause with ``params``)."""
    hashed = ", ".join(q(k) for k in keys)
    return tuple(
        con.sql(
            f"SELECT count(*), approx_count_distinct(hash({hashed})){also} FROM {scan} {filtered}",
            params=list(params) or None,
        ).fetchall()[0]
    )
