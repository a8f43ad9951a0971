"""The SQLAlchemy registry: SQLite by default, PostgreSQL for teams.

Numbered series (training sets per view, model versions, deployment moves, the audit
sequence) draw their next number from a row of ``fl_counters`` in the same transaction as
the record they number: an ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` that locks
the row, so concurrent writers of one series queue on it (PostgreSQL row lock; SQLite's
database-wide ``BEGIN IMMEDIATE`` lock) and a rolled-back insert takes its number back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from featureledger.errors import ConfigError, NotFoundError
from featureledger.hashing import ContentHash
from featureledger.registry import migrate
from featureledger.registry.base import (
    AuditEntry,
    DataVersion,
    DefinitionRecord,
    DeploymentRecord,
    ModelRecord,
    RunRecord,
    TokenRecord,
    TrainingDatasetRecord,
    ValidationRecord,
    mask_url,
)
from featureledger.registry.schema import (
    SCHEMA_VERSION,
    audit_table,
    counters_table,
    data_versions_table,
    definitions_table,
    deployments_table,
    findings_table,
    materializations_table,
    meta_table,
    metadata,
    models_table,
    runs_table,
    stats_table,
    tokens_table,
    training_table,
    validations_table,
)

__all__ = [  # the tables stay importable from here, as before the schema module existed
    "SCHEMA_VERSION",
    "SQLRegistry",
    "audit_table",
    "counters_table",
    "data_versions_table",
    "definitions_table",
    "deployments_table",
    "findings_table",
    "materializations_table",
    "meta_table",
    "metadata",
    "models_table",
    "runs_table",
    "stats_table",
    "tokens_table",
    "training_table",
    "validations_table",
]


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; every time stored here is UTC
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


_COLUMNS = {"user": "user_name", "group": "group_name"}


@dataclass(frozen=True)
class _Codec:
    """Maps one record dataclass to its table's rows: JSON, content-hash and time columns
    are encoded on the way in and decoded on the way out, the rest pass through."""

    cls: type
    json: frozenset[str] = frozenset()
    hashes: frozenset[str] = frozenset()
    times: frozenset[str] = frozenset()

    def to_row(self, record: Any, **overrides: Any) -> dict[str, Any]:
        row = {}
        for f in fields(self.cls):
            value = getattr(record, f.name)
            if f.name in self.json:
                value = _dump(value)
            elif f.name in self.hashes:
                value = _dump(value.to_dict())
            row[_COLUMNS.get(f.name, f.name)] = value
        row.update({_COLUMNS.get(k, k): v for k, v in overrides.items()})
        return row

    def from_row(self, row: Any) -> Any:
        values = {}
        for f in fields(self.cls):
            value = row[_COLUMNS.get(f.name, f.name)]
            if f.name in self.json:
                value = json.loads(value)
            elif f.name in self.hashes:
                value = ContentHash.from_dict(json.loads(value))
            elif f.name in self.times:
                value = _utc(value)
            values[f.name] = value
        return self.cls(**values)


_DEFINITION = _Codec(
    DefinitionRecord, json=frozenset({"spec", "reasons"}), times=frozenset({"created_at"})
)
_DATA_VERSION = _Codec(
    DataVersion,
    json=frozenset({"files"}),
    hashes=frozenset({"content"}),
    times=frozenset({"created_at"}),
)
_RUN = _Codec(
    RunRecord,
    json=frozenset({"params", "inputs", "outputs"}),
    times=frozenset({"started_at", "ended_at", "heartbeat_at"}),
)
_TRAINING = _Codec(
    TrainingDatasetRecord,
    json=frozenset({"pins", "columns", "params"}),
    hashes=frozenset({"content"}),
    times=frozenset({"created_at"}),
)
_VALIDATION = _Codec(ValidationRecord, json=frozenset({"report"}), times=frozenset({"created_at"}))
_MODEL = _Codec(ModelRecord, json=frozenset({"metrics", "gates"}), times=frozenset({"created_at"}))
_DEPLOYMENT = _Codec(DeploymentRecord, times=frozenset({"at"}))
_TOKEN = _Codec(
    TokenRecord, json=frozenset({"views"}), times=frozenset({"created_at", "revoked_at"})
)


class SQLRegistry:
    """Registry tables behind SQLAlchemy Core; one instance per store."""

    def __init__(self, url: str) -> None:
        if url.startswith("postgresql://"):  # SQLAlchemy would pick psycopg2, not installed
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        #: the URL with any password masked: safe to print, log and put in errors
        self.url = mask_url(url)
        is_sqlite = url.startswith("sqlite")
        try:
            self.engine = sa.create_engine(
                url,
                connect_args={"timeout": 60} if is_sqlite else {},
                pool_pre_ping=not is_sqlite,
            )
        except Exception as exc:  # malformed URLs, missing drivers
            raise ConfigError(
                f"registry URL {self.url!r} cannot be opened: {mask_url(str(exc))}; check the "
                "`registry:` setting (and for PostgreSQL: pip install 'featureledger[postgres]')"
            ) from exc
        if is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        try:
            migrate.upgrade(self.engine, self.url)
        except sa.exc.OperationalError as exc:  # server down, wrong credentials, no database
            self.engine.dispose()
            raise ConfigError(
                f"registry {self.url} cannot be reached: {mask_url(str(exc.orig).strip())}; "
                "check that the database server runs and the `registry:` URL is right"
            ) from exc
        except BaseException:
            self.engine.dispose()
            raise

    def __repr__(self) -> str:
        return f"SQLRegistry({self.url!r})"

    def close(self) -> None:
        """Close the pooled connections; the registry can still be used (it reconnects)."""
        self.engine.dispose()

    # -- definitions --------------------------------------------------------------------------
    def add_definition(self, record: DefinitionRecord) -> None:
        with self.engine.begin() as conn:
            conn.execute(definitions_table.insert().values(**_DEFINITION.to_row(record)))

    def definitions(self, kind: str, name: str | None = None) -> list[DefinitionRecord]:
        t = definitions_table
        query = sa.select(t).where(t.c.kind == kind)
        if name is not None:
            query = query.where(t.c.name == name)
        query = query.order_by(t.c.name, t.c.major, t.c.minor, t.c.patch)
        with self.engine.connect() as conn:
            return [self._definition(row) for row in conn.execute(query).mappings()]

    def latest_definition(
        self, kind: str, name: str, major: int | None = None
    ) -> DefinitionRecord | None:
        t = definitions_table
        query = sa.select(t).where(t.c.kind == kind, t.c.name == name)
        if major is not None:
            query = query.where(t.c.major == major)
        query = query.order_by(t.c.major.desc(), t.c.minor.desc(), t.c.patch.desc()).limit(1)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else self._definition(row)

    @staticmethod
    def _definition(row: Any) -> DefinitionRecord:
        return _DEFINITION.from_row(row)

    # -- data versions ------------------------------------------------------------------------
    def add_data_version(self, record: DataVersion) -> None:
        with self.engine.begin() as conn:
            conn.execute(data_versions_table.insert().values(**_DATA_VERSION.to_row(record)))

    def data_versions(self, group: str, major: int) -> list[DataVersion]:
        t = data_versions_table
        query = (
            sa.select(t).where(t.c.group_name == group, t.c.major == major).order_by(t.c.version)
        )
        with self.engine.connect() as conn:
            return [self._data_version(row) for row in conn.execute(query).mappings()]

    def all_data_versions(self) -> list[DataVersion]:
        """Every data version of every group, for whole-repository views such as lineage."""
        t = data_versions_table
        query = sa.select(t).order_by(t.c.group_name, t.c.major, t.c.version)
        with self.engine.connect() as conn:
            return [self._data_version(row) for row in conn.execute(query).mappings()]

    def data_version(self, group: str, major: int, version: int) -> DataVersion | None:
        t = data_versions_table
        query = sa.select(t).where(
            t.c.group_name == group, t.c.major == major, t.c.version == version
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else self._data_version(row)

    @staticmethod
    def _data_version(row: Any) -> DataVersion:
        return _DATA_VERSION.from_row(row)

    # -- runs ---------------------------------------------------------------------------------
    def start_run(self, record: RunRecord) -> None:
        with self.engine.begin() as conn:
            conn.execute(runs_table.insert().values(**_RUN.to_row(record)))

    def finish_run(self, run_id: str, status: str, outputs: list[str], error: str = "") -> None:
        with self.engine.begin() as conn:
            conn.execute(
                runs_table.update()
                .where(runs_table.c.id == run_id)
                .values(
                    status=status,
                    outputs=_dump(outputs),
                    error=error,
                    ended_at=datetime.now(UTC),
                )
            )

    def run(self, run_id: str) -> RunRecord | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(runs_table).where(runs_table.c.id == run_id))
                .mappings()
                .first()
            )
        return None if row is None else self._run(row)

    def runs(self, status: str | None = None) -> list[RunRecord]:
        """Every recorded run (or those with ``status``), oldest first."""
        query = sa.select(runs_table).order_by(runs_table.c.started_at)
        if status is not None:
            query = query.where(runs_table.c.status == status)
        with self.engine.connect() as conn:
            return [self._run(row) for row in conn.execute(query).mappings()]

    def heartbeat(self, run_ids: Sequence[str]) -> None:
        if not run_ids:
            return
        with self.engine.begin() as conn:
            conn.execute(
                runs_table.update()
                .where(runs_table.c.id.in_(list(run_ids)), runs_table.c.status == "running")
                .values(heartbeat_at=datetime.now(UTC))
            )

    def abandon_runs(self, run_ids: Sequence[str], error: str) -> list[str]:
        if not run_ids:
            return []
        t = runs_table
        changed = []
        with self.engine.begin() as conn:
            for run_id in run_ids:  # one conditional update each: a finish racing us wins
                result = conn.execute(
                    t.update()
                    .where(t.c.id == run_id, t.c.status == "running")
                    .values(status="abandoned", error=error, ended_at=datetime.now(UTC))
                )
                if result.rowcount:
                    changed.append(run_id)
        return changed

    @staticmethod
    def _run(row: Any) -> RunRecord:
        return _RUN.from_row(row)

    # -- training datasets --------------------------------------------------------------------
    def add_training_dataset(self, record: TrainingDatasetRecord) -> TrainingDatasetRecord:
        """Store ``record`` under the next free number for its view; returns it numbered."""
        t = training_table
        with self.engine.begin() as conn:
            number = _next_number(conn, "training_dataset", f"{record.view}@v{record.major}")
            conn.execute(t.insert().values(**_TRAINING.to_row(record, number=number)))
        return replace(record, number=number)

    def training_datasets(self, view: str, major: int | None = None) -> list[TrainingDatasetRecord]:
        t = training_table
        query = sa.select(t).where(t.c.view == view)
        if major is not None:
            query = query.where(t.c.major == major)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(t.c.major, t.c.number)).mappings().all()
        return [_TRAINING.from_row(r) for r in rows]

    # -- validation reports ---------------------------------------------------------------------
    def add_validation(self, record: ValidationRecord) -> None:
        with self.engine.begin() as conn:
            conn.execute(validations_table.insert().values(**_VALIDATION.to_row(record)))

    def validations(
        self, group: str, major: int, version: int | None = None
    ) -> list[ValidationRecord]:
        t = validations_table
        query = sa.select(t).where(t.c.group_name == group, t.c.major == major)
        if version is not None:
            query = query.where(t.c.version == version)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(t.c.created_at)).mappings().all()
        return [_VALIDATION.from_row(r) for r in rows]

    # -- materializations --------------------------------------------------------------------
    def add_materialization(
        self, group: str, major: int, store: str, version: int, rows: int, mode: str, run_id: str
    ) -> None:
        """Record a materialization; a later one of the same version replaces the record."""
        with self.engine.begin() as conn:
            _replace(
                conn,
                materializations_table,
                {
                    "group_name": group,
                    "major": major,
                    "store": store,
                    "version": version,
                    "rows": rows,
                    "mode": mode,
                    "run_id": run_id,
                    "at": datetime.now(UTC),
                },
                ["group_name", "major", "store", "version"],
            )

    def last_materialized(self, group: str, major: int, store: str) -> int | None:
        """The data version the group's online copy is complete up to, if any.

        None after a rebuild limited to a time window: that copy lacks rows of earlier
        versions, so the next run must read everything again.
        """
        t = materializations_table
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(t.c.version, t.c.mode)
                .where(t.c.group_name == group, t.c.major == major, t.c.store == store)
                .order_by(t.c.at.desc(), t.c.version.desc())
                .limit(1)
            ).first()
        if row is None or row.mode == "window-rebuild":
            return None
        return int(row.version)

    def latest_materializations(self, store: str) -> list[dict[str, Any]]:
        """Per group and major version, the newest materialization into ``store``."""
        t = materializations_table
        newest = (
            sa.select(t.c.group_name, t.c.major, sa.func.max(t.c.version).label("version"))
            .where(t.c.store == store)
            .group_by(t.c.group_name, t.c.major)
            .subquery()
        )
        query = (
            sa.select(t.c.group_name, t.c.major, t.c.version, t.c.at)
            .join(
                newest,
                (t.c.group_name == newest.c.group_name)
                & (t.c.major == newest.c.major)
                & (t.c.version == newest.c.version),
            )
            .where(t.c.store == store)
        )
        with self.engine.connect() as conn:
            return [
                {"group": g, "major": m, "version": v, "at": _utc(at)}
                for g, m, v, at in conn.execute(query)
            ]

    # -- monitor findings ---------------------------------------------------------------------
    def add_finding(
        self, monitor: str, target: str, status: str, blocking: bool, finding: dict[str, Any]
    ) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(
                findings_table.insert().values(
                    monitor=monitor,
                    target=target,
                    status=status,
                    blocking=blocking,
                    finding=_dump(finding),
                    observed_at=datetime.now(UTC),
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def open_findings(self, monitor: str | None = None) -> list[dict[str, Any]]:
        """Unresolved findings (newest last), each with its id, target and blocking flag."""
        t = findings_table
        query = sa.select(t).where(t.c.resolved_at.is_(None)).order_by(t.c.id)
        if monitor is not None:
            query = query.where(t.c.monitor == monitor)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            {**json.loads(r["finding"]), "id": r["id"], "blocking": r["blocking"]} for r in rows
        ]

    def resolve_findings(self, monitor: str, resolution: str) -> int:
        t = findings_table
        with self.engine.begin() as conn:
            result = conn.execute(
                t.update()
                .where(t.c.monitor == monitor, t.c.resolved_at.is_(None))
                .values(resolved_at=datetime.now(UTC), resolution=resolution)
            )
            return int(result.rowcount or 0)

    # -- statistics -----------------------------------------------------------------------------
    def put_stats(self, identity: str, stats_json: str) -> None:
        """Keep the statistics of an immutable identity (a data version, a training set)."""
        with self.engine.begin() as conn:
            _replace(
                conn,
                stats_table,
                {"identity": identity, "stats": stats_json, "created_at": datetime.now(UTC)},
                ["identity"],
            )

    def get_stats(self, identity: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(stats_table.c.stats).where(stats_table.c.identity == identity)
            ).scalar()

    # -- models and deployments ---------------------------------------------------------------
    def add_model(self, record: ModelRecord) -> ModelRecord:
        """Store ``record`` as the next version of its model name; returns it numbered."""
        t = models_table
        with self.engine.begin() as conn:
            version = _next_number(conn, "model", record.name)
            conn.execute(t.insert().values(**_MODEL.to_row(record, version=version)))
        return replace(record, version=version)

    def models(self, name: str | None = None) -> list[ModelRecord]:
        t = models_table
        query = sa.select(t).order_by(t.c.name, t.c.version)
        if name is not None:
            query = query.where(t.c.name == name)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [_MODEL.from_row(r) for r in rows]

    def add_deployment(self, record: DeploymentRecord) -> DeploymentRecord:
        t = deployments_table
        with self.engine.begin() as conn:
            seq = _next_number(conn, "deployment", record.name)
            conn.execute(t.insert().values(**_DEPLOYMENT.to_row(record, seq=seq)))
        return replace(record, seq=seq)

    def deployments(self, name: str | None = None) -> list[DeploymentRecord]:
        t = deployments_table
        query = sa.select(t).order_by(t.c.name, t.c.seq)
        if name is not None:
            query = query.where(t.c.name == name)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [_DEPLOYMENT.from_row(r) for r in rows]

    # -- API tokens ---------------------------------------------------------------------------
    def add_token(self, record: TokenRecord) -> None:
        with self.engine.begin() as conn:
            conn.execute(tokens_table.insert().values(**_TOKEN.to_row(record)))

    def token_by_hash(self, token_hash: str) -> TokenRecord | None:
        t = tokens_table
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t).where(t.c.token_hash == token_hash)).mappings().first()
        return None if row is None else _TOKEN.from_row(row)

    def tokens(self) -> list[TokenRecord]:
        """Every token, revoked ones included, oldest first."""
        t = tokens_table
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t).order_by(t.c.created_at, t.c.id)).mappings().all()
        return [_TOKEN.from_row(r) for r in rows]

    def revoke_token(self, token_id: str) -> TokenRecord | None:
        """Mark a token revoked (once; revoking again keeps the first time)."""
        t = tokens_table
        with self.engine.begin() as conn:
            conn.execute(
                t.update()
                .where(t.c.id == token_id, t.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
            row = conn.execute(sa.select(t).where(t.c.id == token_id)).mappings().first()
        return None if row is None else _TOKEN.from_row(row)

    # -- audit trail --------------------------------------------------------------------------
    def audit(self, user: str, action: str, obj: str, details: dict[str, Any]) -> AuditEntry:
        """Append an entry chained to the previous one by SHA-256."""
        t = audit_table
        at = datetime.now(UTC)
        with self.engine.begin() as conn:
            seq = _next_number(conn, "audit", "")
            # read after drawing the number: the counter row's lock orders the appends, so
            # the entry before this one is committed and visible now
            last = conn.execute(
                sa.select(t.c.hash).where(t.c.seq < seq).order_by(t.c.seq.desc()).limit(1)
            ).first()
            prev = "0" * 64 if last is None else last[0]
            digest = _chain_hash(seq, at.isoformat(), user, action, obj, details, prev)
            conn.execute(
                t.insert().values(
                    seq=seq,
                    at=at,
                    user_name=user,
                    action=action,
                    object=obj,
                    details=_dump(details),
                    prev_hash=prev,
                    hash=digest,
                )
            )
        return AuditEntry(seq, at, user, action, obj, details, prev, digest)

    def audit_log(self, obj: str | None = None) -> list[AuditEntry]:
        t = audit_table
        query = sa.select(t).order_by(t.c.seq)
        if obj is not None:
            query = query.where(t.c.object.like(obj + "%"))
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            AuditEntry(
                r["seq"],
                _utc(r["at"]),  # type: ignore[arg-type]
                r["user_name"],
                r["action"],
                r["object"],
                json.loads(r["details"]),
                r["prev_hash"],
                r["hash"],
            )
            for r in rows
        ]

    def audit_verify(self) -> list[str]:
        """Problems in the audit chain: edited entries, removed entries, broken links."""
        problems = []
        prev = "0" * 64
        expected_seq = 1
        for entry in self.audit_log():
            if entry.seq != expected_seq:
                problems.append(f"entries {expected_seq}..{entry.seq - 1} are missing (deleted)")
            if entry.prev_hash != prev:
                problems.append(f"entry {entry.seq}: does not link to the entry before it")
            digest = _chain_hash(
                entry.seq,
                entry.at.isoformat(),
                entry.user,
                entry.action,
                entry.object,
                entry.details,
                entry.prev_hash,
            )
            if digest != entry.hash:
                problems.append(f"entry {entry.seq} ({entry.action} {entry.object}): edited")
            prev, expected_seq = entry.hash, entry.seq + 1
        return problems

    def get_definition(self, kind: str, name: str, major: int | None) -> DefinitionRecord:
        record = self.latest_definition(kind, name, major)
        if record is None:
            where = f"{kind}/{name}" + (f"@v{major}" if major else "")
            known = sorted({d.name for d in self.definitions(kind)})
            raise NotFoundError(
                f"{where} is not registered; known {kind}s: {known or 'none'}. "
                "Define it and run `featureledger apply`."
            )
        return record


def _next_number(conn: sa.Connection, scope: str, name: str) -> int:
    """Draw the next number of series (``scope``, ``name``): 1 for a new series.

    Runs inside the caller's write transaction, which keeps the counter row locked until it
    commits or rolls back (with the number), so numbers are unique and gap-free."""
    t = counters_table
    stmt = _insert(conn, t, {"scope": scope, "name": name, "value": 1})
    stmt = stmt.on_conflict_do_update(
        index_elements=["scope", "name"], set_={"value": t.c.value + 1}
    ).returning(t.c.value)
    return int(conn.execute(stmt).scalar_one())


def _insert(conn: sa.Connection, table: sa.Table, values: dict[str, Any]) -> Any:
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


def _replace(conn: sa.Connection, table: sa.Table, values: dict[str, Any], keys: list[str]) -> None:
    """Insert ``values``, or overwrite the row with the same ``keys``, in one statement (a
    delete then insert would let two writers both insert)."""
    stmt = _insert(conn, table, values)
    update = {k: v for k, v in values.items() if k not in keys}
    conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=update))


def _chain_hash(
    seq: int, at: str, user: str, action: str, obj: str, details: Any, prev: str
) -> str:
    body = _dump([seq, at, user, action, obj, details, prev])
    return hashlib.sha256(body.encode()).hexdigest()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # take transaction control from pysqlite so _sqlite_begin decides how to BEGIN
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    # WAL lets readers proceed while a writer commits; busy_timeout waits for the lock
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # IMMEDIATE takes the write lock up front, so read-then-write transactions (audit chain,
    # numbering) from several processes queue on busy_timeout instead of failing mid-way
    conn.exec_driver_sql("BEGIN IMMEDIATE")
