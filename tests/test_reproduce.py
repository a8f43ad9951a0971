"""`reproduce` for training sets, models and deployments: R(m) factor by factor, each change
in its own factor with a restore hint; `verify` of a training set checks code and
environment too."""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from featureledger import FeatureStore
from featureledger.cli.main import app
from featureledger.repo import load_definitions
from featureledger.versioning.reproduce import FACTORS

T0 = datetime(2025, 1, 1, tzinfo=UTC)

FEATURES = """
import pyarrow.compute as pc
from datetime import timedelta
from featureledger import Entity, FeatureGroup, FeatureView, Field
from featureledger.definitions.feature_view import OnDemand

SCALE = 2.0


def _scale(x):
    return pc.multiply(x, SCALE)


def doubled(t):
    return {"doubled": _scale(t.column("spend"))}


user = Entity("user", join_keys=["user_id"])
stats = FeatureGroup(
    "stats", user, features=[Field("spend", "float64")], ttl=timedelta(days=2), online=True
)
scoring = FeatureView(
    "scoring", [stats], on_demand=[OnDemand("doubled", doubled, outputs=["doubled"])]
)
"""

TRAIN = '''
def train(rows):
    """Fit the model (here: a mean)."""
    return sum(rows) / len(rows)
'''


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with a view (an on-demand transform calling a helper), one training
    set, a model registered with its training code, and a deployment of it."""
    root = tmp_path / "repo"
    store = FeatureStore.init(root)
    (root / "features.py").write_text(FEATURES)
    (root / "train.py").write_text(TRAIN)
    defs = load_definitions(root)
    store.apply(defs)
    store.ingest(
        "stats",
        {"user_id": [1, 2, 3], "event_timestamp": [T0] * 3, "spend": [1.0, 2.5, 4.0]},
    )
    entities = pa.table(
        {
            "user_id": [1, 2, 3, 4],
            "event_timestamp": pa.array(
                [T0 + timedelta(hours=h) for h in range(4)], pa.timestamp("us", tz="UTC")
            ),
        }
    )
    td = store.training_data("scoring", entities)
    assert td.to_arrow().column("doubled").to_pylist() == [2.0, 5.0, 8.0, None]
    artifact = root / "model.txt"
    artifact.write_text("2.5")
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_module", root / "train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    store.register_model("fraud", artifact, training_dataset=td, code=module.train)
    store.deploy("api", "fraud")
    store.close()
    return root


TD = "training_dataset/scoring@v1/1"


def reproduce(root: Path, identity: str = TD):
    with FeatureStore(root) as store:
        return store.reproduce(identity, definitions=load_definitions(root))


@pytest.mark.parametrize("identity", [TD, "model/fraud/1", "deployment/api"])
def test_identical_artifact_reproduces_on_every_factor(repo: Path, identity: str) -> None:
    report = reproduce(repo, identity)
    for factor in FACTORS:
        assert report.holds(factor), (factor, report.differences(factor))
        assert report.factors[factor], f"{factor} compared nothing"
        assert report.hints(factor) == []
    assert report.reproducible
    assert report.output_matches is True  # the join re-run from the pins hashes the same
    items = {i for f in FACTORS for i, _, _ in report.factors[f]}
    assert "feature_group/stats@v1#1" in items
    if identity != TD:
        assert "model/fraud/1: training code" in items
    if identity == "deployment/api":
        assert report.covers == ["deployment/api", "model/fraud/1", TD]
        assert "serving: on-demand doubled" in items


def test_the_training_run_reproduces_as_its_training_set(repo: Path) -> None:
    with FeatureStore(repo) as store:
        run = store.training_datasets("scoring")[0].run_id
        assert store.reproduce(f"run/{run}").identity == TD
        assert store.verify(TD, definitions=load_definitions(repo))[0].ok


def test_changed_transform_helper_shows_in_code_with_where_it_is(repo: Path) -> None:
    features = repo / "features.py"
    features.write_text(features.read_text().replace("SCALE = 2.0", "SCALE = 3.0"))
    report = reproduce(repo)
    assert report.holds("data") and report.holds("environment")
    assert not report.holds("code") and not report.reproducible
    changed = {i for i, _, _ in report.differences("code")}
    # the transform, and by name the part of it that changed: the constant its helper reads
    assert changed == {"on-demand doubled", "on-demand doubled: SCALE"}
    hints = report.hints("code")
    assert any("features.py:doubled" in h and "version control" in h for h in hints), hints
    with FeatureStore(repo) as store:
        verified = store.verify(TD, definitions=load_definitions(repo))[0]
    assert not verified.ok
    assert any(p.startswith("code: on-demand doubled") for p in verified.problems)


def test_changed_training_code_shows_in_the_models_code(repo: Path) -> None:
    (repo / "train.py").write_text(TRAIN.replace("/ len(rows)", "/ max(len(rows), 1)"))
    report = reproduce(repo, "model/fraud/1")
    assert report.holds("data") and report.holds("environment")
    assert [i for i, _, _ in report.differences("code")] == ["model/fraud/1: training code"]
    assert "train.py:train" in report.hints("code")[0]
    # a docstring or comment edit is not a code change
    (repo / "train.py").write_text(TRAIN.replace("here: a mean", "an average") + "# note\n")
    assert reproduce(repo, "model/fraud/1").reproducible


def test_changed_environment_shows_with_the_recorded_lock(repo: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(repo, copy)
    with FeatureStore(copy) as store:
        run_id = store.training_datasets("scoring")[0].run_id
    db = sqlite3.connect(copy / ".featureledger" / "registry.db")
    (params,) = db.execute("SELECT params FROM fl_runs WHERE id = ?", (run_id,)).fetchone()
    recorded = json.loads(params)
    assert recorded["environment"]["pyarrow"] == pa.__version__
    recorded["environment"]["pyarrow"] = "0.0.1"  # as if recorded under another pyarrow
    db.execute("UPDATE fl_runs SET params = ? WHERE id = ?", (json.dumps(recorded), run_id))
    db.commit()
    db.close()
    report = reproduce(copy)
    assert report.holds("data") and report.holds("code")
    assert report.differences("environment") == [("pyarrow", "0.0.1", pa.__version__)]
    assert report.environment_lock["pyarrow"] == "0.0.1"
    assert report.hints("environment") == ["pip install pyarrow==0.0.1"]
    assert reproduce(repo).reproducible  # the original's record is untouched


def test_changed_data_shows_in_data_with_a_restore_hint(repo: Path) -> None:
    table = repo / ".featureledger" / "offline" / "stats" / "v1"
    (part,) = table.glob("*.parquet")
    rows = pq.read_table(part)
    pq.write_table(rows.set_column(2, "spend", pa.array([9.0, 9.0, 9.0])), part)
    report = reproduce(repo)
    assert report.holds("code") and report.holds("environment")
    assert [i for i, _, _ in report.differences("data")] == ["feature_group/stats@v1#1"]
    (hint,) = report.hints("data")
    assert "featureledger verify feature_group/stats@v1#1" in hint and "backup" in hint
    assert report.output_matches is not True


def test_deployment_shows_serving_code_applied_after_training(repo: Path) -> None:
    features = repo / "features.py"
    features.write_text(features.read_text().replace("SCALE = 2.0", "SCALE = 3.0"))
    with FeatureStore(repo) as store:
        store.apply(load_definitions(repo))  # the server now runs the new transform
    report = reproduce(repo, "deployment/api")
    assert "serving: on-demand doubled" in {i for i, _, _ in report.differences("code")}


def test_reproduce_command_prints_factors_hints_and_json(repo: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["reproduce", "model/fraud/1", "--json", "--repo", str(repo)])
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.output)
    assert data["R"] == 1 and set(data["factors"]) == set(FACTORS)
    assert data["covers"] == ["model/fraud/1", TD]
    assert data["environment_lock"]["pyarrow"] == pa.__version__
    features = repo / "features.py"
    features.write_text(features.read_text().replace("SCALE = 2.0", "SCALE = 3.0"))
    changed = runner.invoke(app, ["reproduce", TD, "--repo", str(repo)])
    assert changed.exit_code == 1
    assert "R = 0" in changed.output and "restore code:" in changed.output
    verify = runner.invoke(app, ["verify", TD, "--repo", str(repo)])
    assert verify.exit_code == 1 and "code: on-demand doubled" in verify.output


def test_script_as_training_code(repo: Path) -> None:
    with FeatureStore(repo) as store:
        model = store.register_model(
            "fraud", repo / "model.txt", training_dataset=TD, code=repo / "train.py"
        )
    assert reproduce(repo, str(model.identity)).reproducible
    (repo / "train.py").write_text(TRAIN + "\nEXTRA = 1\n")
    report = reproduce(repo, str(model.identity))
    assert [i for i, _, _ in report.differences("code")] == ["model/fraud/2: training code"]
