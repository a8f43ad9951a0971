"""Registry migrations: a 0.1 repository upgrades in place; the schema stays in step with them.

data/release-0.1-repo.tar.gz is a repository made by featureledger 0.1 (the code before the
migrations existed; data/make_release_repo.py made it): an entity, a group with two
ingests, a view with two training sets, a registered and deployed model, a token.
"""

from __future__ import annotations

import multiprocessing
import tarfile
import time
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from featureledger import FeatureStore, content_hash
from featureledger.registry import RegistryBackend, migrate, open_registry
from featureledger.registry.schema import SCHEMA_VERSION, metadata

from .conftest import KEY

RELEASE = Path(__file__).parent / "data" / "release-0.1-repo.tar.gz"
RELEASE_AUDIT = [
    "apply",
    "apply",
    "apply",
    "ingest",
    "ingest",
    "training-data",
    "training-data",
    "register",
    "deploy",
    "token-create",
]
#: what the first open with an audit key appends: the anchor, then one entry per version
REKEY = ["re-keyed", "version-covered", "version-covered", "version-covered"]


@pytest.fixture
def release_repo(tmp_path: Path) -> Path:
    with tarfile.open(RELEASE) as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / "repo"


def revision(url: str) -> tuple[str | None, int | None]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        found = migrate.stored_revision(conn)
    engine.dispose()
    return found


def test_head_constant_matches_the_migration_scripts() -> None:
    scripts = ScriptDirectory(str(migrate.MIGRATIONS))
    assert scripts.get_heads() == [migrate.HEAD]
    chain = [s.revision for s in scripts.walk_revisions()][::-1]
    assert chain == [f"{n:04d}" for n in range(1, len(chain) + 1)]  # numbered, linear


def test_migrated_schema_equals_the_schema_module(registry: RegistryBackend) -> None:
    engine = registry.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    # Alembic's own table is not part of ours
    diffs = [d for d in diffs if not (d[0] == "remove_table" and d[1].name == "fl_alembic_version")]
    assert diffs == []


def test_baseline_equals_the_release_schema(release_repo: Path, tmp_path: Path) -> None:
    """Revision 0001 on an empty database gives exactly the tables 0.1 created."""
    release = sa.create_engine(f"sqlite:///{release_repo / '.featureledger' / 'registry.db'}")
    baseline = sa.create_engine(f"sqlite:///{tmp_path / 'baseline.db'}")
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrate.MIGRATIONS))
    with baseline.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")

    def shape(engine: sa.Engine) -> dict[str, object]:
        inspector = sa.inspect(engine)
        return {
            table: (
                [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
                inspector.get_pk_constraint(table)["constrained_columns"],
                sorted(i["column_names"] for i in inspector.get_indexes(table)),
            )
            for table in inspector.get_table_names()
            if table != "fl_alembic_version"
        }

    assert shape(baseline) == shape(release)
    release.dispose()
    baseline.dispose()


def test_release_repository_upgrades_in_place(release_repo: Path) -> None:
    url = f"sqlite:///{release_repo / '.featureledger' / 'registry.db'}"
    assert revision(url) == (None, 2)
    store = FeatureStore(release_repo)
    assert revision(url) == (migrate.HEAD, SCHEMA_VERSION)

    # the books as 0.1 wrote them, anchored under the repository's new audit key
    log = store.registry.audit_log()
    assert [e.action for e in log] == RELEASE_AUDIT + REKEY
    assert {e.scheme for e in log[:10]} == {"sha256"} and {e.scheme for e in log[10:]} == {
        "hmac-sha256"
    }
    assert log[10].details["previous_head"] == log[9].hash
    assert log[10].details["problems_before"] == []
    assert store.audit_verify() == []
    assert [d.name for d in store.list_definitions("feature_group")] == ["stats"]
    assert store.get_feature_view("fraud").name == "fraud"
    versions = store.versions("stats")
    assert [v.version for v in versions] == [0, 1, 2]
    for v in versions:
        assert v.content == content_hash(store.read("stats", version=v.version))
    assert [t.number for t in store.training_datasets("fraud")] == [1, 2]
    assert [m.version for m in store.models("fraud_model")] == [1]
    assert [t.purpose for t in store.tokens()] == ["release fixture"]

    # and it keeps working: every series continues where 0.1 left it
    store.ingest(
        "stats",
        {"user_id": [4], "event_timestamp": [versions[-1].created_at], "clicks": [7]},
    )
    assert store.versions("stats")[-1].version == 3
    frame = pa.table({"user_id": [4], "event_timestamp": [versions[-1].created_at]})
    assert store.training_data("fraud", frame).record.number == 3
    artifact = release_repo / "model-2.bin"
    artifact.write_text("weights-2")
    assert store.register_model("fraud_model", artifact).version == 2
    assert store.deploy("fraud_api", "fraud_model").seq == 2
    store.create_token("reader")
    log = store.registry.audit_log()
    assert [e.seq for e in log] == list(range(1, 20))
    assert store.audit_verify() == []
    store.close()
    # opening again finds nothing to migrate or anchor, and the same books
    again = FeatureStore(release_repo)
    assert again.audit_verify() == [] and len(again.registry.audit_log()) == 19


def test_release_registry_copied_to_postgres_upgrades(
    release_repo: Path, postgres_database: str
) -> None:
    """The same 0.1 rows in a PostgreSQL database with the 0.1 schema (no revision table)."""
    source = sa.create_engine(f"sqlite:///{release_repo / '.featureledger' / 'registry.db'}")
    target = sa.create_engine(postgres_database)
    old = sa.MetaData()
    old.reflect(source)
    # the 0.1 DDL is revision 0001 (test_baseline_equals_the_release_schema); 0.1 kept no
    # revision table, so drop it after
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrate.MIGRATIONS))
    with target.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.execute(sa.text("DROP TABLE fl_alembic_version"))
    with source.connect() as src, target.begin() as dst:
        for table in old.sorted_tables:
            rows = [dict(r) for r in src.execute(table.select()).mappings()]
            if table.name == "fl_meta":
                dst.execute(sa.text("DELETE FROM fl_meta"))
            if rows:
                dst.execute(sa.table(table.name, *(sa.column(c) for c in rows[0])).insert(), rows)
    source.dispose()
    target.dispose()
    assert revision(postgres_database) == (None, 2)

    reg = open_registry(postgres_database, audit_key=KEY)
    assert revision(postgres_database) == (migrate.HEAD, SCHEMA_VERSION)
    assert [e.action for e in reg.audit_log()] == RELEASE_AUDIT + REKEY
    assert reg.audit_verify() == []
    assert [d.semver for d in reg.definitions("feature_group", "stats")] == ["1.0.0"]
    assert [v.version for v in reg.data_versions("stats", 1)] == [0, 1, 2]
    training = reg.training_datasets("fraud")
    assert [t.number for t in training] == [1, 2]
    assert reg.add_training_dataset(training[0]).number == 3
    model = reg.models("fraud_model")[0]
    assert reg.add_model(model).version == 2
    assert reg.add_deployment(reg.deployments("fraud_api")[0]).seq == 2
    assert reg.audit("ana", "check", "model/fraud_model/2", {}).seq == 15
    assert reg.audit_verify() == []
    reg.close()


def _open(url: str, start_at: float) -> str:
    time.sleep(max(0.0, start_at - time.time()))  # all open at once: the race under test
    reg = open_registry(url, audit_key=KEY)
    entry = reg.audit("opener", "open", "registry", {})
    reg.close()
    return str(entry.seq)


@pytest.mark.subprocess
def test_concurrent_openers_migrate_once(registry_url: str) -> None:
    # fork: children start in milliseconds, so they reach the empty database together
    with multiprocessing.get_context("fork").Pool(6) as pool:
        seqs = pool.starmap(_open, [(registry_url, time.time() + 1.0)] * 6)
    assert sorted(int(s) for s in seqs) == [1, 2, 3, 4, 5, 6]
    reg = open_registry(registry_url, audit_key=KEY)
    engine = reg.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM fl_alembic_version")).scalar() == 1
    assert reg.audit_verify() == []
    reg.close()
