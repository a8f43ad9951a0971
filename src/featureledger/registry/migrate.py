"""Bring a registry database to the newest schema when it is opened.

Every open checks the stored revision with two small reads; only a database behind the
newest revision runs Alembic, inside one transaction that first takes a lock (a PostgreSQL
advisory transaction lock; on SQLite the ``BEGIN IMMEDIATE`` write lock), so openers that
race wait for the first to finish and then find nothing left to do.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from featureledger.errors import ConfigError
from featureledger.registry.schema import SCHEMA_VERSION

#: Alembic's bookkeeping table, prefixed like ours so a shared database stays tidy
VERSION_TABLE = "fl_alembic_version"
#: the newest revision in migrations/versions (a test keeps the two in step)
HEAD = "0006"
MIGRATIONS = Path(__file__).parent / "migrations"
#: pg_advisory_xact_lock key: the bytes "flregmig" as a signed 64-bit integer
_PG_LOCK_KEY = int.from_bytes(b"flregmig", "big", signed=True)


def stored_revision(conn: sa.Connection) -> tuple[str | None, int | None]:
    """The database's Alembic revision and fl_meta schema version (None where absent)."""
    revision = _scalar(conn, VERSION_TABLE, f"SELECT version_num FROM {VERSION_TABLE}")
    meta = _scalar(conn, "fl_meta", "SELECT value FROM fl_meta WHERE key = 'schema_version'")
    return revision, None if meta is None else int(meta)


def upgrade(engine: sa.Engine, where: str) -> None:
    """Apply the migrations ``engine``'s database lacks; ``where`` names it in errors
    (a URL with its password masked)."""
    with engine.connect() as conn:
        revision, meta = stored_revision(conn)
    _refuse_newer(meta, where)
    if revision == HEAD:
        return
    from alembic import command
    from alembic.config import Config
    from alembic.util import CommandError

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        _refuse_newer(stored_revision(conn)[1], where)
        config.attributes["connection"] = conn
        try:
            command.upgrade(config, "head")
        except CommandError as exc:  # a revision this release does not know: a newer one
            raise ConfigError(
                f"registry {where} is at schema revision {revision}, which this featureledger "
                f"does not know ({exc}); upgrade featureledger"
            ) from exc


def _refuse_newer(meta: int | None, where: str) -> None:
    if meta is not None and meta > SCHEMA_VERSION:
        raise ConfigError(
            f"registry {where} has schema version {meta}, newer than this featureledger "
            f"understands ({SCHEMA_VERSION}); upgrade featureledger"
        )


def _scalar(conn: sa.Connection, table: str, sql: str) -> str | None:
    # a missing table is an answer here (a new or pre-migration database); asking first
    # keeps a PostgreSQL transaction usable, which a failed SELECT would abort
    if not sa.inspect(conn).has_table(table):
        return None
    value = conn.execute(sa.text(sql)).scalar()
    return None if value is None else str(value)
