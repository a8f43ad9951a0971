"""A small logistic-regression fraud model for the demo (numpy only, deterministic)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa

FEATURES = ("txn_amount_24h", "fraud_rate_30d", "credit_limit", "merchant_avg_amount_1d")


def _raw(table: pa.Table) -> np.ndarray:
    cols = []
    for name in (*FEATURES, "amount"):
        x = table.column(name).to_numpy(zero_copy_only=False).astype(float)
        cols.append(np.nan_to_num(x, nan=0.0))  # a missing feature counts as 0
    return np.column_stack(cols)


def _matrix(
    table: pa.Table, scale: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    raw = _raw(table)
    mean, std = scale if scale is not None else (raw.mean(axis=0), raw.std(axis=0))
    features = np.column_stack([np.ones(table.num_rows), (raw - mean) / np.where(std, std, 1)])
    label = (
        table.column("is_fraud").to_numpy(zero_copy_only=False).astype(float)
        if "is_fraud" in table.column_names
        else None
    )
    return features, label


def _fit(x: np.ndarray, y: np.ndarray, steps: int = 300, lr: float = 0.5) -> np.ndarray:
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-x @ w))
        w -= lr * x.T @ (p - y) / len(y)
    return w


def _auc(score: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) formula."""
    ranks = np.empty(len(score))
    ranks[np.argsort(score, kind="stable")] = np.arange(1, len(score) + 1)
    pos = y == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    if not n_pos or not n_neg:
        return float("nan")
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def train(table: pa.Table, out: Path, folds: int = 3) -> dict[str, list[float]]:
    """Fit on all rows, write the weights to ``out``; AUC of each held-out fold."""
    x, y = _matrix(table)
    assert y is not None
    order = np.arange(len(y))
    aucs = []
    for k in range(folds):
        test = order % folds == k
        w = _fit(x[~test], y[~test])
        aucs.append(_auc(x[test] @ w, y[test]))
    weights = _fit(x, y)
    raw = _raw(table)
    out.write_text(
        json.dumps(
            {
                "features": [*FEATURES, "amount"],
                "weights": weights.tolist(),
                # the scaling is part of the model: serving must use the training set's
                "mean": raw.mean(axis=0).tolist(),
                "std": raw.std(axis=0).tolist(),
            }
        )
    )
    return {"auc": aucs}


def predict(model: Path, rows: list[dict[str, object]]) -> list[float]:
    """Fraud probability of each row (features as served, plus the request's amount)."""
    params = json.loads(model.read_text())
    table = pa.Table.from_pylist(rows)
    x, _ = _matrix(table, (np.array(params["mean"]), np.array(params["std"])))
    return (1.0 / (1.0 + np.exp(-x @ np.array(params["weights"])))).tolist()
