"""The SQLAlchemy registry: SQLite by default, PostgreSQL for teams.

Numbered series (training sets per view, model versions, deployment moves, the audit
sequence) draw their next number from a row of ``fl_counters`` in the same transaction as
the record they number: an ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` that locks
the row, so concurrent writers of one series queue on it (PostgreSQL row lock; SQLite's
database-wide ``BEGIN IMMEDIATE`` lock) and a rolled-back insert takes its number back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from featureledger.errors import ConfigError, NotFoundError
from featureledger.registry import audit as chain
from featureledger.registry import migrate, sqlaudit
from featureledger.registry.base import (
    AuditEntry,
    DataVersion,
    DefinitionRecord,
    DeploymentRecord,
    LLMRecord,
    ModelRecord,
    RunRecord,
    TokenRecord,
    TrainingDatasetRecord,
    ValidationRecord,
    mask_url,
)
from featureledger.registry.codec import DATA_VERSION as _DATA_VERSION
from featureledger.registry.codec import DEFINITION as _DEFINITION
from featureledger.registry.codec import DEPLOYMENT as _DEPLOYMENT
from featureledger.registry.codec import MODEL as _MODEL
from featureledger.registry.codec import RUN as _RUN
from featureledger.registry.codec import TOKEN as _TOKEN
from featureledger.registry.codec import TRAINING as _TRAINING
from featureledger.registry.codec import VALIDATION as _VALIDATION
from featureledger.registry.codec import dump as _dump
from featureledger.registry.codec import utc as _utc
from featureledger.registry.counters import next_number as _next_number
from featureledger.registry.counters import replace_row as _replace
from featureledger.registry.schema import (
    SCHEMA_VERSION,
    audit_table,
    counters_table,
    data_versions_table,
    definitions_table,
    deployments_table,
    findings_table,
    llm_table,
    maintenance_table,
    materializations_table,
    meta_table,
    metadata,
    models_table,
    pins_table,
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


class SQLRegistry:
    """Registry tables behind SQLAlchemy Core; one instance per store."""

    def __init__(self, url: str, *, audit_key: bytes | None = None) -> None:
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
        #: the secret the audit chain's MACs are keyed with; kept outside the registry
        self._audit_key = audit_key
        #: set when the key is not the one the chain is keyed with: every write refuses
        self._key_error: ConfigError | None = None
        if audit_key is not None:
            # written by featureledger itself on open, whoever opened it
            sqlaudit.anchor(self.engine, audit_key, "featureledger", self.url)
            with self.engine.connect() as conn:
                self._key_error = sqlaudit.key_mismatch(conn, audit_key, self.url)

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
    def add_data_version(
        self,
        record: DataVersion,
        *,
        action: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """Record a data version and its audit entry in one transaction."""
        key = self._key()
        row = _DATA_VERSION.to_row(record)
        body = {**(details or {}), "record": chain.version_digest(row)}
        with self.engine.begin() as conn:
            conn.execute(data_versions_table.insert().values(**row))
            return sqlaudit.append(
                conn,
                key,
                record.user,
                action or record.operation,
                str(record.identity),
                body,
                where=self.url,
            )

    def add_maintenance(
        self, group: str, major: int, version: int, operation: str, run_id: str | None, user: str
    ) -> AuditEntry:
        key = self._key()
        row = {
            "group_name": group,
            "major": major,
            "version": version,
            "operation": operation,
            "run_id": run_id,
            "user_name": user,
            "at": datetime.now(UTC),
        }
        with self.engine.begin() as conn:
            conn.execute(maintenance_table.insert().values(**row))
            return sqlaudit.append(
                conn,
                key,
                user,
                "maintenance",
                chain.version_identity(row),
                {"operation": operation, "run": run_id, "record": chain.maintenance_digest(row)},
                where=self.url,
            )

    def maintenance_versions(self, group: str, major: int) -> dict[int, str]:
        t = maintenance_table
        query = sa.select(t.c.version, t.c.operation).where(
            t.c.group_name == group, t.c.major == major
        )
        with self.engine.connect() as conn:
            return {int(v): str(op) for v, op in conn.execute(query)}

    # -- pins ---------------------------------------------------------------------------------
    def add_pin(
        self, group: str, major: int, version: int, path: str, pinned: str, user: str
    ) -> AuditEntry:
        key = self._key()
        values = {
            "group_name": group,
            "major": major,
            "version": version,
            "path": path,
            "pinned": pinned,
            "user_name": user,
            "created_at": datetime.now(UTC),
        }
        with self.engine.begin() as conn:
            _replace(conn, pins_table, values, ["group_name", "major", "version", "path"])
            return sqlaudit.append(
                conn,
                key,
                user,
                "pin",
                f"feature_group/{group}@v{major}#{version}",
                {"file": path, "pinned": pinned},
                where=self.url,
            )

    def remove_pins(self, path: str, user: str) -> list[dict[str, Any]]:
        t = pins_table
        key = self._key()
        with self.engine.begin() as conn:
            rows = [_pin(r) for r in conn.execute(sa.select(t).where(t.c.path == path)).mappings()]
            if not rows:
                return []
            conn.execute(sa.delete(t).where(t.c.path == path))
            for r in rows:
                sqlaudit.append(
                    conn,
                    key,
                    user,
                    "unpin",
                    f"feature_group/{r['group']}@v{r['major']}#{r['version']}",
                    {"file": path, "pinned": r["pinned"]},
                    where=self.url,
                )
        return rows

    def pins(self, group: str | None = None) -> list[dict[str, Any]]:
        t = pins_table
        query = sa.select(t).order_by(t.c.group_name, t.c.major, t.c.version, t.c.path)
        if group is not None:
            query = query.where(t.c.group_name == group)
        with self.engine.connect() as conn:
            return [_pin(r) for r in conn.execute(query).mappings()]

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
        self._key()  # a run writes audited records: refuse before it commits any data
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

    # -- LLM artifacts ------------------------------------------------------------------------
    def add_llm_record(
        self,
        kind: str,
        name: str,
        body: dict[str, Any],
        *,
        user: str,
        action: str | None,
        details: dict[str, Any],
    ) -> LLMRecord:
        key = self._key() if action else None
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            version = _next_number(conn, f"llm:{kind}"[:32], name)
            conn.execute(
                llm_table.insert().values(
                    kind=kind,
                    name=name,
                    version=version,
                    body=_dump(body),
                    user_name=user,
                    created_at=now,
                )
            )
            if action and key is not None:
                obj = f"{kind}/{name}/{version}"
                sqlaudit.append(conn, key, user, action, obj, details, where=self.url)
        return LLMRecord(kind, name, version, body, user, now)

    def llm_records(
        self, kind: str, name: str | None = None, *, version: int | None = None
    ) -> list[LLMRecord]:
        t = llm_table
        query = sa.select(t).where(t.c.kind == kind).order_by(t.c.name, t.c.version)
        if name is not None:
            query = query.where(t.c.name == name)
        if version is not None:
            query = query.where(t.c.version == version)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            LLMRecord(
                r["kind"],
                r["name"],
                r["version"],
                json.loads(r["body"]),
                r["user_name"],
                _utc(r["created_at"]),  # type: ignore[arg-type]
            )
            for r in rows
        ]

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
    def _key(self) -> bytes:
        if self._audit_key is None:
            raise sqlaudit.no_key(self.url)
        if self._key_error is not None:
            raise self._key_error
        return self._audit_key

    def audit(self, user: str, action: str, obj: str, details: dict[str, Any]) -> AuditEntry:
        """Append an entry chained to the previous one by HMAC-SHA256 under the audit key."""
        key = self._key()
        with self.engine.begin() as conn:
            return sqlaudit.append(conn, key, user, action, obj, details, where=self.url)

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
                _details(r["details"]),
                r["prev_hash"],
                r["hash"],
                r["scheme"],
            )
            for r in rows
        ]

    def audit_verify(self, *, against: dict[str, Any] | None = None) -> list[str]:
        """Problems in the audit chain, in the rows it records, and against a checkpoint."""
        with self.engine.connect() as conn:
            entries, versions, maintenance, counter = sqlaudit.raw_rows(conn)
        if self._key_error is not None:
            # every MAC would fail: say why once, and check what needs no key
            found = chain.verify(entries, versions, maintenance, key=None, counter=counter)
            why = str(self._key_error).replace("nothing was written", "MACs cannot be checked")
            return [why, *found[1:]]
        return chain.verify(
            entries, versions, maintenance, key=self._audit_key, counter=counter, against=against
        )

    def audit_rotate_key(self, new_key: bytes, user: str, reason: str = "") -> int:
        """Verify the chain under the current key, re-MAC it under ``new_key`` and append a
        ``re-keyed`` entry, in one transaction; the registry then uses ``new_key``."""
        old = self._key()
        with self.engine.begin() as conn:
            count = sqlaudit.rotate(conn, old, new_key, user, reason, self.url)
        self._audit_key = new_key
        return count

    def audit_head(self) -> dict[str, Any]:
        key = self._key()
        with self.engine.connect() as conn:
            entries = conn.execute(
                sa.select(audit_table.c.seq, audit_table.c.hash).order_by(audit_table.c.seq)
            ).mappings()
            return chain.make_head(key, list(entries))

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


def _details(text: str) -> Any:
    # an edited entry may hold anything; the log still prints it (verify names it)
    try:
        return json.loads(text)
    except ValueError:
        return {"unreadable": text}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # take transaction control from pysqlite so _sqlite_begin decides how to BEGIN
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=60000")
    # WAL lets readers proceed while a writer commits; busy_timeout waits for the lock
    _switch_to_wal(cur)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


#: seconds a connection keeps retrying the switch of a new database to WAL
_WAL_SWITCH_SECONDS = 60.0


def _switch_to_wal(cur: Any) -> None:
    """``PRAGMA journal_mode=WAL``, retried while SQLite answers "database is locked".

    On a database still in rollback mode the switch upgrades a read lock to a write lock.
    When several processes open a new database at once, that upgrade can meet another
    connection's pending commit: SQLite then answers at once, without the busy handler, to
    break the deadlock (seen in CI with six processes opening one new registry). The other
    connection's commit ends it, so waiting and trying again succeeds.
    """
    import sqlite3
    import time

    deadline = time.monotonic() + _WAL_SWITCH_SECONDS
    delay = 0.01
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def _sqlite_begin(conn: Any) -> None:
    # IMMEDIATE takes the write lock up front, so read-then-write transactions (audit chain,
    # numbering) from several processes queue on busy_timeout instead of failing mid-way
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _pin(r: Any) -> dict[str, Any]:
    return {
        "group": r["group_name"],
        "major": r["major"],
        "version": r["version"],
        "path": r["path"],
        "pinned": r["pinned"],
        "user": r["user_name"],
        "created_at": _utc(r["created_at"]),
    }
