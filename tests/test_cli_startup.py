"""CLI start-up: `featureledger --help` and the light commands (list, versions, show) must not
import the heavy libraries, which cost most of a second before any argument is parsed.

Checked by the modules a real ``featureledger`` process holds when it ends, never by a timed
assertion (benchmarks/bench_cli.py measures the time; docs/benchmarks.md has the figures).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import featureledger
from featureledger import Entity, FeatureGroup, FeatureStore, Field

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
    line = next((x for x in proc.stdout.splitlines() if x.startswith("@@MODULES ")), None)
    assert line is not None, proc.stdout + proc.stderr
    return proc, set(json.loads(line.removeprefix("@@MODULES ")))


def loaded(modules: set[str], names: list[str]) -> list[str]:
    return [n for n in names if n in modules]


@pytest.mark.parametrize("args", [["--help"], ["list", "--help"], ["model", "--help"]])
def test_help_imports_no_heavy_module(args: list[str]) -> None:
    proc, modules = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert "Usage: featureledger" in proc.stdout
    assert loaded(modules, HEAVY + HELP_ONLY) == []


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with one group holding one data version."""
    store = FeatureStore.init(tmp_path / "repo")
    user = Entity("user", join_keys=["user_id"])
    stats = FeatureGroup("stats", user, event_time=None, features=[Field("spend", "float64")])
    store.apply([user, stats])
    store.ingest("stats", {"user_id": [1, 2], "spend": [1.5, 2.5]})
    store.close()
    return store.repo


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["list", "groups"], "feature_group/stats@v1"),
        (["list", "entities"], "entity/user"),
        (["show", "entity/user"], '"join_keys"'),
    ],
)
def test_light_commands_import_no_heavy_module(repo: Path, args: list[str], shown: str) -> None:
    proc, modules = run_cli(*args, "--repo", str(repo))
    assert proc.returncode == 0, proc.stderr
    assert shown in proc.stdout
    assert loaded(modules, HEAVY) == []


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["versions", "stats"], "feature_group/stats@v1"),
        (["show", "feature_group/stats@v1#0"], '"operation"'),
    ],
)
def test_group_commands_read_delta_but_nothing_else_heavy(
    repo: Path, args: list[str], shown: str
) -> None:
    # a group's versions are first synced with its Delta log (commits a crashed writer left
    # unrecorded), so these open the log: deltalake is allowed, nothing else heavy
    proc, modules = run_cli(*args, "--repo", str(repo))
    assert proc.returncode == 0, proc.stderr
    assert shown in proc.stdout
    assert loaded(modules, [m for m in HEAVY if m != "deltalake"]) == []
