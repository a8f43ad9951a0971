"""The command line, driven as a user would: init, apply, plan, ingest, versions, read,
training-data, show, list and demo, each checked through what it prints and writes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from featureledger import FeatureStore
from featureledger.cli.main import app

runner = CliRunner()

DEFINITIONS = textwrap.dedent(
    """
    from datetime import timedelta
    from featureledger import Entity, FeatureGroup, FeatureView, Field

    user = Entity("user", join_keys=["user_id"])
    stats = FeatureGroup(
        "stats", user, features=[Field("spend", "float64"){extra}],
        created_time="created_timestamp", ttl=timedelta(days=1),
    )
    view = FeatureView("v", [stats])
    """
)
T0 = datetime(2025, 3, 1, tzinfo=UTC)


def invoke(*args: str) -> object:
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    result = invoke("init", path)
    assert result.exit_code == 0, result.output
    (path / "features.py").write_text(DEFINITIONS.format(extra=""))
    return path


def write_batch(path: Path, spend: list[float], hours: list[int]) -> Path:
    table = pa.table(
        {
            "user_id": [1] * len(spend),
            "event_timestamp": [T0 + timedelta(hours=h) for h in hours],
            "created_timestamp": [T0 + timedelta(hours=h) for h in hours],
            "spend": spend,
        }
    )
    pq.write_table(table, path)
    return path


def test_init_writes_config_with_defaults(tmp_path: Path) -> None:
    result = invoke("init", tmp_path / "r", "--project", "fraud")
    assert result.exit_code == 0
    text = (tmp_path / "r" / "featureledger.yaml").read_text()
    assert "project: fraud" in text
    assert "registry: sqlite:///.featureledger/registry.db" in text
    assert (tmp_path / "r" / ".featureledger").is_dir()


def test_commands_outside_a_repository_say_how_to_make_one(tmp_path: Path) -> None:
    result = invoke("versions", "stats", "--repo", tmp_path)
    assert result.exit_code == 1
    assert "featureledger init" in result.output


def test_plan_apply_ingest_versions_read_flow(repo: Path, tmp_path: Path) -> None:
    plan = invoke("plan", "--repo", repo)
    assert plan.exit_code == 0
    assert "feature_group/stats@v1" in plan.output and "create" in plan.output
    assert FeatureStore(repo).list_definitions("feature_group") == []  # plan changed nothing

    assert invoke("apply", "--repo", repo).exit_code == 0
    first = invoke(
        "ingest", "stats", write_batch(tmp_path / "a.parquet", [1.0, 2.0], [0, 1]), "--repo", repo
    )
    assert first.exit_code == 0, first.output
    assert "feature_group/stats@v1#1" in first.output
    same = invoke("ingest", "stats", tmp_path / "a.parquet", "--repo", repo)
    assert "no change" in same.output

    listing = invoke("versions", "stats", "--repo", repo)
    assert listing.exit_code == 0
    assert "create" in listing.output and "upsert" in listing.output
    store = FeatureStore(repo)
    assert [v.version for v in store.versions("stats")] == [0, 1]

    out = tmp_path / "v1.parquet"
    assert invoke("read", "stats", "--at", "1", "-o", out, "--repo", repo).exit_code == 0
    assert pq.read_table(out).column("spend").to_pylist() == [1.0, 2.0]


def test_breaking_change_is_refused_by_plan_and_apply(repo: Path) -> None:
    assert invoke("apply", "--repo", repo).exit_code == 0
    (repo / "features.py").write_text(
        DEFINITIONS.replace('Field("spend", "float64"){extra}', 'Field("spend", "int32")')
    )
    plan = invoke("plan", "--repo", repo)
    assert plan.exit_code == 1
    assert "refused" in plan.output
    result = invoke("apply", "--repo", repo)
    assert result.exit_code == 1
    assert "'spend'" in result.output and "version=2" in result.output


def test_additive_change_bumps_minor(repo: Path) -> None:
    invoke("apply", "--repo", repo)
    (repo / "features.py").write_text(DEFINITIONS.format(extra=', Field("n", "int64")'))
    result = invoke("apply", "--repo", repo)
    assert result.exit_code == 0
    assert "1.1.0" in result.output
    listing = invoke("list", "groups", "--repo", repo)
    assert "1.0.0" in listing.output and "1.1.0" in listing.output


def test_training_data_command_writes_parquet_and_records_pins(repo: Path, tmp_path: Path) -> None:
    invoke("apply", "--repo", repo)
    invoke("ingest", "stats", write_batch(tmp_path / "a.parquet", [1.0], [0]), "--repo", repo)
    invoke("ingest", "stats", write_batch(tmp_path / "b.parquet", [5.0], [0]), "--repo", repo)
    entities = tmp_path / "e.csv"
    entities.write_text("user_id,event_timestamp\n1,2025-03-01T02:00:00Z\n2,2025-03-01T02:00:00Z\n")
    out = tmp_path / "train.parquet"
    result = invoke("training-data", "v", entities, "-o", out, "--pin", "stats=1", "--repo", repo)
    assert result.exit_code == 0, result.output
    assert "feature_group/stats@v1#1" in result.output
    assert pq.read_table(out).column("spend").to_pylist() == [1.0, None]

    shown = invoke("show", "training_dataset/v@v1/1", "--repo", repo)
    data = json.loads(shown.output)
    assert data["pins"]["stats"]["version"] == 1
    assert data["rows"] == 2

    bad = invoke("training-data", "v", entities, "-o", out, "--pin", "stats=x", "--repo", repo)
    assert bad.exit_code == 2


def test_ingest_refusal_exits_non_zero_and_keeps_data(repo: Path, tmp_path: Path) -> None:
    invoke("apply", "--repo", repo)
    invoke("ingest", "stats", write_batch(tmp_path / "a.parquet", [1.0], [0]), "--repo", repo)
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "user_id,event_timestamp,created_timestamp,spend\n1,2025-03-01 00:00:00,"
        "2025-03-01 00:00:00,oops\n"
    )
    result = invoke("ingest", "stats", bad, "--repo", repo)
    assert result.exit_code == 1
    assert "spend" in result.output
    assert [v.version for v in FeatureStore(repo).versions("stats")] == [0, 1]


def test_show_parses_identities_and_reports_unknown_ones(repo: Path, tmp_path: Path) -> None:
    invoke("apply", "--repo", repo)
    invoke("ingest", "stats", write_batch(tmp_path / "a.parquet", [1.0], [0]), "--repo", repo)
    data = json.loads(invoke("show", "feature_group/stats@v1#1", "--repo", repo).output)
    assert data["identity"] == "feature_group/stats@v1#1"
    assert data["rows"] == 1 and data["content_hash"].startswith("flh1:")
    missing = invoke("show", "feature_group/nope", "--repo", repo)
    assert missing.exit_code == 1 and "not registered" in missing.output
    garbled = invoke("show", "not an id", "--repo", repo)
    assert garbled.exit_code == 1 and "KIND/NAME" in garbled.output


@pytest.mark.slow
def test_demo_runs_end_to_end_in_a_fresh_process(tmp_path: Path) -> None:
    target = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "featureledger.cli.main", "demo", str(target)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "breaking change refused" in proc.stdout
    assert "training_dataset/fraud@v1/1" in proc.stdout
    store = FeatureStore(target)
    ops = [v.operation for v in store.versions("user_txn_stats")]
    assert ops == ["create", "upsert", "upsert", "upsert", "upsert", "upsert", "add-columns"]
    held = store.validations("user_txn_stats", version=3)[0]
    assert held.status == "quarantined" and held.rows_quarantined > 0
    assert held.rows_published + held.rows_quarantined == held.rows_in
    assert store.quarantined("user_txn_stats").num_rows == 0  # repaired and resolved
    td = store.training_datasets("fraud")
    assert [t.rows for t in td] == [5000, 5000, 6000]  # the third: the FTI story's split
    assert td[0].pins["user_txn_stats"]["version"] == 5
    assert td[1].pins["user_txn_stats"]["version"] == 4
    assert store.models("fraud_lr")[0].training_dataset == "training_dataset/fraud@v1/1"
    assert "raw/transactions.parquet" in proc.stdout  # lineage printed back to the raw file
    # a prediction served over HTTP with a reader token; refused without one
    assert "without a token -> 401; with a reader token -> 200" in proc.stdout
    assert "fraud probability from model/fraud_lr/1" in proc.stdout
    # the drift finding and the rollback it suggested
    assert "ALERT: fraud_rate_psi" in proc.stdout
    merchant = store.versions("merchant_stats")
    assert merchant[-1].operation == "rollback"
    assert merchant[-1].content == merchant[1].content
    # ... and then resolved with the rollback as its reason: no unexplained open alert
    assert store.open_findings() == []
    assert "shows nothing open" in proc.stdout
    check_fti_story(proc.stdout, store, target)
    store.close()

    # run again in the same folder: refused, naming --fresh, and nothing touched
    before = sorted(p.name for p in target.iterdir())
    again = subprocess.run(
        [sys.executable, "-m", "featureledger.cli.main", "demo", str(target)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 1
    assert "already holds a demo repository" in again.stdout + again.stderr
    assert "--fresh" in again.stdout + again.stderr
    assert sorted(p.name for p in target.iterdir()) == before
    (target / "my-notes.txt").write_text("mine")
    (target / "reports" / "old-report.html").write_text("from the earlier run")
    fresh = subprocess.run(
        [sys.executable, "-m", "featureledger.cli.main", "demo", str(target), "--fresh"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert fresh.returncode == 0, fresh.stderr
    store = FeatureStore(target)
    assert [v.operation for v in store.versions("user_txn_stats")] == ops  # started over
    assert [t.rows for t in store.training_datasets("fraud")] == [5000, 5000, 6000]
    # the story's models and report were removed and written again
    assert [m.version for m in store.models("fraud_risk")] == [1, 2]
    assert (target / "reports" / "fraud_risk.html").exists()
    assert not (target / "reports" / "old-report.html").exists()  # reports/ is the demo's
    assert (target / "my-notes.txt").read_text() == "mine"  # only the demo's files went


def check_fti_story(stdout: str, store: FeatureStore, target: Path) -> None:
    """What a user notices of the demo's FTI story (docs/models.md)."""
    import re

    # 1. a time split with a gap: the store's choice (the longest ttl) is said, and the
    # demo's shorter gap is warned about
    assert "the longest TTL of the view's groups, 30d" in stdout
    assert "split gap 2d is shorter than the longest ttl" in stdout
    td = store.training_datasets("fraud")[-1]
    about = td.params["split"]
    assert about["gap_seconds"] == 2 * 86400 and about["unassigned"] > 0
    assert sorted(about["parts"]) == ["test", "train", "validation"]
    # 2. the first model is refused, the message naming the slice and its figures ...
    refused = next(line for line in stdout.splitlines() if line.startswith("refused: model/"))
    assert "slice:auc_gap <= 0.05" in refused
    assert re.search(r"channel=online \(0\.\d+\)", refused), refused
    # ... and the fixed model registers with its evaluation and estimator
    first, _recent = store.models("fraud_risk")
    assert first.training_dataset == str(td.identity)
    assert first.metrics["evaluation"]["slices"], first.metrics["evaluation"]
    assert f"CBPE estimator fitted on {td.identity}:test" in stdout
    # 3. 10 % canary, sticky by entity key; the shadow is logged, never returned
    current = store.current_deployment("fraud")
    assert (current.model, current.model_version) == ("fraud_risk", 1)
    assert current.config["canary"] == {"model": "fraud_risk", "version": 2, "weight": 0.1}
    assert current.config["shadow"]["model"] == "fraud_linear"
    log = store.prediction_log("fraud").to_pandas()
    answered = log[log["role"].isin(["primary", "canary"])]
    assert len(answered) == 2000
    share = (answered["role"] == "canary").mean()
    assert 0.07 <= share <= 0.13, share  # 10 % of 2,000: 5 binomial sigma is +-3.4 points
    assert set(answered[answered["role"] == "canary"]["model"]) == {"model/fraud_risk/2"}
    roles = answered.groupby(["user_id", "merchant_id"])["role"].nunique()
    assert (roles == 1).all()  # the same pair always gets the same model
    shadow = log[log["role"] == "shadow"]
    assert len(shadow) == 2000 and set(shadow["model"]) == {"model/fraud_linear/1"}
    # 4. delayed labels join to the answers the callers got (none to a shadow row)
    realized = store.realized_performance("fraud", "1d").to_pylist()
    assert sum(r["rows"] for r in realized) == 2000
    assert {r["role"] for r in realized} == {"primary", "canary"}
    assert all(0.6 < r["auc"] < 1.0 for r in realized)
    # the report: estimated and realized per chunk, and their plot
    report = target / "reports" / "fraud_risk.html"
    assert f"model report (estimated against realized, with bands): {report}" in stdout
    html = report.read_text()
    rows = re.findall(
        r"<tr><td>\[\d+:\d+\]</td>(?:<td[^>]*>[^<]*</td>){2}<td>roc_auc</td>"
        r"<td class=num>([0-9.]+)</td>(?:<td[^>]*>[^<]*</td>){2}<td class=num>([0-9.]+)</td>",
        html,
    )
    assert len(rows) >= 3, "no estimated and realized roc_auc series in the report"
    assert all(0.5 < float(e) < 1 and 0.5 < float(r) < 1 for e, r in rows)
    section = html[html.index("estimated vs realized") :]
    assert "<img" in section.split("<h2>")[0]
    # 5. nothing open (checked by the caller too), with each finding explained
    assert "FTI 5." in stdout and "open findings: 0" in stdout


def test_demo_fti_story_says_which_extra_it_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from featureledger.cli.demo_fti import run_fti_story

    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn raises ImportError
    run_fti_story(None, tmp_path, {})
    printed = capsys.readouterr().out
    assert "FTI story skipped" in printed and "featureledger[models]" in printed
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize("holds", ["a repository", "other files"])
def test_demo_never_writes_into_a_folder_it_did_not_make(tmp_path: Path, holds: str) -> None:
    target = tmp_path / "mine"
    if holds == "a repository":
        FeatureStore.init(target).close()
    else:
        target.mkdir()
        (target / "features.py").write_text("# my definitions\n")
    before = {p.name: p.stat().st_mtime_ns for p in target.iterdir()}
    for args in ([], ["--fresh"]):
        result = invoke("demo", str(target), *args)
        assert result.exit_code == 1
        assert "Give a new or empty folder" in result.output
    assert {p.name: p.stat().st_mtime_ns for p in target.iterdir()} == before


def test_versioning_commands(repo: Path, tmp_path: Path) -> None:
    invoke("apply", "--repo", repo)
    invoke(
        "ingest", "stats", write_batch(tmp_path / "a.parquet", [1.0, 2.0], [0, 1]), "--repo", repo
    )
    invoke("ingest", "stats", write_batch(tmp_path / "b.parquet", [7.0], [5]), "--repo", repo)

    d = json.loads(invoke("diff", "stats", "1", "2", "--json", "--repo", repo).output)
    assert d["rows"]["added"] == 1 and d["rows"]["removed"] == 0
    assert "changed" in invoke("diff", "stats", "1", "--repo", repo).output

    rolled = invoke("rollback", "stats", "--to", "1", "--reason", "oops", "--repo", repo)
    assert rolled.exit_code == 0 and "#3" in rolled.output
    assert FeatureStore(repo).read("stats").num_rows == 2

    assert invoke("verify", "--repo", repo).exit_code == 0
    pointer = tmp_path / "stats.fl.yaml"
    assert invoke("pin", "feature_group/stats@v1#2", "-o", pointer, "--repo", repo).exit_code == 0
    out = tmp_path / "stats.parquet"
    assert invoke("checkout", pointer, "-o", out, "--repo", repo).exit_code == 0
    assert pq.read_table(out).num_rows == 3

    assert "would delete" in invoke("vacuum", "--older-than", "0d", "--repo", repo).output
    assert invoke("vacuum", "--older-than", "soon", "--repo", repo).exit_code == 2
    log = invoke("audit", "log", "--object", "feature_group/stats", "--repo", repo)
    assert "rollback" in log.output and "ingest" in log.output
    assert invoke("audit", "verify", "--repo", repo).exit_code == 0


def test_model_and_deployment_commands(repo: Path, tmp_path: Path) -> None:
    invoke("apply", "--repo", repo)
    weights = tmp_path / "m.bin"
    weights.write_text("w")
    ok = invoke(
        "model",
        "register",
        "fraud",
        weights,
        "--metric",
        "auc=0.9",
        "--metric",
        "auc=0.92",
        "--gate",
        "auc>=0.85",
        "--repo",
        repo,
    )
    assert ok.exit_code == 0, ok.output
    assert "model/fraud/1" in ok.output
    refused = invoke(
        "model",
        "register",
        "fraud",
        weights,
        "--metric",
        "auc=0.7",
        "--gate",
        "auc>=0.85",
        "--repo",
        repo,
    )
    assert refused.exit_code == 1 and "gate" in refused.output
    assert (
        invoke("model", "register", "fraud", weights, "--metric", "auc", "--repo", repo).exit_code
        == 2
    )
    invoke("model", "register", "fraud", weights, "--repo", repo)
    assert "model/fraud/2" in invoke("model", "list", "--repo", repo).output
    assert invoke("deploy", "api", "fraud", "--version", "1", "--repo", repo).exit_code == 0
    assert invoke("deploy", "api", "fraud", "--repo", repo).exit_code == 0
    back = invoke("deployment", "rollback", "api", "--repo", repo)
    assert "model/fraud/1" in back.output
    assert (
        invoke("deployment", "history", "api", "--repo", repo).output.count("deployment/api") == 3
    )


def test_run_and_reproduce_commands(tmp_path: Path) -> None:
    repo = tmp_path / "p"
    invoke("init", repo)
    (repo / "raw").mkdir()
    pq.write_table(
        pa.table(
            {"user_id": [1, 1, 2], "event_timestamp": [T0, T0, T0], "amount": [1.0, 2.0, 5.0]}
        ),
        repo / "raw" / "t.parquet",
    )
    (repo / "features.py").write_text(
        textwrap.dedent(
            """
        from featureledger import Entity, FeatureGroup, Field
        from featureledger.definitions import FileSource, SQLTransform

        user = Entity("user", join_keys=["user_id"])
        spend = FeatureGroup(
            "spend", user, features=[Field("total", "float64")],
            source=FileSource("raw/t.parquet"),
            transform=SQLTransform(
                "SELECT user_id, max(event_timestamp) AS event_timestamp, sum(amount) AS total "
                "FROM source GROUP BY user_id"
            ),
        )
        """
        )
    )
    assert invoke("apply", "--repo", repo).exit_code == 0
    ran = invoke("run", "spend", "--start", "2025-03-01", "--end", "2025-03-02", "--repo", repo)
    assert ran.exit_code == 0, ran.output
    assert "feature_group/spend@v1#1" in ran.output
    totals = FeatureStore(repo).read("spend").sort_by("user_id").column("total").to_pylist()
    assert totals == [3.0, 5.0]
    rep = invoke("reproduce", "feature_group/spend@v1#1", "--repo", repo)
    assert rep.exit_code == 0, rep.output
    assert "R = 1" in rep.output and "identical" in rep.output
    pq.write_table(
        pa.table({"user_id": [1], "event_timestamp": [T0], "amount": [9.0]}),
        repo / "raw" / "t.parquet",
    )
    changed = invoke("reproduce", "feature_group/spend@v1#1", "--repo", repo)
    assert changed.exit_code == 1 and "R = 0" in changed.output


def test_contract_commands(tmp_path: Path) -> None:
    from featureledger.contracts import Contract, Range, contract_to_yaml

    repo = tmp_path / "c"
    invoke("init", repo)
    (repo / "features.py").write_text(
        textwrap.dedent(
            """
        from featureledger import Entity, FeatureGroup, Field
        user = Entity("user", join_keys=["user_id"])
        g = FeatureGroup("g", user, features=[Field("amount", "float64")], policy="quarantine")
        """
        )
    )
    (repo / "contracts").mkdir()
    contract = Contract("g", rules=[Range("amount", min=0.0)])
    (repo / "contracts" / "g.yaml").write_text(contract_to_yaml(contract))
    assert invoke("apply", "--repo", repo).exit_code == 0
    data = tmp_path / "d.parquet"
    pq.write_table(
        pa.table({"user_id": [1, 2], "event_timestamp": [T0, T0], "amount": [3.0, -1.0]}), data
    )
    assert invoke("ingest", "g", data, "--repo", repo).exit_code == 0
    shown = invoke("validation", "g", "--repo", repo)
    assert "quarantined" in shown.output
    fixed = tmp_path / "fixed.parquet"
    assert invoke("quarantine", "list", "g", "-o", fixed, "--repo", repo).exit_code == 0
    assert pq.read_table(fixed).column_names == ["user_id", "event_timestamp", "amount"]
    assert invoke("quarantine", "resolve", "g", "--repo", repo).exit_code == 0
    assert invoke("contract", "test", "--repo", repo).exit_code == 0

    odcs = tmp_path / "g.odcs.yaml"
    assert invoke("contract", "export", "g", "-o", odcs, "--repo", repo).exit_code == 0
    assert "apiVersion" in odcs.read_text()
    back = tmp_path / "g.back.yaml"
    assert invoke("contract", "import", odcs, "-o", back).exit_code == 0
    tighter = tmp_path / "tight.yaml"
    tighter.write_text(contract_to_yaml(Contract("g", rules=[Range("amount", min=1.0)])))
    diff = invoke("contract", "diff", back, tighter)
    assert diff.exit_code == 1 and "major" in diff.output
    assert invoke("contract", "diff", back, back).exit_code == 0


def test_stats_drift_and_report_commands(repo: Path, tmp_path: Path) -> None:
    invoke("apply", "--repo", repo)
    invoke(
        "ingest",
        "stats",
        write_batch(tmp_path / "a.parquet", [1.0, 2.0, 3.0], [0, 1, 2]),
        "--repo",
        repo,
    )
    invoke(
        "ingest",
        "stats",
        write_batch(tmp_path / "b.parquet", [50.0, 60.0, 70.0], [0, 1, 2]),
        "--mode",
        "overwrite",
        "--repo",
        repo,
    )
    shown = invoke("stats", "feature_group/stats@v1#1", "--repo", repo)
    assert shown.exit_code == 0 and "spend" in shown.output
    data = json.loads(invoke("stats", "feature_group/stats@v1#1", "--json", "--repo", repo).output)
    assert data["columns"]["spend"]["count"] == 3
    moved = invoke("drift", "feature_group/stats@v1#1", "feature_group/stats@v1#2", "--repo", repo)
    assert moved.exit_code == 1 and "alert" in moved.output
    same = invoke("drift", "feature_group/stats@v1#1", "feature_group/stats@v1#1", "--repo", repo)
    assert same.exit_code == 0
    picked = invoke(
        "drift",
        "feature_group/stats@v1#1",
        "feature_group/stats@v1#2",
        "--features",
        "spend",
        "--json",
        "--repo",
        repo,
    )
    assert list(json.loads(picked.output)["features"]) == ["spend"]
    out = tmp_path / "r.html"
    assert (
        invoke(
            "report",
            "feature_group/stats@v1#1",
            "feature_group/stats@v1#2",
            "-o",
            out,
            "--repo",
            repo,
        ).exit_code
        == 0
    )
    assert out.read_text().count("data:image/png;base64,") >= 1


def test_materialize_and_get_online_commands(tmp_path: Path) -> None:
    repo = tmp_path / "o"
    invoke("init", repo)
    (repo / "features.py").write_text(
        textwrap.dedent(
            """
        from featureledger import Entity, FeatureGroup, FeatureView, Field
        user = Entity("user", join_keys=["user_id"])
        g = FeatureGroup("g", user, features=[Field("x", "float64")], online=True)
        v = FeatureView("v", [g])
        """
        )
    )
    invoke("apply", "--repo", repo)
    data = tmp_path / "g.parquet"
    pq.write_table(
        pa.table({"user_id": [1, 2], "event_timestamp": [T0, T0], "x": [1.5, 2.5]}), data
    )
    invoke("ingest", "g", data, "--repo", repo)
    done = invoke("materialize", "--repo", repo)
    assert done.exit_code == 0 and "full" in done.output
    got = invoke("get-online", "v", '[{"user_id": 2}, {"user_id": 7}]', "--repo", repo)
    assert got.exit_code == 0, got.output
    assert [r["x"] for r in json.loads(got.output)] == [2.5, None]
    assert invoke("get-online", "v", "{not json", "--repo", repo).exit_code == 2
    pq.write_table(
        pa.table({"user_id": [2], "event_timestamp": [T0 + timedelta(hours=1)], "x": [9.5]}),
        data,
    )
    invoke("ingest", "g", data, "--mode", "upsert", "--repo", repo)
    before = invoke("materialize", "--full", "--end", T0.isoformat(), "--repo", repo)
    assert before.exit_code == 0 and "window-rebuild" in before.output, before.output
    got = invoke("get-online", "v", '[{"user_id": 2}]', "--repo", repo)
    assert json.loads(got.output)[0]["x"] == 2.5  # as of T0: the upsert is later
    caught_up = invoke("materialize-incremental", "--repo", repo)
    assert caught_up.exit_code == 0 and "full" in caught_up.output, caught_up.output
    got = invoke("get-online", "v", '[{"user_id": 2}]', "--repo", repo)
    assert json.loads(got.output)[0]["x"] == 9.5


def test_monitor_commands(repo: Path, tmp_path: Path) -> None:
    from featureledger.monitoring import Monitor, monitors_to_yaml

    invoke("apply", "--repo", repo)
    invoke(
        "ingest",
        "stats",
        write_batch(tmp_path / "a.parquet", [1.0, 2.0, 3.0, 4.0] * 50, list(range(200))),
        "--repo",
        repo,
    )
    invoke(
        "ingest",
        "stats",
        write_batch(tmp_path / "b.parquet", [90.0, 95.0, 99.0, 97.0] * 50, list(range(200))),
        "--mode",
        "overwrite",
        "--repo",
        repo,
    )
    (repo / "monitors.yaml").write_text(
        monitors_to_yaml([Monitor("spend_psi", "feature_group/stats", "psi", action="block")])
    )
    ran = invoke("monitor", "run", "--repo", repo)
    assert ran.exit_code == 1 and "alert" in ran.output
    assert "spend_psi" in invoke("monitor", "list", "--repo", repo).output
    resolved = invoke("monitor", "resolve", "spend_psi", "--reason", "expected", "--repo", repo)
    assert resolved.exit_code == 0
    assert "spend_psi" not in invoke("monitor", "list", "--repo", repo).output


def test_ingest_counts_rows_in_the_words_diff_uses(repo: Path, tmp_path: Path) -> None:
    invoke("apply", "--repo", repo)
    invoke(
        "ingest", "stats", write_batch(tmp_path / "a.parquet", [1.0, 2.0], [0, 1]), "--repo", repo
    )
    # hour 0 unchanged, hour 1 changed, hour 2 new
    second = invoke(
        "ingest",
        "stats",
        write_batch(tmp_path / "b.parquet", [1.0, 5.0, 7.0], [0, 1, 2]),
        "--repo",
        repo,
    )
    assert second.exit_code == 0, second.output
    assert "1 rows added, 1 changed, 3 in all" in second.output
    d = json.loads(invoke("diff", "stats", "1", "2", "--json", "--repo", repo).output)
    assert (d["rows"]["added"], d["rows"]["changed"], d["rows"]["removed"]) == (1, 1, 0)
    replaced = invoke(
        "ingest",
        "stats",
        write_batch(tmp_path / "c.parquet", [3.0], [9]),
        "--mode",
        "overwrite",
        "--repo",
        repo,
    )
    assert "table replaced: 3 rows removed, 1 written, 1 in all" in replaced.output


def test_monitor_run_without_monitors_says_where_to_declare_them(repo: Path) -> None:
    result = invoke("monitor", "run", "--repo", repo)
    assert result.exit_code == 1
    assert "no monitors declared" in result.output
    assert str(repo.resolve() / "monitors.yaml") in result.output.replace("\n", "")


def test_every_boolean_option_is_a_flag() -> None:
    import typer

    # Typer's own copy of Click, so duck-typed: a group has commands, an option has opts
    def commands(cmd: Any, path: str) -> list[tuple[str, Any]]:
        if hasattr(cmd, "commands"):
            return [x for n, sub in cmd.commands.items() for x in commands(sub, f"{path} {n}")]
        return [(path, cmd)]

    found = commands(typer.main.get_command(app), "featureledger")
    assert len(found) > 40
    valued = [
        f"{path} {'/'.join(p.opts)}"
        for path, cmd in found
        for p in cmd.params
        if p.param_type_name == "option" and p.type.name == "boolean" and not p.is_flag
    ]
    assert valued == []
    # and what help shows: `diff ... --json`, never `--json <bool>`
    shown = invoke("diff", "--help").output
    assert "--json" in shown and "<bool>" not in shown and "BOOLEAN" not in shown
