"""NannyML's side of bench_performance_estimation.py, run in benchmarks/.venv-nannyml.

    benchmarks/.venv-nannyml/bin/python benchmarks/nannyml_runner.py WORKDIR CHUNK_SIZE

Reads WORKDIR/{binary,regression}_{reference,analysis}.parquet written by the parent,
fits CBPE (binary) and DLE (regression) on the reference and estimates the analysis rows
(labels dropped) in chunks of CHUNK_SIZE rows. Emits one tagged JSON line: per task, per
metric, per chunk the estimate, its sampling error and confidence bounds, and the seconds
taken by fit and estimate.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import Any

import nannyml as nml
import pandas as pd
from common import emit

FEATURES = ["x", "z"]


def frames(workdir: Path, task: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    ref = pd.read_parquet(workdir / f"{task}_reference.parquet")
    ana = pd.read_parquet(workdir / f"{task}_analysis.parquet").drop(columns=["label"])
    return ref, ana


def collect(result: Any, metrics: list[str]) -> dict[str, list[dict[str, float]]]:
    df = result.filter(period="analysis").to_df()
    out: dict[str, list[dict[str, float]]] = {}
    for m in metrics:
        out[m] = [
            {
                "value": float(df[(m, "value")].iloc[i]),
                "sampling_error": float(df[(m, "sampling_error")].iloc[i]),
                "lower": float(df[(m, "lower_confidence_boundary")].iloc[i]),
                "upper": float(df[(m, "upper_confidence_boundary")].iloc[i]),
            }
            for i in range(len(df))
        ]
    return out


def main() -> None:
    workdir, chunk_size = Path(sys.argv[1]), int(sys.argv[2])
    warnings.simplefilter("ignore")  # "the resulting number of chunks is too low"
    out: dict[str, Any] = {"ok": True, "nannyml": nml.__version__}

    ref, ana = frames(workdir, "binary")
    metrics = ["roc_auc", "f1", "accuracy"]
    t0 = time.perf_counter()
    cbpe = nml.CBPE(
        y_pred_proba="score",
        y_pred="prediction",
        y_true="label",
        metrics=metrics,
        chunk_size=chunk_size,
        problem_type="classification_binary",
    ).fit(ref)
    t1 = time.perf_counter()
    est = cbpe.estimate(ana)
    t2 = time.perf_counter()
    out["binary"] = {"fit_s": t1 - t0, "estimate_s": t2 - t1, "chunks": collect(est, metrics)}

    ref, ana = frames(workdir, "regression")
    metrics = ["mae", "rmse"]
    t0 = time.perf_counter()
    dle = nml.DLE(
        feature_column_names=FEATURES,
        y_pred="prediction",
        y_true="label",
        metrics=metrics,
        chunk_size=chunk_size,
    ).fit(ref)
    t1 = time.perf_counter()
    est = dle.estimate(ana)
    t2 = time.perf_counter()
    out["regression"] = {"fit_s": t1 - t0, "estimate_s": t2 - t1, "chunks": collect(est, metrics)}
    emit(out)


if __name__ == "__main__":
    main()
