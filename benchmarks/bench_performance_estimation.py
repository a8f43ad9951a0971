"""Label-free performance estimation, featureledger beside NannyML on the same data in the
same run (issue 14).

    python benchmarks/bench_performance_estimation.py [--reference 5000] [--chunk-size 2000]
        [--seed 0] [--json PATH]

Needs benchmarks/.venv-nannyml (benchmarks/setup_nannyml.sh); NannyML never enters
featureledger's venv.

Data, synthetic with a known covariate shift (P(label | features) never changes, so both
methods' assumptions hold and the realized values are the truth to compare with):

- binary: x ~ N(0, s), z ~ N(0, 1), P(y=1) = sigmoid(2x - z); a logistic regression fitted
  on 20 000 rows at s = 1.5. Reference (the test split): ``--reference`` rows at s = 1.5.
  Analysis: 10 chunks of ``--chunk-size`` rows, s = 1.5 1.5 1.5 1.5 1.2 1.0 0.8 0.6 0.4
  0.3: rows crowd towards the decision boundary and the model gets worse.
- regression: x ~ N(0, s), z ~ N(0, 1), y = 2x + z + e with e ~ N(0, 0.3 + 0.6|x|); a
  linear regression fitted on 20 000 rows at s = 1. Reference: s = 1. Analysis: 10 chunks,
  s = 1 1 1 1 1.3 1.6 2 2.5 3 3: rows move to where the noise is larger.

featureledger: `PerformanceEstimator.fit` on the reference (CBPE: isotonic calibration;
DLE: HistGradientBoosting loss models on one thread), `estimate` on the analysis rows.
NannyML (benchmarks/nannyml_runner.py, its own venv and process): ``CBPE`` and ``DLE``
with their defaults, on the same Parquet files. Labels of the analysis rows are dropped
before either estimates; realized values are computed here with scikit-learn.

Prints per task and metric a table of chunks (realized, our estimate and band, NannyML's
estimate and band) and a summary: mean absolute error of each estimate against the
realized values, how many realized values fall inside each band, and seconds to fit and
estimate (wall clock of this machine, shared with other work: see the printed load).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from common import HERE, machine_facts, run_child
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from featureledger.monitoring.performance import PerformanceEstimator

NANNYML_VENV = HERE / ".venv-nannyml"
BINARY_SPREADS = [1.5, 1.5, 1.5, 1.5, 1.2, 1.0, 0.8, 0.6, 0.4, 0.3]
REGRESSION_SPREADS = [1.0, 1.0, 1.0, 1.0, 1.3, 1.6, 2.0, 2.5, 3.0, 3.0]
METRICS = {"binary": ["roc_auc", "f1", "accuracy"], "regression": ["mae", "rmse"]}


def binary_rows(n: int, spread: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = np.column_stack([rng.normal(0, spread, n), rng.normal(0, 1, n)])
    y = (rng.random(n) < 1 / (1 + np.exp(-(2 * x[:, 0] - x[:, 1])))).astype(float)
    return x, y


def regression_rows(
    n: int, spread: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    x = np.column_stack([rng.normal(0, spread, n), rng.normal(0, 1, n)])
    y = 2 * x[:, 0] + x[:, 1] + rng.normal(0, 1, n) * (0.3 + 0.6 * np.abs(x[:, 0]))
    return x, y


def frames(args: argparse.Namespace) -> dict[str, tuple[pa.Table, pa.Table]]:
    """(reference, analysis) per task, each with x, z, prediction (score), label."""
    rng = np.random.default_rng(args.seed)
    out = {}
    clf = LogisticRegression().fit(*binary_rows(20_000, 1.5, rng))
    reg = LinearRegression().fit(*regression_rows(20_000, 1.0, rng))

    def binary(x: np.ndarray, y: np.ndarray) -> pa.Table:
        s = clf.predict_proba(x)[:, 1]
        cols = {"x": x[:, 0], "z": x[:, 1], "score": s, "prediction": (s >= 0.5) * 1.0}
        return pa.table(cols | {"label": y})

    def regression(x: np.ndarray, y: np.ndarray) -> pa.Table:
        return pa.table({"x": x[:, 0], "z": x[:, 1], "prediction": reg.predict(x), "label": y})

    for task, make, rows, spreads in (
        ("binary", binary, binary_rows, BINARY_SPREADS),
        ("regression", regression, regression_rows, REGRESSION_SPREADS),
    ):
        ref = make(*rows(args.reference, spreads[0], rng))
        ana = pa.concat_tables([make(*rows(args.chunk_size, s, rng)) for s in spreads])
        out[task] = (ref, ana)
    return out


def realized(task: str, chunk: pa.Table) -> dict[str, float]:
    y = chunk.column("label").to_numpy()
    yhat = chunk.column("prediction").to_numpy()
    if task == "binary":
        return {
            "roc_auc": float(roc_auc_score(y, chunk.column("score").to_numpy())),
            "f1": float(f1_score(y, yhat)),
            "accuracy": float(accuracy_score(y, yhat)),
        }
    err = y - yhat
    return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err**2)))}


def ours(task: str, ref: pa.Table, ana: pa.Table, chunk_size: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    est = PerformanceEstimator.fit(
        ref,
        task=task,
        features=["x", "z"],
        chunk_size=chunk_size,  # type: ignore[arg-type]
    )
    t1 = time.perf_counter()
    report = est.estimate(ana.drop_columns(["label"]), chunk_size=chunk_size)
    t2 = time.perf_counter()
    chunks = {
        m: [{"value": r.estimated, "lower": r.lower, "upper": r.upper} for r in report.series(m)]
        for m in METRICS[task]
    }
    return {"fit_s": t1 - t0, "estimate_s": t2 - t1, "chunks": chunks}


def summarize(truth: list[float], side: list[dict[str, float]]) -> dict[str, float]:
    value = np.array([c["value"] for c in side])
    inside = sum(c["lower"] <= t <= c["upper"] for c, t in zip(side, truth, strict=True))
    width = np.mean([c["upper"] - c["lower"] for c in side])
    return {
        "mae": float(np.mean(np.abs(value - np.array(truth)))),
        "inside": inside,
        "width": float(width),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", type=int, default=5000)
    parser.add_argument("--chunk-size", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    python = NANNYML_VENV / "bin" / "python"
    if not python.exists():
        sys.exit("benchmarks/.venv-nannyml is missing: run benchmarks/setup_nannyml.sh")

    print("machine:", json.dumps(machine_facts()))
    print("load average before: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    data = frames(args)
    results: dict[str, Any] = {"args": vars(args) | {"json": str(args.json)}}
    with tempfile.TemporaryDirectory() as tmp:
        for task, (ref, ana) in data.items():
            pq.write_table(ref, Path(tmp) / f"{task}_reference.parquet")
            pq.write_table(ana, Path(tmp) / f"{task}_analysis.parquet")
        env = {**os.environ, "PYTHONPATH": str(HERE)}
        theirs = run_child(
            [str(python), str(HERE / "nannyml_runner.py"), tmp, str(args.chunk_size)],
            timeout=900,
            env=env,
        )
    if "error" in theirs:
        sys.exit(f"NannyML failed: {theirs['error']}")
    print(f"NannyML {theirs['nannyml']}")
    for task, (ref, ana) in data.items():
        mine = ours(task, ref, ana, args.chunk_size)
        other = theirs[task]
        n = args.chunk_size
        truth = [realized(task, ana.slice(i * n, n)) for i in range(ana.num_rows // n)]
        results[task] = {"featureledger": mine, "nannyml": other, "realized": truth}
        print(f"\n== {task}: reference {ref.num_rows} rows, chunks of {n} rows ==")
        for m in METRICS[task]:
            print(f"\n{m}")
            print(
                f"{'chunk':>5} {'realized':>9} | {'ours':>7} {'band':>17} | "
                f"{'NannyML':>7} {'band':>17}"
            )
            for i, t in enumerate(truth):
                a, b = mine["chunks"][m][i], other["chunks"][m][i]
                print(
                    f"{i:>5} {t[m]:>9.4f} | {a['value']:>7.4f} "
                    f"[{a['lower']:.4f}, {a['upper']:.4f}] | {b['value']:>7.4f} "
                    f"[{b['lower']:.4f}, {b['upper']:.4f}]"
                )
        print(f"\nsummary ({task}): mean |estimate - realized|, realized inside band, band width")
        for m in METRICS[task]:
            real = [t[m] for t in truth]
            a, b = summarize(real, mine["chunks"][m]), summarize(real, other["chunks"][m])
            results[task][f"summary_{m}"] = {"featureledger": a, "nannyml": b}
            print(
                f"  {m:>8}: ours {a['mae']:.4f}, {a['inside']}/{len(real)}, {a['width']:.4f}"
                f" | NannyML {b['mae']:.4f}, {b['inside']}/{len(real)}, {b['width']:.4f}"
            )
        print(
            f"  seconds: ours fit {mine['fit_s']:.2f} estimate {mine['estimate_s']:.2f} | "
            f"NannyML fit {other['fit_s']:.2f} estimate {other['estimate_s']:.2f} "
            f"(ratio fit+estimate NannyML/ours "
            f"{(other['fit_s'] + other['estimate_s']) / (mine['fit_s'] + mine['estimate_s']):.2f})"
        )
    print("\nload average after: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
