"""Materialization into the online store and in-process online reads."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from featureledger.config import RepoConfig
from featureledger.definitions import FeatureGroup, FeatureView, VersionId
from featureledger.errors import ConfigError, DataError, DefinitionError, NotFoundError
from featureledger.monitoring import newest_time, stats_from_json
from featureledger.offline.base import OfflineEngine
from featureledger.offline.conform import NaivePolicy, cast_exact, conform_batch, to_arrow
from featureledger.online import ONLINE_STORES, OnlineStore
from featureledger.online.guard import guard
from featureledger.registry import RegistryBackend
from featureledger.store._catalog import Catalog
from featureledger.store._data import DataService
from featureledger.store._feature_logs import FeatureLogs
from featureledger.store._records import VersionRecords
from featureledger.store._runs import Runs
from featureledger.store._tables import Tables
from featureledger.store._training import TrainingService
from featureledger.transforms.on_demand import apply_on_demand
from featureledger.versioning.provenance import current_user

#: Python types the one-entity fast path passes through as they are (Arrow gives them back
#: unchanged); anything else takes the Arrow path
_PLAIN = (int, float, str, bool, type(None))


def _in_int64(value: object) -> bool:
    return not isinstance(value, int) or -(1 << 63) <= value < 1 << 63


#: operations after which the online copy is rebuilt: they can make stored rows older
_REBUILD_OPERATIONS = {"overwrite", "rollback", "restore", "widen"}


@dataclass(frozen=True)
class Materialization:
    """What one group's materialization wrote."""

    group: str
    version: int
    mode: str  # full | incremental | unchanged
    rows: int
    changed: int


class OnlineFeatures:
    """Features read online, one row per requested entity, in request order.

    Held as an Arrow table, or, for the one-entity fast path, as Python values with their
    Arrow types; each form is built from the other only when asked for.
    """

    __slots__ = ("_columns", "_table", "_types", "source")

    def __init__(
        self,
        table: pa.Table | None = None,
        *,
        columns: dict[str, list[Any]] | None = None,
        types: dict[str, pa.DataType] | None = None,
        source: str = "online",
    ) -> None:
        self._table = table
        self._columns = columns
        self._types = types or {}
        #: "online", or "offline-fallback" when the online store was down (online.fallback)
        self.source = source

    @property
    def table(self) -> pa.Table:
        return self.to_arrow()

    @property
    def num_rows(self) -> int:
        if self._table is not None:
            return int(self._table.num_rows)
        return len(next(iter(self._columns.values()))) if self._columns else 0

    def to_arrow(self) -> pa.Table:
        if self._table is None:
            assert self._columns is not None
            self._table = pa.table(
                {
                    name: pa.array(values, type=self._types.get(name))
                    for name, values in self._columns.items()
                }
            )
        return self._table

    def to_dict(self) -> dict[str, list[Any]]:
        """Columns as lists of Python values."""
        if self._columns is not None:
            return {name: list(values) for name, values in self._columns.items()}
        return self._table.to_pydict()  # type: ignore[union-attr]

    def to_pylist(self) -> list[dict[str, Any]]:
        """One dict per entity row."""
        if self._columns is not None:
            names, values = list(self._columns), self._columns.values()
            return [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]
        return self._table.to_pylist()  # type: ignore[union-attr]

    def to_pandas(self) -> Any:
        return self.to_arrow().to_pandas()


class _Counting:
    """Passes record batches through, counting their rows (and telling ``report``)."""

    def __init__(
        self, reader: pa.RecordBatchReader, report: Callable[[int], None] | None = None
    ) -> None:
        self.reader = reader
        self.report = report
        self.rows = 0

    def __iter__(self) -> Any:
        for batch in self.reader:
            self.rows += batch.num_rows
            yield batch
            if self.report is not None:  # after the store took the batch
                self.report(self.rows)


def _reporter(
    progress: Callable[[str, int, int], None] | None, group: str, total: int
) -> Callable[[int], None] | None:
    if progress is None:
        return None
    return lambda done: progress(group, done, total)


def _without_credentials(name: str) -> str:
    """A store name fit for messages: ``redis://user:secret@host`` loses ``user:secret@``."""
    scheme, sep, rest = name.partition("://")
    return scheme + sep + rest.rpartition("@")[2] if sep else name


def _table_key(fg: FeatureGroup) -> str:
    return f"{fg.name}@v{fg.version or 1}"


class OnlineService:
    """Materialization, push and online reads through the configured online store."""

    def __init__(
        self,
        *,
        registry: RegistryBackend,
        engine: OfflineEngine,
        config: RepoConfig,
        repo: Path,
        naive: NaivePolicy,
        tables: Tables,
        catalog: Catalog,
        records: VersionRecords,
        runs: Runs,
        data: DataService,
        training: TrainingService,
        logs: FeatureLogs,
    ) -> None:
        self.registry = registry
        self.engine = engine
        self.config = config
        self.repo = repo
        self._naive = naive
        self.tables = tables
        self.catalog = catalog
        self.records = records
        self.runs = runs
        self.data = data
        self.training = training
        self.logs = logs
        self._online: OnlineStore | None = None
        #: view name -> (expiry, definitions generation, view, plan)
        self._plans: dict[str, tuple[float, int, FeatureView, list[Any]]] = {}

    def close(self) -> None:
        """Close the online store's connections; the next read opens them again."""
        online, self._online = self._online, None
        self._plans.clear()
        if online is not None:
            online.close()

    def store(self) -> OnlineStore:
        """The configured online store (SQLite by default), opened once."""
        if self._online is None:
            cfg = self.config.online
            factory = ONLINE_STORES.get(cfg.type)
            if factory is None:
                raise ConfigError(
                    f"online.type {cfg.type!r} is not known; use one of {sorted(ONLINE_STORES)}"
                )
            where = cfg.url if cfg.type != "sqlite" else self.config.resolve(self.repo, cfg.path)
            # connection faults, opening included, become OnlineStoreUnavailable (HTTP 503)
            self._online = guard(factory, _without_credentials(self.store_name()), where)
        return self._online

    def store_name(self) -> str:
        cfg = self.config.online
        return f"{cfg.type}:{cfg.url or cfg.path}"

    def _online_groups(self, names: Iterable[str] | None) -> list[FeatureGroup]:
        if not names:
            records = self.registry.definitions("feature_group")
            latest = {r.name: r for r in records}  # ordered by version: the last wins
            groups = [self.catalog.get_feature_group(n) for n in latest]
            online = [g for g in groups if g.online]
            if not online:
                # an empty run that exits 0 reads as "served", when nothing can be
                raise NotFoundError(_no_online_group_message(sorted(latest)))
            return online
        out: list[FeatureGroup] = []
        for name in names:
            view = self.registry.latest_definition("feature_view", name)
            if view is not None:
                fv = self.catalog.get_feature_view(name)
                out += [self.catalog.get_feature_group(s.group, s.major) for s in fv.sources]
            else:
                out.append(self.catalog.get_feature_group(name))
        offline_only = [g.name for g in out if not g.online]
        if offline_only:
            raise DefinitionError(
                f"feature group(s) {offline_only} are not online; set online=True on them and "
                "apply before materializing"
            )
        return list({g.name: g for g in out}.values())

    def materialize(
        self,
        names: Sequence[str] | None = None,
        *,
        incremental: bool = True,
        start: datetime | None = None,
        end: datetime | None = None,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> list[Materialization]:
        """Write the latest value per entity of online groups into the online store.

        ``names`` are groups or views (default: every online group). Incremental runs read
        only the files committed since the version last materialized; after an overwrite,
        rollback or type widening the group is rebuilt in full, since those can replace
        stored rows with older ones. Every row records the data version it came from.

        ``start``/``end`` (inclusive, event time) limit the rows considered to a window:
        the latest row per entity *within* it is written. A window run reads the whole
        latest version; with ``incremental=False`` it first empties the group's online
        copy (so ``end`` alone rebuilds the store as of that time), otherwise it only adds:
        the store never replaces a row with an older one. After a window rebuild the next
        incremental run is a full one, since the copy lacks the rows outside the window.
        ``progress(group, rows_done, rows_total)`` is called after each written batch;
        the total is the version's row count, an upper bound of the entities written.
        """
        window = start is not None or end is not None
        for name, value in (("start", start), ("end", end)):
            if value is not None and value.tzinfo is None:
                raise DataError(f"materialize: {name} must be time-zone aware, got {value!r}")
        if start is not None and end is not None and start > end:
            raise DataError(f"materialize: start {start} is after end {end}")
        online = self.store()
        store_name = self.store_name()
        self._discard_dead_builds(online)
        results = []
        for fg in self._online_groups(names):
            major = fg.version or 1
            if window and fg.event_time is None:
                raise DataError(
                    f"materialize {fg.name}: the group has no event time, so --start/--end "
                    "cannot select rows; materialize it without a window"
                )
            table = self.tables.table(fg.name, major)
            latest = self.records.resolve(fg, None, None)
            self.records.check_files(fg, latest)
            last = self.registry.last_materialized(fg.name, major, store_name)
            key = _table_key(fg)
            if last == latest and incremental and not window:
                results.append(Materialization(fg.name, latest, "unchanged", 0, 0))
                continue
            records = self.registry.data_versions(fg.name, major)
            rebuild = (
                not incremental
                or last is None
                or any(r.operation in _REBUILD_OPERATIONS for r in records if r.version > last)
            )
            if window:
                mode = "window-rebuild" if not incremental else "window"
            else:
                mode = "full" if rebuild else "incremental"
            files = table.files(latest)
            if mode == "incremental":
                assert last is not None
                before = set(table.files(last))
                files = [f for f in files if f not in before]
            user = current_user()
            source = VersionId("feature_group", fg.name, major, latest)
            params: dict[str, Any] = {
                "group": fg.name,
                "major": major,
                "store": store_name,
                "mode": mode,
                "from": last,
                "to": latest,
            }
            if window:
                params |= {
                    "start": start.isoformat() if start else None,
                    "end": end.isoformat() if end else None,
                }
            run = self.runs.start("materialize", user, params, inputs=[str(source)])
            columns = [*fg.unique_key, *fg.feature_names]
            total = next((r.rows for r in records if r.version == latest), 0)
            try:
                reader = self.engine.latest_rows(
                    files,
                    table.schema(latest),
                    fg.primary_key,
                    fg.event_time,
                    columns,
                    start=start,
                    end=end,
                )
                counter = _Counting(reader, _reporter(progress, fg.name, total))
                if mode in ("full", "window-rebuild"):
                    # built beside the live copy and swapped in: readers and a kill never
                    # see a hole; the build is named by the run, so a dead one is found
                    changed = online.replace(
                        key,
                        counter,
                        fg.primary_key,
                        event_time_column=fg.event_time,
                        source_version=str(source),
                        build=run.id,
                    )
                else:  # one transaction: the copy moves to the new version whole or not
                    changed = online.write(
                        key,
                        counter,
                        fg.primary_key,
                        event_time_column=fg.event_time,
                        source_version=str(source),
                        atomic=True,
                    )
            except BaseException as exc:
                self._fail(online, key, run.id, exc)
                raise
            # the watermark moves only after its data is in: a kill before here repeats
            # the run, never skips it
            if mode != "window":  # an additive window leaves the copy's base as it was
                self.registry.add_materialization(
                    fg.name, major, store_name, latest, counter.rows, mode, run.id
                )
            self.runs.finish(run.id, "succeeded", [f"online:{store_name}/{key}"])
            self.registry.audit(
                user,
                "materialize",
                str(fg.identity(major)),
                {k: v for k, v in params.items() if k not in ("group", "major")}
                | {"version": latest, "rows": counter.rows},
            )
            results.append(Materialization(fg.name, latest, mode, counter.rows, changed))
        return results

    def _discard_dead_builds(self, online: OnlineStore) -> None:
        """Drop the unfinished builds of runs that are no longer running (killed ones are
        found abandoned first); a build of a live run in another process is left alone."""
        builds = online.builds()
        if not builds:
            return
        self.runs.reap()
        for table_key, build in builds:
            run = self.registry.run(build)
            if run is None or run.status != "running":
                online.discard_build(table_key, build)

    def _fail(self, online: OnlineStore, key: str, run_id: str, exc: BaseException) -> None:
        """Record a failed materialization and drop its build (best effort: the error that
        stopped it is the one to report)."""
        with contextlib.suppress(Exception):
            online.discard_build(key, run_id)
        with contextlib.suppress(Exception):
            self.runs.finish(run_id, "failed", [], f"{type(exc).__name__}: {exc}")

    def online_freshness(self) -> list[dict[str, Any]]:
        """How current each group's online copy is, from the registry alone (no data read).

        Per materialized group: the data version served, when it was materialized, how many
        versions the offline table has moved on since, and the newest event time of the
        served version when its statistics are stored (they are computed after each write).
        """
        out = []
        for m in self.registry.latest_materializations(self.store_name()):
            records = self.registry.data_versions(m["group"], m["major"])
            latest = records[-1].version if records else m["version"]
            newest = None
            fg = self.catalog.get_feature_group(m["group"], m["major"])
            cached = self.registry.get_stats(
                str(VersionId("feature_group", m["group"], m["major"], m["version"]))
            )
            if cached is not None and fg.event_time:
                column = dict(stats_from_json(cached)).get(fg.event_time)
                newest = None if column is None else newest_time(column.max)  # type: ignore[arg-type]
            out.append(
                {
                    "group": m["group"],
                    "major": m["major"],
                    "version": m["version"],
                    "materialized_at": m["at"],
                    "versions_behind": latest - m["version"],
                    "newest_event_time": newest,
                }
            )
        return out

    def push(self, group: str | FeatureGroup, rows: Any, *, to: str = "online") -> int:
        """Write streaming rows to the online store, the offline store, or both.

        The rows pass the same schema checks and contract as an ingest first; under a
        quarantine policy only the valid rows are pushed. Offline, the push is an upsert
        (one data version); online, each row replaces the stored one if it is not older.
        Returns the number of rows accepted.
        """
        if to not in ("online", "offline", "both"):
            raise DataError(f"push: to must be 'online', 'offline' or 'both', got {to!r}")
        fg = self.catalog.get_feature_group(group)
        major = fg.version or 1
        where = f"push into feature_group/{fg.name}@v{major}"
        if to in ("online", "both") and not fg.online:
            raise DefinitionError(f"{where}: the group is not online; set online=True and apply")
        batch = conform_batch(
            to_arrow(rows, where=where),
            fg,
            where=where,
            naive=self._naive,
            fill_created=pa.scalar(datetime.now(UTC), pa.timestamp("us", tz="UTC")),
        )
        user = current_user()
        run = self.runs.start(
            "push", user, {"group": fg.name, "major": major, "to": to, "rows": batch.num_rows}
        )
        if to in ("offline", "both"):
            # the offline write runs the contract and records the version and the run
            self.data.commit_batch(fg, batch, "upsert", f"push ({to})", run, user)
            gate_rows = self.registry.validations(fg.name, major)
            accepted = next(
                (v.rows_published for v in reversed(gate_rows) if v.run_id == run.id),
                batch.num_rows,
            )
            published = batch if accepted == batch.num_rows else None
        else:
            gate = self.data.apply_contract(fg, batch, run, user, where)
            if gate.held is not None and gate.held.num_rows:
                self.data.quarantine_rows(fg, gate.held, run.id)
            self.data.record_validation(fg, run, gate, None)
            published, accepted = gate.publish, gate.publish.num_rows
        if to in ("online", "both"):
            if published is None:  # quarantine held some rows back offline: push the rest
                held = self.data.quarantined(fg, run=run.id).select(list(fg.unique_key))
                published = batch.join(held, keys=list(fg.unique_key), join_type="left anti")
            columns = [*fg.unique_key, *fg.feature_names]
            self.store().write(
                _table_key(fg),
                published.select(columns),
                fg.primary_key,
                event_time_column=fg.event_time,
                source_version=f"run/{run.id}",
            )
        if to == "online":
            self.runs.finish(run.id, "succeeded", [f"online:{self.store_name()}"])
        return accepted

    def get_online_features(
        self,
        view: str | FeatureView,
        entity_rows: Any,
        *,
        now: datetime | None = None,
        log: bool = False,
        request_data: Any = None,
    ) -> OnlineFeatures:
        """Latest features for each entity row, with the view's TTLs applied as offline.

        With ``log=True`` the served rows (request id and time, view version, entity
        columns and features) are queued for the view's feature log, written in the
        background (`feature_log`, `skew`).

        One read per group, each one round trip to the store whatever the number of
        entities. ``entity_rows`` is a list of dicts, a dict of columns, or any table the
        offline API accepts; extra columns are passed through.
        """
        fv, plan = self.serving_plan(view)
        when = now or datetime.now(UTC)
        if request_data is None and not fv.on_demand:
            fast = self._read_one(fv, plan, entity_rows, when)
            if fast is not None:
                if log:
                    self.logs.log_served(fv, fast.to_arrow(), when)
                return fast
        where = f"online features of feature_view/{fv.name}@v{fv.version or 1}"
        if isinstance(entity_rows, list):
            entity_rows = pa.Table.from_pylist(entity_rows)
        entities = to_arrow(entity_rows, where=where)
        if entities.num_rows == 0:
            raise DataError(f"{where}: no entity rows were given")
        if request_data is not None:  # per-request values for on-demand transforms
            extra = to_arrow(request_data, where=where)
            if extra.num_rows != entities.num_rows:
                raise DataError(
                    f"{where}: request_data has {extra.num_rows} rows for "
                    f"{entities.num_rows} entity rows"
                )
            for name in extra.column_names:
                entities = entities.append_column(name, extra.column(name))
        online = self.store()
        names, columns = list(entities.column_names), list(entities.columns)
        for src, fg, key in plan:
            keys = {}
            for field in fg.key_fields:
                column = src.join_key_map.get(field.name, field.name)
                if column not in entities.column_names:
                    raise DataError(f"{where}: entity rows lack the join key {column!r}")
                given = entities.column(column)
                if given.type != field.arrow_type:
                    given = cast_exact(given, field.arrow_type, name=column, where=where)
                    if isinstance(given, str):
                        raise DataError(f"{where}: {given}")
                keys[field.name] = given
            got = online.read(key, pa.table(keys), list(src.features), now=when, ttl=fg.ttl)
            for feature in src.features:
                names.append(fv.output_name(src, feature))
                columns.append(got.column(feature))
        out = pa.Table.from_arrays(columns, names=names)
        if fv.on_demand:  # the very functions training_data ran over the whole frame
            out = apply_on_demand(out, fv.on_demand, where=where)
        if log:
            self.logs.log_served(fv, out, when)
        return OnlineFeatures(out)

    def _read_one(
        self,
        fv: FeatureView,
        plan: list[tuple[Any, FeatureGroup, str]],
        entity_rows: Any,
        when: datetime,
    ) -> OnlineFeatures | None:
        """One entity given as plain Python values, read without Arrow; None when the
        general path must answer (it also gives every error message)."""
        if type(entity_rows) is list and len(entity_rows) == 1 and type(entity_rows[0]) is dict:
            row = entity_rows[0]
        elif type(entity_rows) is dict and all(
            type(v) is list and len(v) == 1 for v in entity_rows.values()
        ):
            row = {k: v[0] for k, v in entity_rows.items()}
        else:
            return None
        if not row or not all(type(v) in _PLAIN and _in_int64(v) for v in row.values()):
            return None
        # a plain attribute lookup: isinstance with a runtime protocol costs microseconds
        read_one: Callable[..., Any] | None = getattr(self.store(), "read_one", None)
        if read_one is None:
            return None
        columns: dict[str, list[Any]] = {name: [value] for name, value in row.items()}
        types: dict[str, pa.DataType] = {}
        for src, fg, key in plan:
            join = src.join_key_map
            try:
                values = [row[join.get(n, n)] for n in fg.primary_key]
            except KeyError:
                return None
            got = read_one(key, values, src.features, now=when, ttl=fg.ttl)
            if got is None:
                return None
            for feature, value, dtype in zip(src.features, *got, strict=True):
                name = fv.output_name(src, feature)
                if name in columns:  # a clash the Arrow path reports
                    return None
                columns[name] = [value]
                types[name] = dtype
        return OnlineFeatures(columns=columns, types=types)

    #: how long resolved definitions are reused on the read path (apply in this process
    #: clears them at once; another process's apply is seen after at most this long)
    SERVING_PLAN_SECONDS = 5.0

    def serving_plan(
        self, view: str | FeatureView
    ) -> tuple[FeatureView, list[tuple[Any, FeatureGroup, str]]]:
        """The view and its groups' table keys, checked once and reused for a few seconds,
        so an online read makes no registry query."""
        name = view if isinstance(view, str) else view.name
        cached = self._plans.get(name)
        clock = time.monotonic()
        generation = self.catalog.generation
        if cached is not None and cached[0] > clock and cached[1] == generation:
            return cached[2], cached[3]
        fv = self.catalog.get_feature_view(view)
        where = f"online features of feature_view/{fv.name}@v{fv.version or 1}"
        known = set(self.store().tables())
        plan = []
        for src in fv.sources:
            fg = self.catalog.get_feature_group(src.group, src.major)
            key = _table_key(fg)
            if not fg.online:
                raise DefinitionError(
                    f"{where}: feature group {fg.name!r} is not online; set online=True and "
                    "materialize it, or read it offline with training_data"
                )
            if key not in known:
                raise NotFoundError(
                    f"{where}: feature group {fg.name!r} has not been materialized to "
                    f"{self.store_name()}; run `featureledger materialize {fg.name}`"
                )
            plan.append((src, fg, key))
        self._plans[name] = (clock + self.SERVING_PLAN_SECONDS, generation, fv, plan)
        return fv, plan


def _no_online_group_message(groups: list[str]) -> str:
    """Why `materialize` has nothing to do, and how to give it something."""
    if not groups:
        return (
            "materialize: no feature group is registered, so there is nothing to serve; "
            "declare a FeatureGroup with online=True and run `featureledger apply`"
        )
    return (
        f"materialize: no feature group is online (registered: {', '.join(groups)}); groups "
        "are offline unless declared with online=True: set it on the groups to serve, "
        "e.g. FeatureGroup(..., online=True), run `featureledger apply`, then materialize"
    )
