"""The registry port's behaviour, the same on every backend (conftest: SQLite, PostgreSQL)."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import multiprocessing
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import featureledger
from featureledger import ContentHash
from featureledger.errors import ConfigError, NotFoundError
from featureledger.registry import (
    DataVersion,
    DefinitionRecord,
    DeploymentRecord,
    ModelRecord,
    RegistryBackend,
    RunRecord,
    SQLRegistry,
    TokenRecord,
    TrainingDatasetRecord,
    ValidationRecord,
    mask_url,
    open_registry,
)
from featureledger.registry.schema import audit_table, meta_table

from .conftest import KEY

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def definition(
    name: str, semver: str, kind: str = "feature_group", **spec: object
) -> DefinitionRecord:
    major, minor, patch = (int(p) for p in semver.split("."))
    return DefinitionRecord(
        kind=kind,
        name=name,
        major=major,
        minor=minor,
        patch=patch,
        spec={"name": name, **spec},
        spec_hash=f"h-{name}-{semver}",
        created_at=T0 + timedelta(minutes=minor, microseconds=patch),
        created_by="ana",
        reasons=[f"{semver} [minor]"],
    )


def data_version(group: str, major: int, version: int, **kw: object) -> DataVersion:
    fields = {
        "group": group,
        "major": major,
        "version": version,
        "operation": "upsert",
        "rows": 3,
        "rows_added": 2,
        "rows_removed": 1,
        "content": ContentHash(rows=3, lane_a=2**64 - 1, lane_b=2**63 + version),
        "schema_hash": "s" * 64,
        "files": {f"part-{version}.parquet": {"sha256": "00", "size": 10}},
        "run_id": f"run-{version}",
        "user": "bo",
        "created_at": T0 + timedelta(seconds=version, microseconds=123),
        "note": "",
    }
    fields.update(kw)
    return DataVersion(**fields)  # type: ignore[arg-type]


def training(view: str, major: int = 1, number: int = 0) -> TrainingDatasetRecord:
    return TrainingDatasetRecord(
        view=view,
        major=major,
        number=number,
        pins={"g": {"major": 1, "version": 2}},
        entity_hash="e" * 64,
        content=ContentHash(rows=2, lane_a=1, lane_b=2),
        rows=2,
        columns=["user_id", "x"],
        entity_path="/tmp/entities.parquet",
        output_path=None,
        run_id="r",
        user="ana",
        created_at=T0,
        params={"timestamp_column": "event_timestamp"},
    )


def model(name: str, version: int = 0) -> ModelRecord:
    return ModelRecord(
        name=name,
        version=version,
        artifact_path=f"/models/{name}.bin",
        artifact_hash="a" * 64,
        training_dataset="training_dataset/v@v1/1",
        metrics={"auc": 0.9},
        gates=[{"gate": "auc >= 0.5", "passed": True}],
        run_id="r",
        user="ana",
        created_at=T0,
        description="d",
    )


def deployment(name: str, model_version: int) -> DeploymentRecord:
    return DeploymentRecord(name, 0, "m", model_version, "deploy", "", "ana", T0)


def token(ident: str, digest: str, at: datetime = T0) -> TokenRecord:
    return TokenRecord(ident, digest, "reader", ["v"], "tests", "ana", at)


# -- the port itself ------------------------------------------------------------------------


def protocol_methods() -> set[str]:
    return {
        name
        for name, value in vars(RegistryBackend).items()
        if not name.startswith("_") and callable(value)
    }


def test_sql_registry_implements_exactly_the_protocol() -> None:
    public = {
        name
        for name, value in vars(SQLRegistry).items()
        if not name.startswith("_") and callable(value)
    }
    assert public == protocol_methods()
    for name in public:
        assert inspect.signature(getattr(SQLRegistry, name)) == inspect.signature(
            getattr(RegistryBackend, name)
        ), name
        assert (getattr(RegistryBackend, name).__doc__ or "").strip(), f"{name} is undocumented"


def test_every_registry_call_in_the_package_is_in_the_protocol() -> None:
    called: set[str] = set()
    for path in Path(featureledger.__file__).parent.rglob("*.py"):
        if "registry" in path.parts or path.name == "config.py":  # there: the URL setting
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            # self.registry.X(...), store.registry.X(...), reg.X(...) with reg = self.registry
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = node.func.value
                if (isinstance(owner, ast.Attribute) and owner.attr == "registry") or (
                    isinstance(owner, ast.Name) and owner.id in ("reg", "registry")
                ):
                    called.add(node.func.attr)
    called.discard("register")  # prometheus' CollectorRegistry in server/app.py
    assert called, "the scan found no registry calls at all"
    assert called <= protocol_methods(), called - protocol_methods()


def test_opened_registry_is_a_registry_backend(registry: RegistryBackend) -> None:
    assert isinstance(registry, RegistryBackend)


def test_unknown_url_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no supported scheme") as info:
        open_registry("mysql://bob:hunter2@db/x")
    assert "hunter2" not in str(info.value) and "bob:***@" in str(info.value)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql+psycopg://bob:s3cr@t@db:5432/fl", "postgresql+psycopg://bob:***@db:5432/fl"),
        ("postgresql+psycopg://bob@db/fl", "postgresql+psycopg://bob@db/fl"),
        ("postgresql://u@/fl?host=/s&password=pw", "postgresql://u@/fl?host=/s&password=***"),
        ("sqlite:////tmp/r.db", "sqlite:////tmp/r.db"),
    ],
)
def test_mask_url_hides_passwords(url: str, masked: str) -> None:
    assert mask_url(url) == masked


# -- definitions ------------------------------------------------------------------------------


def test_definitions_round_trip_in_numeric_version_order(registry: RegistryBackend) -> None:
    records = [definition("stats", f"1.{minor}.0", cols=[minor]) for minor in (0, 9, 10, 2)]
    records.append(definition("stats", "2.0.0"))
    records.append(definition("clicks", "1.0.0"))
    records.append(definition("user", "1.0.0", kind="entity"))
    for r in records:
        registry.add_definition(r)
    listed = registry.definitions("feature_group")
    assert [(d.name, d.semver) for d in listed] == [
        ("clicks", "1.0.0"),
        ("stats", "1.0.0"),
        ("stats", "1.2.0"),
        ("stats", "1.9.0"),
        ("stats", "1.10.0"),
        ("stats", "2.0.0"),
    ]
    assert registry.definitions("feature_group", "stats")[3] == records[2]  # 1.10.0, intact
    assert registry.definitions("entity") == [records[-1]]
    assert registry.definitions("feature_view") == []
    latest = registry.latest_definition("feature_group", "stats")
    assert latest is not None and latest.semver == "2.0.0"
    in_major = registry.latest_definition("feature_group", "stats", 1)
    assert in_major is not None and in_major.semver == "1.10.0"
    assert registry.latest_definition("feature_group", "stats", 3) is None
    assert registry.latest_definition("feature_group", "nope") is None
    assert registry.get_definition("feature_group", "stats", 1) == in_major


def test_get_definition_names_the_registered_ones(registry: RegistryBackend) -> None:
    registry.add_definition(definition("stats", "1.0.0"))
    with pytest.raises(NotFoundError, match=r"feature_group/stat is not registered.*\['stats'\]"):
        registry.get_definition("feature_group", "stat", None)
    with pytest.raises(NotFoundError, match="@v4"):
        registry.get_definition("feature_group", "stats", 4)
    with pytest.raises(NotFoundError, match="none"):
        registry.get_definition("feature_view", "v", None)


def test_a_definition_version_is_recorded_once(registry: RegistryBackend) -> None:
    registry.add_definition(definition("stats", "1.0.0"))
    with pytest.raises(sa.exc.IntegrityError):
        registry.add_definition(definition("stats", "1.0.0"))


# -- data versions ----------------------------------------------------------------------------


def test_data_versions_round_trip_in_order(registry: RegistryBackend) -> None:
    for version in (2, 0, 1):
        registry.add_data_version(data_version("stats", 1, version))
    registry.add_data_version(data_version("stats", 2, 0, note="recovered"))
    registry.add_data_version(data_version("clicks", 1, 0, run_id=None))
    assert [v.version for v in registry.data_versions("stats", 1)] == [0, 1, 2]
    assert registry.data_version("stats", 1, 2) == data_version("stats", 1, 2)
    assert registry.data_version("stats", 2, 0) == data_version("stats", 2, 0, note="recovered")
    assert registry.data_version("stats", 1, 3) is None
    assert registry.data_versions("stats", 3) == []
    assert [(v.group, v.major, v.version) for v in registry.all_data_versions()] == [
        ("clicks", 1, 0),
        ("stats", 1, 0),
        ("stats", 1, 1),
        ("stats", 1, 2),
        ("stats", 2, 0),
    ]
    with pytest.raises(sa.exc.IntegrityError):
        registry.add_data_version(data_version("stats", 1, 2))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lane_a=st.integers(0, 2**64 - 1),
    lane_b=st.integers(0, 2**64 - 1),
    rows=st.integers(0, 2**62),
    micros=st.integers(0, 10**12),
    files=st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=3),
    note=st.text(max_size=20),
)
def test_data_version_fields_survive_any_value(
    registry: RegistryBackend,
    lane_a: int,
    lane_b: int,
    rows: int,
    micros: int,
    files: dict[str, str],
    note: str,
) -> None:
    version = len(registry.data_versions("prop", 1))
    record = data_version(
        "prop",
        1,
        version,
        rows=rows,
        content=ContentHash(rows=rows, lane_a=lane_a, lane_b=lane_b),
        files={k: {"sha256": v} for k, v in files.items()},
        created_at=T0 + timedelta(microseconds=micros),
        note=note.replace("\x00", ""),  # PostgreSQL text cannot hold NUL
    )
    registry.add_data_version(record)
    assert registry.data_version("prop", 1, version) == record


# -- runs -------------------------------------------------------------------------------------


def test_runs_start_finish_and_list_oldest_first(registry: RegistryBackend) -> None:
    late = RunRecord("r2", "ingest", "running", "ana", T0 + timedelta(seconds=5))
    early = RunRecord(
        "r1", "training-data", "running", "bo", T0, params={"k": [1]}, inputs=["a"], code_hash="c"
    )
    registry.start_run(late)
    registry.start_run(early)
    assert [r.id for r in registry.runs()] == ["r1", "r2"]
    assert registry.run("r1") == early
    registry.finish_run("r2", "failed", ["x"], "DataError: no")
    done = registry.run("r2")
    assert done is not None and done.status == "failed" and done.outputs == ["x"]
    assert done.error == "DataError: no" and done.ended_at is not None
    assert done.ended_at.tzinfo is not None
    registry.finish_run("nope", "succeeded", [])  # changes nothing, raises nothing
    assert registry.run("nope") is None


def test_runs_keep_their_owner_and_heartbeat_and_filter_by_status(
    registry: RegistryBackend,
) -> None:
    owned = RunRecord(
        "o1", "materialize", "running", "ana", T0, host="box-1", pid=4242, heartbeat_at=T0
    )
    registry.start_run(owned)
    registry.start_run(RunRecord("o2", "ingest", "running", "ana", T0 + timedelta(seconds=1)))
    assert registry.run("o1") == owned
    legacy = registry.run("o2")
    assert legacy is not None and legacy.host == "" and legacy.pid is None
    assert legacy.heartbeat_at is None
    registry.heartbeat(["o1", "o2", "missing"])
    beat = registry.run("o1")
    assert beat is not None and beat.heartbeat_at is not None and beat.heartbeat_at > T0
    registry.finish_run("o2", "succeeded", [])
    assert [r.id for r in registry.runs("running")] == ["o1"]
    assert [r.id for r in registry.runs("succeeded")] == ["o2"]
    assert registry.runs("abandoned") == []


def test_abandoning_changes_only_runs_still_running(registry: RegistryBackend) -> None:
    registry.start_run(RunRecord("a1", "ingest", "running", "ana", T0))
    registry.start_run(RunRecord("a2", "ingest", "running", "ana", T0))
    registry.finish_run("a2", "succeeded", ["out"])
    assert registry.abandon_runs(["a1", "a2", "missing"], "abandoned: gone") == ["a1"]
    gone, done = registry.run("a1"), registry.run("a2")
    assert gone is not None and gone.status == "abandoned" and gone.error == "abandoned: gone"
    assert gone.ended_at is not None
    assert done is not None and done.status == "succeeded"
    assert registry.abandon_runs(["a1"], "again") == []  # already abandoned
    registry.heartbeat(["a1"])  # a dead run's late beat changes nothing
    again = registry.run("a1")
    assert again is not None and again.heartbeat_at is None


# -- numbered series --------------------------------------------------------------------------


def test_training_sets_are_numbered_per_view_and_major(registry: RegistryBackend) -> None:
    got = [
        registry.add_training_dataset(training(view, major, number=99)).number
        for view, major in [("a", 1), ("a", 1), ("b", 1), ("a", 2), ("a", 1), ("b", 1)]
    ]
    assert got == [1, 2, 1, 1, 3, 2]
    assert [(t.major, t.number) for t in registry.training_datasets("a")] == [
        (1, 1),
        (1, 2),
        (1, 3),
        (2, 1),
    ]
    assert [t.number for t in registry.training_datasets("a", 2)] == [1]
    stored = registry.training_datasets("b")[0]
    assert stored == dataclasses.replace(training("b"), number=1)
    assert registry.training_datasets("c") == []


def test_models_and_deployments_are_numbered_per_name(registry: RegistryBackend) -> None:
    assert [registry.add_model(model(n, version=7)).version for n in "aabab"] == [1, 2, 1, 3, 2]
    assert [(m.name, m.version) for m in registry.models()] == [
        ("a", 1),
        ("a", 2),
        ("a", 3),
        ("b", 1),
        ("b", 2),
    ]
    assert registry.models("b")[1] == model("b", 2)
    assert registry.models("c") == []
    seqs = [
        registry.add_deployment(deployment(n, v)).seq for n, v in [("x", 1), ("y", 1), ("x", 2)]
    ]
    assert seqs == [1, 1, 2]
    assert [(d.name, d.seq, d.model_version) for d in registry.deployments()] == [
        ("x", 1, 1),
        ("x", 2, 2),
        ("y", 1, 1),
    ]
    assert registry.deployments("x")[-1] == dataclasses.replace(deployment("x", 2), seq=2)


def test_a_failed_insert_gives_its_number_back(registry: RegistryBackend) -> None:
    registry.add_model(model("a"))
    broken = dataclasses.replace(model("a"), artifact_hash=None)  # NOT NULL: refused
    with pytest.raises(sa.exc.IntegrityError):
        registry.add_model(broken)
    assert registry.add_model(model("a")).version == 2


# -- validations, materializations, findings, statistics --------------------------------------


def test_validations_filter_by_version(registry: RegistryBackend) -> None:
    def report(run: str, version: int | None, minute: int) -> ValidationRecord:
        return ValidationRecord(
            run,
            "g",
            1,
            version,
            "passed",
            "reject",
            5,
            5,
            0,
            {"rules": [run]},
            None,
            T0 + timedelta(minutes=minute),
        )

    for r in (report("r2", 2, 2), report("r1", 1, 1), report("r3", None, 3)):
        registry.add_validation(r)
    assert [v.run_id for v in registry.validations("g", 1)] == ["r1", "r2", "r3"]
    assert registry.validations("g", 1, 2) == [report("r2", 2, 2)]
    assert registry.validations("g", 2) == []


def test_materializations(registry: RegistryBackend) -> None:
    assert registry.last_materialized("g", 1, "online") is None
    registry.add_materialization("g", 1, "online", 3, 10, "incremental", "r1")
    registry.add_materialization("g", 1, "online", 3, 12, "full", "r2")  # replaces
    assert registry.last_materialized("g", 1, "online") == 3
    assert registry.last_materialized("g", 1, "other") is None
    registry.add_materialization("g", 1, "online", 4, 2, "window-rebuild", "r3")
    assert registry.last_materialized("g", 1, "online") is None
    registry.add_materialization("h", 2, "online", 0, 1, "full", "r4")
    latest = sorted(registry.latest_materializations("online"), key=lambda m: m["group"])
    assert [(m["group"], m["major"], m["version"]) for m in latest] == [("g", 1, 4), ("h", 2, 0)]
    assert all(m["at"].tzinfo is not None for m in latest)
    assert registry.latest_materializations("other") == []


def test_findings_open_and_resolve(registry: RegistryBackend) -> None:
    ids = [
        registry.add_finding("drift", "feature_group/g@v1", "alert", True, {"psi": 0.4}),
        registry.add_finding("fresh", "feature_group/g@v1", "warn", False, {"age": 3}),
        registry.add_finding("drift", "feature_group/h@v1", "alert", False, {"psi": 0.3}),
    ]
    assert ids == sorted(set(ids))
    assert [f["id"] for f in registry.open_findings()] == ids
    assert registry.open_findings("drift")[0] == {"psi": 0.4, "id": ids[0], "blocking": True}
    assert registry.resolve_findings("drift", "fixed") == 2
    assert registry.resolve_findings("drift", "again") == 0
    assert [f["id"] for f in registry.open_findings()] == [ids[1]]


def test_stats_are_kept_and_replaced(registry: RegistryBackend) -> None:
    assert registry.get_stats("feature_group/g@v1#1") is None
    registry.put_stats("feature_group/g@v1#1", '{"format": 1}')
    registry.put_stats("feature_group/g@v1#1", '{"format": 1, "columns": {}}')
    assert registry.get_stats("feature_group/g@v1#1") == '{"format": 1, "columns": {}}'


# -- tokens -----------------------------------------------------------------------------------


def test_tokens(registry: RegistryBackend) -> None:
    second, first = token("t2", "h2", T0 + timedelta(seconds=1)), token("t1", "h1")
    registry.add_token(second)
    registry.add_token(first)
    assert registry.tokens() == [first, second]
    assert registry.token_by_hash("h2") == second
    assert registry.token_by_hash("h3") is None
    revoked = registry.revoke_token("t1")
    assert revoked is not None and not revoked.active and revoked.revoked_at is not None
    again = registry.revoke_token("t1")
    assert again is not None and again.revoked_at == revoked.revoked_at
    assert registry.revoke_token("nope") is None
    with pytest.raises(sa.exc.IntegrityError):  # a secret's hash is unique
        registry.add_token(token("t3", "h2"))


# -- audit trail --------------------------------------------------------------------------------


def test_audit_chain_appends_filters_and_verifies(registry: RegistryBackend) -> None:
    entries = [
        registry.audit("ana", "apply", "feature_group/g@v1", {"version": "1.0.0"}),
        registry.audit("bo", "ingest", "feature_group/g@v1#1", {"rows": 2}),
        registry.audit("ana", "apply", "feature_view/v@v1", {}),
    ]
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[0].prev_hash == "0" * 64
    assert entries[1].prev_hash == entries[0].hash and entries[2].prev_hash == entries[1].hash
    assert registry.audit_log() == entries
    assert registry.audit_log("feature_group/g") == entries[:2]
    assert registry.audit_verify() == []


def test_pins_are_added_listed_and_removed_with_audit(registry: RegistryBackend) -> None:
    registry.add_pin("g", 1, 3, "/p/a.fl.yaml", "feature_group/g@v1#3", "ana")
    registry.add_pin("g", 1, 4, "/p/a.fl.yaml", "feature_group/g@v1#4", "ana")
    registry.add_pin("h", 1, 1, "/p/b.fl.yaml", "training_dataset/v@v1/1", "bo")
    assert [(p["group"], p["version"]) for p in registry.pins()] == [("g", 3), ("g", 4), ("h", 1)]
    removed = registry.remove_pins("/p/a.fl.yaml", "cy")
    assert [(p["version"], p["pinned"]) for p in removed] == [
        (3, "feature_group/g@v1#3"),
        (4, "feature_group/g@v1#4"),
    ]
    assert [p["path"] for p in registry.pins()] == ["/p/b.fl.yaml"]
    assert registry.remove_pins("/p/a.fl.yaml", "cy") == []
    unpins = [e for e in registry.audit_log() if e.action == "unpin"]
    assert [(e.user, e.object) for e in unpins] == [
        ("cy", "feature_group/g@v1#3"),
        ("cy", "feature_group/g@v1#4"),
    ]
    assert registry.audit_verify() == []


def test_audit_verify_finds_edits_and_deletions(registry: RegistryBackend) -> None:
    for i in range(4):
        registry.audit("ana", "apply", f"o{i}", {"i": i})
    engine = registry.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(audit_table.update().where(audit_table.c.seq == 2).values(details='{"i": 9}'))
    assert any("entry 2" in p and "edited" in p for p in registry.audit_verify())
    with engine.begin() as conn:
        conn.execute(audit_table.delete().where(audit_table.c.seq == 4))
    # the next entry keeps its own number, so a deleted last entry stays visible
    assert registry.audit("ana", "apply", "o5", {}).seq == 5
    assert any("4..4 are missing" in p for p in registry.audit_verify())


# -- opening ---------------------------------------------------------------------------------


def test_reopening_keeps_records_and_numbering(registry_url: str) -> None:
    first = open_registry(registry_url, audit_key=KEY)
    first.add_model(model("m"))
    first.audit("ana", "register", "model/m/1", {})
    first.close()
    second = open_registry(registry_url, audit_key=KEY)
    assert second.add_model(model("m")).version == 2
    assert second.audit("ana", "register", "model/m/2", {}).seq == 2
    assert second.audit_verify() == []
    second.close()


def test_a_newer_schema_is_refused(registry_url: str) -> None:
    reg = open_registry(registry_url, audit_key=KEY)
    with reg.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(meta_table.update().values(value="999"))
    reg.close()
    with pytest.raises(ConfigError, match=r"newer than this featureledger.*upgrade featureledger"):
        open_registry(registry_url, audit_key=KEY)


def test_an_unknown_revision_is_refused(registry_url: str) -> None:
    reg = open_registry(registry_url, audit_key=KEY)
    with reg.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(sa.text("UPDATE fl_alembic_version SET version_num = '0999'"))
    reg.close()
    with pytest.raises(ConfigError, match=r"0999.*upgrade featureledger"):
        open_registry(registry_url, audit_key=KEY)


def test_plain_postgresql_urls_use_psycopg(postgres_database: str) -> None:
    reg = open_registry(
        postgres_database.replace("postgresql+psycopg://", "postgresql://"), audit_key=KEY
    )
    assert reg.url.startswith("postgresql+psycopg://")
    assert reg.audit("ana", "open", "registry", {}).seq == 1
    reg.close()


def test_unreachable_postgres_names_no_password(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://bob:hunter2@/fl?host={tmp_path}&connect_timeout=2"
    with pytest.raises(ConfigError, match="cannot be reached") as info:
        open_registry(url, audit_key=KEY)
    assert "hunter2" not in str(info.value) and "bob:***@" in str(info.value)


# -- many writers -----------------------------------------------------------------------------


def _draw(url: str, me: int, start_at: float) -> list[tuple[int, int, int]]:
    time.sleep(max(0.0, start_at - time.time()))
    reg = open_registry(url, audit_key=KEY)
    drawn = []
    for i in range(10):
        td = reg.add_training_dataset(training("shared")).number
        mv = reg.add_model(model("shared")).version
        seq = reg.audit(f"p{me}", "draw", f"p{me}/{i}", {"td": td, "model": mv}).seq
        drawn.append((td, mv, seq))
    reg.close()
    return drawn


@pytest.mark.subprocess
def test_concurrent_writers_draw_unique_gap_free_numbers(registry: RegistryBackend) -> None:
    url = registry.engine.url.render_as_string(hide_password=False)  # type: ignore[attr-defined]
    with multiprocessing.get_context("fork").Pool(8) as pool:
        results = pool.starmap(_draw, [(url, me, time.time() + 1.0) for me in range(8)])
    drawn = [d for per_process in results for d in per_process]
    for position in range(3):
        assert sorted(d[position] for d in drawn) == list(range(1, 81))
    assert [t.number for t in registry.training_datasets("shared")] == list(range(1, 81))
    assert registry.audit_verify() == []


def test_llm_records_are_numbered_per_kind_and_name_with_their_audit_entry(
    registry: RegistryBackend,
) -> None:
    made = [
        registry.add_llm_record(k, n, {"i": i}, user="ana", action="llm-x", details={"i": i})
        for i, (k, n) in enumerate([("index", "a"), ("index", "a"), ("index", "b"), ("trace", "a")])
    ]
    assert [r.version for r in made] == [1, 2, 1, 1]
    assert [(r.name, r.version, r.body) for r in registry.llm_records("index")] == [
        ("a", 1, {"i": 0}),
        ("a", 2, {"i": 1}),
        ("b", 1, {"i": 2}),
    ]
    assert registry.llm_records("index", "a", version=2)[0].created_by == "ana"
    audited = [e.object for e in registry.audit_log("index/")]
    assert audited == ["index/a/1", "index/a/2", "index/b/1"]
    # a record of use (a retrieval trace) may go without an audit entry
    registry.add_llm_record("trace", "a", {}, user="ana", action=None, details={})
    assert [r.version for r in registry.llm_records("trace", "a")] == [1, 2]
    assert [e.object for e in registry.audit_log("trace/")] == ["trace/a/1"]
    assert registry.audit_verify() == []
