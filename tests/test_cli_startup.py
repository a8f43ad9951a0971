"""CLI start-up: `featureledger --help` and the light commands (list, versions, show) must not
import the heavy libraries, which cost most of a second before any argument is parsed.

Checked by the modules a real ``featureledger`` process holds when it ends, never by a timed
assertion (benchmarks/bench_cli.py measures the time; docs/benchmarks.md has the figures).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

import featureledger
from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field

pytestmark = pytest.mark.subprocess

# runs the CLI as the console script does, then prints the modules the process imported
_WRAPPER = """
import json, sys
from featureledger.cli.main import main
sys.argv[0] = "featureledger"
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print("@@MODULES " + json.dumps(sorted(sys.modules)))
sys.exit(code)
"""

#: never needed to print help or read the registry
HEAVY = [
    "pandas",
    "duckdb",
    "deltalake",
    "pyarrow.dataset",
    "matplotlib",
    "fastapi",
    "uvicorn",
    "scipy",
    "openlineage",
    "polars",
]
#: also kept off `--help`, which opens no repository
HELP_ONLY = ["pyarrow", "numpy", "sqlalchemy", "featureledger.store"]


def run_cli(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    src = str(Path(featureledger.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-c", _WRAPPER, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    head, sep, line = proc.stdout.rpartition("@@MODULES ")
    assert sep, proc.stdout + proc.stderr
    proc.stdout = head  # what the command printed
    return proc, set(json.loads(line))


def loaded(modules: set[str], names: list[str]) -> list[str]:
    return [n for n in names if n in modules]


@pytest.mark.parametrize("args", [["--help"], ["list", "--help"], ["model", "--help"]])
def test_help_imports_no_heavy_module(args: list[str]) -> None:
    proc, modules = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert "Usage: featureledger" in proc.stdout
    assert loaded(modules, HEAVY + HELP_ONLY) == []


#: also kept off the light commands, which read the registry file with the standard library
LIGHT_ONLY = ["sqlalchemy", "numpy", "pyarrow", "pydantic", "featureledger.store._facade"]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with a static group, an event-time group with two data versions, a view
    and a training set."""
    store = FeatureStore.init(tmp_path / "repo")
    user = Entity("user", join_keys=["user_id"])
    stats = FeatureGroup("stats", user, event_time=None, features=[Field("spend", "float64")])
    clicks = FeatureGroup("clicks", user, features=[Field("n", "int64")], online=True)
    store.apply([user, stats, clicks, FeatureView("fraud", [stats, clicks])])
    store.ingest("stats", {"user_id": [1, 2], "spend": [1.5, 2.5]})
    t0 = datetime(2025, 3, 1, tzinfo=UTC)
    for day in range(2):
        store.ingest(
            "clicks",
            {"user_id": [1, 2], "event_timestamp": [t0 + timedelta(days=day)] * 2, "n": [day, 5]},
        )
    entities = pa.table({"user_id": [1, 2], "event_timestamp": [t0 + timedelta(days=3)] * 2})
    store.training_data("fraud", entities)
    store.close()
    return store.repo


LIGHT_COMMANDS = [
    (["list", "groups"], "feature_group/stats@v1"),
    (["list", "entities"], "entity/user"),
    (["list", "views"], "feature_view/fraud@v1"),
    (["list", "training-sets"], "training_dataset/fraud@v1/1"),
    (["show", "entity/user"], '"join_keys"'),
    (["show", "feature_view/fraud@v1"], '"definition"'),
    (["show", "feature_group/clicks@v1#2"], '"operation"'),
    (["show", "training_dataset/fraud@v1/1"], '"pins"'),
    (["versions", "clicks"], "feature_group/clicks@v1"),
]


@pytest.mark.parametrize(("args", "shown"), LIGHT_COMMANDS)
def test_light_commands_import_no_heavy_module(repo: Path, args: list[str], shown: str) -> None:
    proc, modules = run_cli(*args, "--repo", str(repo))
    assert proc.returncode == 0, proc.stderr
    assert shown in proc.stdout
    assert loaded(modules, HEAVY + LIGHT_ONLY) == []


@pytest.mark.parametrize(("args", "shown"), LIGHT_COMMANDS)
def test_light_commands_print_what_the_store_prints(
    repo: Path, args: list[str], shown: str
) -> None:
    # the same command with the light catalog made unable to answer (a registry URL naming a
    # driver, which it leaves to SQLAlchemy, for the same file) goes through the store
    light, _ = run_cli(*args, "--repo", str(repo))
    config = repo / "featureledger.yaml"
    text = config.read_text()
    assert "registry: sqlite:///.featureledger/registry.db" in text
    db = repo / ".featureledger" / "registry.db"
    config.write_text(
        text.replace("sqlite:///.featureledger/registry.db", f"sqlite+pysqlite:///{db}")
    )
    full, modules = run_cli(*args, "--repo", str(repo))
    assert "featureledger.store._facade" in modules  # the store answered this time
    assert full.returncode == light.returncode == 0, full.stderr + light.stderr
    assert light.stdout == full.stdout


def test_a_commit_left_unrecorded_is_recovered_as_the_store_would(repo: Path) -> None:
    # a writer killed between its Delta commit and its registry record: the light catalog
    # sees the log ahead of the registry and leaves the answer to the store, which records
    # the commit first
    with sqlite3.connect(repo / ".featureledger" / "registry.db") as conn:
        deleted = conn.execute(
            "DELETE FROM fl_data_versions WHERE group_name = 'clicks' AND version = 2"
        ).rowcount
    assert deleted == 1
    proc, modules = run_cli("versions", "clicks", "--repo", str(repo))
    assert proc.returncode == 0, proc.stderr
    assert "featureledger.store._facade" in modules
    assert "recovered" in proc.stdout
    # recorded now: the next call is light again and prints the same table
    again, modules = run_cli("versions", "clicks", "--repo", str(repo))
    assert loaded(modules, HEAVY + LIGHT_ONLY) == []
    assert again.stdout == proc.stdout


def test_errors_come_from_the_store(repo: Path) -> None:
    proc, _ = run_cli("show", "feature_group/nope", "--repo", str(repo))
    assert proc.returncode == 1
    assert "not registered" in proc.stdout + proc.stderr
    assert "known feature_groups: ['clicks', 'stats']" in proc.stdout + proc.stderr


def test_show_of_a_group_is_the_stores(repo: Path) -> None:
    # a group's classification is derived through the pipelines feeding it, so the store
    # answers; its data versions stay light
    proc, modules = run_cli("show", "feature_group/clicks", "--repo", str(repo))
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert shown["scd_type"]["type"] == 4  # event time and online
    assert "classification" in shown
    assert "featureledger.store._facade" in modules
