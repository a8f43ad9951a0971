"""Numbered series and upserts in SQL, shared by the registry's queries and its audit chain."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from featureledger.errors import ConfigError
from featureledger.registry.schema import counters_table


def next_number(conn: sa.Connection, scope: str, name: str) -> int:
    """Draw the next number of series (``scope``, ``name``): 1 for a new series.

    Runs inside the caller's write transaction, which keeps the counter row locked until it
    commits or rolls back (with the number), so numbers are unique and gap-free."""
    t = counters_table
    stmt = insert(conn, t, {"scope": scope, "name": name, "value": 1})
    stmt = stmt.on_conflict_do_update(
        index_elements=["scope", "name"], set_={"value": t.c.value + 1}
    ).returning(t.c.value)
    return int(conn.execute(stmt).scalar_one())


def insert(conn: sa.Connection, table: sa.Table, values: dict[str, Any]) -> Any:
    # both dialects spell ON CONFLICT alike, but SQLAlchemy keeps one insert() per dialect
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).values(**values)
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table).values(**values)
    raise ConfigError(
        f"the registry supports SQLite and PostgreSQL, not {conn.dialect.name}; "
        "use a sqlite:/// or postgresql+psycopg:// URL"
    )


def replace_row(
    conn: sa.Connection, table: sa.Table, values: dict[str, Any], keys: list[str]
) -> None:
    """Insert ``values``, or overwrite the row with the same ``keys``, in one statement (a
    delete then insert would let two writers both insert)."""
    stmt = insert(conn, table, values)
    update = {k: v for k, v in values.items() if k not in keys}
    conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=update))
