"""`featureledger demo`: the whole flow on the embedded default, narrated."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from featureledger.cli import console as out
from featureledger.cli.data import change_summary
from featureledger.demo import data as demo_data
from featureledger.errors import BreakingChangeError, FeatureLedgerError


class DemoFolderError(FeatureLedgerError):
    """The demo's folder holds something the demo must not overwrite."""


def _versions(store: object, group: str) -> None:
    from featureledger.cli.data import _versions_rows

    records = store.versions(group)  # type: ignore[attr-defined]
    out.table(
        f"featureledger versions {group}",
        ["#", "committed (UTC)", "operation", "rows", "+", "-", "content hash", "run", "note"],
        _versions_rows(records),
    )


#: what the demo writes in its folder; `--fresh` removes these and nothing else
DEMO_FILES = (
    ".featureledger",
    "featureledger.yaml",
    "features.py",
    "raw",
    "training",
    "fraud_model.json",
    "models",
    "reports",
)
#: written last by `init` in the demo's folder, so `--fresh` knows the folder is the demo's
MARKER = Path(".featureledger") / "demo"


def prepare(repo: Path, *, fresh: bool) -> None:
    """Make ``repo`` ready for a demo run: refuse a folder holding anything but an earlier
    demo; with ``fresh``, remove an earlier demo's files (and only those)."""
    import shutil

    if not repo.exists() or not any(repo.iterdir()):
        return
    if (repo / MARKER).exists():
        if not fresh:
            raise DemoFolderError(
                f"{repo} already holds a demo repository; run `featureledger demo {repo} "
                "--fresh` to start it over (removes the demo's files there and nothing "
                "else), or give a new folder"
            )
        for name in DEMO_FILES:
            target = repo / name
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
        return
    if (repo / "featureledger.yaml").exists():
        raise DemoFolderError(
            f"{repo} holds a featureledger repository that is not a demo; the demo never "
            "writes into it. Give a new or empty folder."
        )
    raise DemoFolderError(
        f"{repo} is not empty; the demo writes features.py, raw/ and a repository there. "
        "Give a new or empty folder."
    )


def run_demo(path: Path | None = None, *, fresh: bool = False) -> Path:
    """Create a demo repository at ``path`` (or a temporary folder) and walk through it.

    A folder holding an earlier demo is refused unless ``fresh`` (then the earlier demo's
    files are removed first); any other non-empty folder is refused.
    """
    from featureledger.repo import load_definitions
    from featureledger.store import FeatureStore

    repo = Path(path) if path else Path(tempfile.mkdtemp(prefix="featureledger-demo-"))
    prepare(repo, fresh=fresh)
    out.console.rule("[bold]featureledger demo: card-fraud features on the embedded default")
    out.info(
        f"repository: {repo}  (DuckDB + Delta Lake on local disk + SQLite registry; "
        "no server to run)"
    )

    out.step("featureledger init: featureledger.yaml and .featureledger/")
    store = FeatureStore.init(repo)
    (repo / MARKER).write_text(
        "written by `featureledger demo`; `--fresh` may remove this repository\n"
    )
    source = Path(__file__).resolve().parent.parent / "demo" / "definitions.py"
    (repo / "features.py").write_text(source.read_text())
    out.ok(
        "wrote features.py with entities user and merchant, three feature groups and the "
        "view 'fraud'"
    )

    from featureledger.demo import definitions as d

    out.step("featureledger apply: register the definitions (semantic versions)")
    plan = store.apply(load_definitions(repo))
    out.table(
        None,
        ["identity", "action", "version"],
        [[i.identity, i.action, i.after] for i in plan.items],
    )

    tables = demo_data.generate()
    raw = repo / "raw"
    raw.mkdir(exist_ok=True)
    for name, tbl in tables.items():
        pq.write_table(tbl, raw / f"{name}.parquet")
    out.step("featureledger ingest: each write is one atomic Delta commit = one data version")
    stats = tables["user_txn_stats"]
    cut = stats.column("event_timestamp").to_pylist()[0].replace(day=21)
    import pyarrow.compute as pc

    early = stats.filter(pc.less(stats.column("event_timestamp"), cut))
    late = stats.filter(pc.greater_equal(stats.column("event_timestamp"), cut))
    for group, batch in (
        ("user_profile", tables["user_profile"]),
        ("merchant_stats", tables["merchant_stats"]),
        ("user_txn_stats", early),
        ("user_txn_stats", late),
    ):
        rec = store.ingest(group, batch, note="daily load")
        out.ok(f"{rec.identity}  {change_summary(rec, 'upsert')}  {rec.content}")

    out.step("a bad batch: an upstream bug emits negative amounts; the contract quarantines them")
    bad = demo_data.bad_batch(stats)
    rec_bad = store.ingest("user_txn_stats", bad, note="hourly load")
    report = store.validations("user_txn_stats")[-1]
    failed = [r["name"] for r in report.report["results"] if r["status"] == "failed"]
    out.info(
        f"{report.rows_in} rows in: {report.rows_published} published as "
        f"{rec_bad.identity}, {report.rows_quarantined} held in quarantine "
        f"(failed: {', '.join(failed)})"
    )
    held = store.quarantined("user_txn_stats")
    fixed = held.drop_columns(["__fl_failed_rules", "__fl_run", "__fl_quarantined_at"])
    col = fixed.schema.get_field_index("txn_amount_24h")
    fixed = fixed.set_column(col, "txn_amount_24h", pc.abs(fixed.column("txn_amount_24h")))
    rec_fix = store.ingest("user_txn_stats", fixed, note="repaired quarantined rows")
    store.resolve_quarantine("user_txn_stats", run=report.run_id, reason="sign fixed upstream")
    out.ok(
        f"repaired rows re-ingested as {rec_fix.identity}; quarantine resolved "
        f"({store.quarantined('user_txn_stats').num_rows} rows left); nothing was lost"
    )

    out.step("featureledger run merchant_daily: a feature pipeline over the raw transaction log")
    from datetime import timedelta

    start = demo_data.START
    result = store.run_pipeline(d.merchant_daily, start=start, end=start + timedelta(days=31))
    out.ok(
        f"{result.version.identity}: {result.rows:,} rows from {result.inputs[0]} "
        f"(run/{result.run_id[:8]}…: code, environment and input hashes recorded)"
    )

    out.step("late corrections: same key and event time, later created_time -> upsert replaces")
    fixes = demo_data.corrections(stats)
    rec = store.ingest("user_txn_stats", fixes, note="restated aggregates")
    out.ok(f"{rec.identity}  {change_summary(rec, 'upsert')}")
    again = store.ingest("user_txn_stats", fixes)
    out.ok(f"re-ingesting the same corrections creates no version: still {again.identity}")
    _versions(store, "user_txn_stats")

    out.step("featureledger training-data fraud transactions.parquet: point-in-time join")
    entities = tables["transactions"]
    train = store.training_data("fraud", entities, output=repo / "training" / "fraud.parquet")
    rec_td = train.record
    out.arrow(
        train.to_arrow().select(
            [
                "transaction_id",
                "user_id",
                "merchant_id",
                "event_timestamp",
                "is_fraud",
                "txn_amount_24h",
                "fraud_rate_30d",
                "credit_limit",
            ]
        ),
        title=str(rec_td.identity),
        limit=6,
    )
    out.table(
        "pinned inputs",
        ["group", "data version", "content hash"],
        [[g, p["identity"], p["content"]] for g, p in rec_td.pins.items()],
    )
    nulls = train.to_arrow().column("txn_amount_24h").null_count
    out.info(
        f"{rec_td.rows:,} rows, one per transaction, in the frame's order; {nulls:,} have "
        "no user stats within the 2-day TTL (NULL, never a value from the future)"
    )
    out.info(f"entity frame {rec_td.entity_hash}; result {rec_td.content}")

    out.step("time travel: the same join pinned to the data before the corrections")
    before = rec.version - 1
    old = store.training_data("fraud", entities, versions={"user_txn_stats": before})
    new_vals = train.to_arrow().column("txn_amount_24h")
    changed = pc.sum(
        pc.fill_null(pc.not_equal(old.to_arrow().column("txn_amount_24h"), new_vals), False)
    ).as_py()
    out.ok(
        f"{old.identity} reads user_txn_stats#{before}: {changed:,} feature values differ "
        "from the corrected set; both are reproducible from their pins"
    )

    out.step("a breaking change is refused; an additive one bumps the minor version")
    shrunk = dataclasses.replace(d.user_txn_stats, features=d.user_txn_stats.feature_fields[:-1])
    try:
        store.apply([shrunk])
    except BreakingChangeError as exc:
        out.info(f"refused: {exc}")
    from featureledger.definitions import Field

    grown = dataclasses.replace(
        d.user_txn_stats,
        features=[*d.user_txn_stats.feature_fields, Field("max_amount_24h", "float64")],
    )
    plan = store.apply([grown])
    item = next(i for i in plan.items if i.identity.startswith("feature_group"))
    out.ok(
        f"{item.identity}: {item.before} -> {item.after} ({'; '.join(item.reasons)}); the "
        "content hash is unchanged because the new column is null for stored rows"
    )
    _versions(store, "user_txn_stats")

    out.step("train, register with a release gate, deploy")
    from featureledger.contracts.gates import MetricGate
    from featureledger.demo.model import train as train_model

    metrics = train_model(train.to_arrow(), repo / "fraud_model.json")
    model = store.register_model(
        "fraud_lr",
        repo / "fraud_model.json",
        training_dataset=train,
        metrics=metrics,
        gates=[MetricGate("auc", min=0.55)],
        code=train_model,
    )
    summary = model.metrics["summary"]["auc"]
    out.ok(
        f"{model.identity}: AUC {summary['mean']:.3f} ± {summary['std_error']:.3f} over "
        f"{summary['n']} folds passed the gate auc >= 0.55; trained on "
        f"{model.training_dataset}"
    )
    deployment = store.deploy("fraud", "fraud_lr", reason="first release")
    out.ok(f"{deployment.identity} -> {deployment.model_identity}")

    out.step("featureledger reproduce deployment/fraud: R = data x code x environment")
    repro = store.reproduce("deployment/fraud", definitions=load_definitions(repo))
    out.info("covers " + " <- ".join(repro.covers))
    for factor in ("data", "code", "environment"):
        items = repro.factors[factor]
        out.info(f"  {factor}: {int(repro.holds(factor))} ({len(items)} hashes compared)")
    out.ok(
        f"R = {int(repro.reproducible)}; the training set rebuilt from its pins hashes "
        f"{repro.output_actual} ({'identical' if repro.output_matches else 'DIFFERENT'})"
    )

    _serve_a_prediction(store, repo, tables["transactions"])

    out.step("featureledger lineage deployment/fraud: from the served model back to the raw data")
    out.console.print(
        store.lineage("deployment/fraud", include_runs=False),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )

    out.step("a monitor catches drift: a bad upstream deploy quadruples merchant fraud rates")
    from featureledger.monitoring import Monitor

    merchants = tables["merchant_stats"]
    col = merchants.schema.get_field_index("fraud_rate_30d")
    skewed = merchants.set_column(
        col, "fraud_rate_30d", pc.multiply(merchants.column("fraud_rate_30d"), 4.0)
    )
    bad = store.ingest("merchant_stats", skewed, mode="overwrite", note="upstream deploy 4711")
    monitor = Monitor(
        "fraud_rate_psi",
        "feature_group/merchant_stats",
        "psi",
        features=("fraud_rate_30d",),
        action="suggest_rollback",
    )
    finding = store.run_monitors([monitor])[0]
    out.info(f"{finding.status.upper()}: {finding.message}")
    if finding.rollback_to:
        target = int(finding.rollback_to.rsplit("#", 1)[1])
        back = store.rollback(
            "merchant_stats", to=target, reason=f"drift finding on {bad.identity}"
        )
        out.ok(f"rolled back: {back.identity} has the content of #{target} ({back.content})")
        resolved = store.resolve_monitor(
            monitor.name, reason=f"rolled back {bad.identity} to #{target} ({back.identity})"
        )
        out.ok(
            f"finding resolved ({resolved} open finding(s) closed, reason in the audit log): "
            "`featureledger monitor list` shows nothing open"
        )

    from featureledger.cli.demo_fti import run_fti_story

    run_fti_story(store, repo, tables)

    out.console.rule("[bold]done")
    out.info(
        f"Explore it: featureledger versions user_txn_stats -r {repo}\n"
        f"            featureledger show {rec_td.identity} -r {repo}"
    )
    return repo


def _serve_a_prediction(store: Any, repo: Path, transactions: Any) -> None:
    """Materialize, start the HTTP feature server with a token, score one transaction."""
    import pyarrow.compute as pc

    out.step("featureledger materialize + serve: a prediction over HTTP, features as in training")
    done = store.materialize()
    out.ok("materialized " + ", ".join(f"{m.group} #{m.version} ({m.rows:,} rows)" for m in done))
    try:
        import threading
        import time

        import httpx
        import uvicorn

        from featureledger.server import create_app
    except ImportError as exc:
        out.info(
            f"skipped: the server needs its extra packages ({exc}); "
            "pip install 'featureledger[server]'"
        )
        return
    import socket

    from featureledger.demo.model import predict

    token = store.create_token("reader", views=["fraud"])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(store), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        txn = transactions.slice(transactions.num_rows - 1, 1).to_pylist()[0]
        # the stored data is from January 2025 and long past its TTLs: a streaming job
        # pushes this user's and merchant's current aggregates, as it would in production
        from datetime import UTC, datetime

        now = datetime.now(UTC)
        for group, key, value in (
            ("user_txn_stats", "user_id", txn["user_id"]),
            ("merchant_stats", "merchant_id", txn["merchant_id"]),
            ("merchant_daily", "merchant_id", txn["merchant_id"]),
        ):
            latest = store.read(group)
            mine = (
                latest.filter(pc.equal(latest.column(key), value))
                .sort_by([("event_timestamp", "descending")])
                .slice(0, 1)
                .to_pylist()
            )
            if mine:
                mine[0]["event_timestamp"] = now
                mine[0].pop("created_timestamp", None)
                store.push(group, mine, to="online")
        out.ok(
            f"pushed current aggregates of user {txn['user_id']} and merchant "
            f"{txn['merchant_id']} to the online store"
        )
        entity = {
            "user_id": txn["user_id"],
            "merchant_id": txn["merchant_id"],
            "amount": txn["amount"],
        }
        denied = httpx.post(f"{base}/features/fraud", json={"entities": [entity]}, timeout=10)
        reply = httpx.post(
            f"{base}/features/fraud",
            json={"entities": [entity]},
            timeout=10,
            headers={"Authorization": f"Bearer {token}"},
        )
        reply.raise_for_status()
        row = reply.json()["features"][0]
        score = predict(repo / "fraud_model.json", [row])[0]
        out.ok(
            f"POST /features/fraud without a token -> {denied.status_code}; with a reader "
            f"token -> {reply.status_code}"
        )
        shown = {
            k: row[k]
            for k in (
                "user_id",
                "merchant_id",
                "amount",
                "txn_amount_24h",
                "fraud_rate_30d",
                "credit_limit",
            )
        }
        out.info(f"served features {shown}")
        out.ok(f"fraud probability from model/fraud_lr/1: {score:.3f}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
