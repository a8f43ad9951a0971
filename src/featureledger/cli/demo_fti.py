"""The demo's FTI story: split, gated training, canary and shadow, delayed labels, CBPE.

Called by `featureledger.cli.demo.run_demo` after its feature-store steps; it needs
scikit-learn (the ``models`` extra) and says so, then skips, when that is missing.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureledger.cli import console as out
from featureledger.demo import data as demo_data

#: the columns the first model reads; the fixed model adds the request's ``amount``
FIRST_FEATURES = ["fraud_rate_30d", "credit_limit"]
FIXED_FEATURES = [*FIRST_FEATURES, "amount"]
#: the slice gate every candidate must pass, and the overall floor
GATES = ("auc>=0.6", "slice:auc_gap<=0.05")
#: the served stream: entities in batches, labels arriving in two deliveries
STREAM_ROWS = 2_000
BATCH = 250
CHUNK = 450


def run_fti_story(store: Any, repo: Path, tables: dict[str, pa.Table]) -> None:
    """Steps 1-5 of the FTI story (docs/models.md, "The demo's FTI story")."""
    try:
        import joblib  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError:
        out.info(
            "FTI story skipped: it trains scikit-learn models; pip install 'featureledger[models]'"
        )
        return
    td = _split(store, tables)
    model = _gated_training(store, repo, td)
    answers, stream = _deploy_and_serve(store, repo, td, tables, model)
    _labels_and_report(store, repo, answers, stream)


def _split(store: Any, tables: dict[str, pa.Table]) -> Any:
    from datetime import timedelta

    from featureledger.definitions.split import Split
    from featureledger.errors import SplitGapWarning

    out.step("FTI 1. a training set with a time split: train / validation / test with a gap")
    frame = demo_data.fti_transactions(tables)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        td = store.training_data(
            "fraud",
            frame,
            split=Split.time(0.6, 0.2, 0.2, gap=timedelta(days=2)),
            label="is_fraud",
            helpers=["channel"],
        )
    about = td.record.params["split"]
    longest = timedelta(seconds=about["min_gap_seconds"])
    out.info(
        f"the store's default gap is the longest TTL of the view's groups, {longest.days}d "
        "(merchant_stats): a feature row may be read up to its TTL after its event time, so "
        "a shorter gap lets one row feed both training and test"
    )
    for w in caught:
        if isinstance(w.message, SplitGapWarning):
            out.info(f"warned: {w.message}")
        else:  # not about the split: shown as the store shows it anywhere else
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    out.info(
        "over one month of data a 30-day gap leaves nothing to test on, so this demo chose "
        "gap=2d (the TTL of the user and daily merchant aggregates) and accepts the warning: "
        "the 30-day merchant fraud rate moves slowly and is the same signal in both parts"
    )
    parts = {p: td.part(p) for p in td.parts}
    out.table(
        str(td.identity),
        ["part", "identity", "rows", "content hash"],
        [[p, str(part.identity), len(part), part.content] for p, part in parts.items()],
    )
    out.info(
        f"{about['unassigned']:,} rows fall in the gaps and belong to no part; label "
        "is_fraud, helper column channel (kept for slicing, never fed to the model)"
    )
    return td


def _xy(part: Any, features: list[str]) -> tuple[Any, np.ndarray, pa.Table]:
    rows = part.to_arrow()
    x = rows.select(features).to_pandas()
    y = rows.column("is_fraud").to_numpy(zero_copy_only=False).astype(int)
    return x, y, rows


def _fit(x: Any, y: np.ndarray) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier

    # not HistGradientBoosting: its OpenMP threads spin-wait on a loaded machine, which
    # made each served batch take seconds (measured: 15 s of a 43 s demo under load 10)
    return GradientBoostingClassifier(max_depth=3, n_estimators=60, random_state=0).fit(x, y)


def _proba(model: Any, x: Any) -> np.ndarray:
    return np.asarray(model.predict_proba(x))[:, 1]


def _gated_training(store: Any, repo: Path, td: Any) -> Any:
    import joblib

    from featureledger.contracts.gates import parse_gate
    from featureledger.errors import GateError

    out.step("FTI 2. train, evaluate per channel, and gate on the slices")
    gates = [parse_gate(g) for g in GATES]
    folder = repo / "models"
    folder.mkdir(exist_ok=True)
    first = _fit(*_xy(td.part("train"), FIRST_FEATURES)[:2])
    x_test, _, _ = _xy(td.part("test"), FIRST_FEATURES)
    ev = store.evaluate({"probability": _proba(first, x_test)}, td, slices=["channel"])
    path = folder / "fraud_risk_first.joblib"
    joblib.dump(first, path)
    try:
        store.register_model("fraud_risk", path, training_dataset=td, evaluation=ev, gates=gates)
        out.info("the first model passed its gates (unexpected for this data)")
    except GateError as exc:
        out.info(f"refused: {exc}")
    out.info(
        "why: online fraud follows the amount against the credit limit, and the first model "
        "never sees the amount (it reads merchant fraud rate and credit limit only)"
    )

    fixed = _fit(*_xy(td.part("train"), FIXED_FEATURES)[:2])
    x_test, _, test_rows = _xy(td.part("test"), FIXED_FEATURES)
    score = _proba(fixed, x_test)
    ev = store.evaluate({"probability": score}, td, slices=["channel"])
    path = folder / "fraud_risk.joblib"
    joblib.dump(fixed, path)
    reference = test_rows.select(FIXED_FEATURES).append_column(
        "score", pa.array(score, pa.float64())
    )
    reference = reference.append_column(
        "prediction", pa.array((score >= 0.5).astype(float), pa.float64())
    ).append_column("label", pc.cast(test_rows.column("is_fraud"), pa.float64()))
    model = store.register_model(
        "fraud_risk",
        path,
        training_dataset=td,
        evaluation=ev,
        gates=gates,
        code=_fit,
        estimator_reference=reference,
        estimator_options={"features": FIXED_FEATURES, "chunk_size": CHUNK},
    )
    slices = ", ".join(f"{k} {v:.3f}" for k, v in ev.slice_metric("auc").items() if v)
    out.ok(
        f"fixed by giving the model the request's amount: {model.identity} registered "
        f"(test AUC {ev.metrics['auc']:.3f}; per slice {slices}; gates "
        f"{', '.join(GATES)} passed), with its evaluation and a CBPE estimator fitted on "
        f"{td.part('test').identity}"
    )
    return model


def _deploy_and_serve(
    store: Any, repo: Path, td: Any, tables: dict[str, pa.Table], model: Any
) -> tuple[list[dict[str, Any]], pa.Table]:
    import joblib
    from sklearn.linear_model import LogisticRegression

    out.step("FTI 3. deploy: the fixed model, a 10 % canary and a shadow challenger")
    # the canary: the same recipe on train + validation (more recent data)
    both = pa.concat_tables([td.part("train").to_arrow(), td.part("validation").to_arrow()])
    canary = _fit(
        both.select(FIXED_FEATURES).to_pandas(),
        both.column("is_fraud").to_numpy(zero_copy_only=False).astype(int),
    )
    joblib.dump(canary, repo / "models" / "fraud_risk_recent.joblib")
    recent = store.register_model(
        "fraud_risk", repo / "models" / "fraud_risk_recent.joblib", training_dataset=td
    )
    # the shadow challenger: a simpler, linear model on the same inputs
    x, y, _ = _xy(td.part("train"), FIXED_FEATURES)
    linear = LogisticRegression(max_iter=500).fit(x, y)
    joblib.dump(linear, repo / "models" / "fraud_linear.joblib")
    store.register_model(
        "fraud_linear", repo / "models" / "fraud_linear.joblib", training_dataset=td
    )
    store.deploy("fraud", "fraud_risk", model.version, reason="gated fraud_risk replaces fraud_lr")
    store.canary("fraud", "fraud_risk", recent.version, weight=0.1, reason="trained on more data")
    store.shadow("fraud", "fraud_linear", reason="challenger: is a linear model enough?")

    # the streaming job pushes every user's and merchant's current aggregates
    now = datetime.now(UTC)
    for group, key in (("merchant_stats", "merchant_id"), ("user_txn_stats", "user_id")):
        latest = store.read(group).sort_by([(key, "ascending"), ("event_timestamp", "descending")])
        keys = latest.column(key).to_numpy()
        first = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        rows = latest.take(pa.array(first)).to_pylist()
        for row in rows:
            row["event_timestamp"] = now
            row.pop("created_timestamp", None)
        store.push(group, rows, to="online")
    stream = demo_data.fti_transactions(
        tables,
        transactions=STREAM_ROWS,
        seed=17,
        first_id=200_001,
        online_share=(0.2, 0.6),
        hours=None,
    )
    answers: list[dict[str, Any]] = []
    for start in range(0, stream.num_rows, BATCH):
        batch = stream.slice(start, BATCH)
        entities = batch.select(["user_id", "merchant_id"]).to_pylist()
        answers += store.predict("fraud", entities, batch.select(["amount"]).to_pylist())
    store.flush_predictions()
    status = store.deployment_status("fraud")
    roles = [a["role"] for a in answers]
    share = roles.count("canary") / len(roles)
    out.table(
        "featureledger deployment status fraud",
        ["role", "traffic", "served (model: predictions)"],
        [
            [
                role,
                f"{status['traffic'].get(role, 0):.0%}" if role in status["traffic"] else "-",
                ", ".join(f"{m}: {n}" for m, n in served.items()),
            ]
            for role, served in status["served"].items()
        ],
    )
    log = store.prediction_log("fraud")
    shadows = pc.sum(pc.equal(log.column("role"), "shadow")).as_py()
    out.ok(
        f"{len(answers):,} predictions through store.predict: {share:.1%} answered by the "
        f"canary (sticky: each user and merchant pair always gets the same model); "
        f"{shadows:,} shadow answers of model/fraud_linear logged, none returned"
    )
    return answers, stream


def _labels_and_report(
    store: Any, repo: Path, answers: list[dict[str, Any]], stream: pa.Table
) -> None:

    out.step("FTI 4. delayed labels arrive: realized against estimated (CBPE) performance")
    ids = [a["prediction_id"] for a in answers]
    labels = pa.table(
        {
            "prediction_id": ids,
            "label": pc.cast(stream.column("is_fraud"), pa.float64()),
        }
    )
    half = len(ids) // 2
    for part, what in ((labels.slice(0, half), "first"), (labels.slice(half), "second")):
        joined = store.log_labels("fraud", part)
        out.ok(f"{what} delivery of chargeback labels: {joined:,} joined to their predictions")
    perf = store.realized_performance("fraud", "1d", roles=["primary", "canary"])
    out.arrow(perf, title="realized performance per window, role and model", limit=10)

    # the log with the inputs each prediction was made from (the request's amount and
    # the online features), so multivariate drift needs no point-in-time read
    log = store.prediction_log("fraud")
    inputs = stream.select(["transaction_id", "amount"]).append_column(
        "prediction_id", pa.array(ids)
    )
    online = store.get_online_features(
        "fraud", stream.select(["user_id", "merchant_id"]).to_pylist()
    ).to_arrow()
    inputs = inputs.append_column("fraud_rate_30d", online.column("fraud_rate_30d"))
    inputs = inputs.append_column("credit_limit", online.column("credit_limit"))
    served = log.join(inputs, "prediction_id")
    # a batch shares one predicted_at: within it, the stream's order (chunks are the same
    # on every run)
    served = served.sort_by([("predicted_at", "ascending"), ("transaction_id", "ascending")])
    # equal chunks near CHUNK rows: a short last chunk would only show its sampling error
    primary = pc.sum(pc.equal(served.column("model"), "model/fraud_risk/1")).as_py()
    chunk = -(-primary // max(1, round(primary / CHUNK)))
    report = store.model_report(
        "model/fraud_risk/1",
        served,
        repo / "reports" / "fraud_risk.html",
        labels=labels,
        chunk_size=chunk,
    )
    estimate = store.estimate_performance(
        "model/fraud_risk/1", served, labels=labels, chunk_size=chunk
    )
    out.table(
        f"model/fraud_risk/1: ROC AUC per chunk of {chunk} predictions",
        ["chunk", "rows", "estimated (CBPE) [band]", "realized", "status"],
        _chunks(estimate),
    )
    auc = estimate.series("roc_auc")
    inside = sum(r.lower <= r.realized <= r.upper for r in auc)
    out.info(
        f"the stream's online share grows from 20 % to 60 %; the fixed model scores both "
        f"channels alike, so CBPE expects no drop; the labels agree: {inside} of {len(auc)} "
        "chunks' realized AUC lie inside the estimate's band"
    )
    out.ok(f"model report (estimated against realized, with bands): {report}")
    _monitor(store, served, labels, chunk, inside, len(auc))


def _monitor(
    store: Any, served: pa.Table, labels: pa.Table, chunk: int, inside: int, chunks: int
) -> None:
    from featureledger.monitoring import Monitor

    out.step("FTI 5. model monitors: nothing left open without a reason")
    monitors = [
        Monitor("fraud_risk_estimated", "model/fraud_risk/1", "estimated_drop"),
        Monitor("fraud_risk_realized", "model/fraud_risk/1", "realized_drop"),
    ]
    findings = store.run_model_monitors(monitors, served, labels=labels, chunk_size=chunk)
    for f in findings:
        out.info(f"{f.status.upper()}: {f.message}")
        if f.status != "ok":
            # the data keeps the training set's relation between features and fraud (no
            # concept drift), so a breach here is a chunk's sampling error; say the figures
            frauds = round(chunk * float(np.mean(labels.column("label").to_numpy())))
            reason = (
                f"{f.monitor}: a chunk of {chunk} predictions holds about {frauds} frauds, "
                f"so its AUC moves by several points by chance; {inside} of {chunks} "
                "chunks' realized AUC lie inside the CBPE band: accepted, checked again "
                "at the next label delivery"
            )
            store.resolve_monitor(f.monitor, reason=reason)
            out.ok(f"resolved, reason in the audit log: {reason}")
    left = len(store.open_findings())
    out.ok(f"open findings: {left} (`featureledger monitor list` shows nothing open)")


def _chunks(report: Any) -> list[list[str]]:
    """The estimated and realized ROC AUC of each chunk, for the console."""
    return [
        [
            r.chunk,
            f"{r.rows:,}",
            f"{r.estimated:.3f} [{r.lower:.3f}, {r.upper:.3f}]",
            "-" if r.realized != r.realized else f"{r.realized:.3f}",
            "ALERT" if r.alert else "ok",
        ]
        for r in report.series("roc_auc")
    ]
