"""Release gates for model candidates: metric thresholds and "better than the current model".

Metrics may be given as one number or as the values of repeated evaluations (folds,
seeds, bootstrap resamples); gates compare means and record the standard error, so a
decision is never taken on a point estimate without its uncertainty written next to it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class MetricSummary:
    """Mean, standard error of the mean and count of a metric's evaluations."""

    mean: float
    std_error: float
    n: int

    @classmethod
    def of(cls, values: float | Sequence[float]) -> MetricSummary:
        if isinstance(values, int | float):
            return cls(float(values), 0.0, 1)
        data = [float(v) for v in values]
        if not data:
            raise ValueError("a metric needs at least one value")
        n = len(data)
        mean = math.fsum(data) / n
        if n == 1:
            return cls(mean, 0.0, 1)
        var = math.fsum((v - mean) ** 2 for v in data) / (n - 1)
        return cls(mean, math.sqrt(var / n), n)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "std_error": self.std_error, "n": self.n}


@dataclass(frozen=True)
class MetricGate:
    """The mean of ``metric`` must lie within [min, max] (either bound optional)."""

    metric: str
    min: float | None = None
    max: float | None = None

    @property
    def name(self) -> str:
        bounds = []
        if self.min is not None:
            bounds.append(f"{self.metric} >= {self.min}")
        if self.max is not None:
            bounds.append(f"{self.metric} <= {self.max}")
        return " and ".join(bounds) or f"{self.metric} present"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "metric", "metric": self.metric, "min": self.min, "max": self.max}


@dataclass(frozen=True)
class BetterThanCurrent:
    """The candidate must beat the reference model's ``metric`` by at least ``margin``."""

    metric: str
    margin: float = 0.0
    direction: Literal["higher", "lower"] = "higher"

    @property
    def name(self) -> str:
        op = "+" if self.direction == "higher" else "-"
        return f"{self.metric} {op}{self.margin} vs current"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "better_than_current",
            "metric": self.metric,
            "margin": self.margin,
            "direction": self.direction,
        }


Gate = MetricGate | BetterThanCurrent


@dataclass
class GateResult:
    gate: str
    passed: bool
    detail: str
    observed: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "passed": self.passed,
            "detail": self.detail,
            "observed": self.observed,
        }


def summarize(metrics: Mapping[str, float | Sequence[float]]) -> dict[str, MetricSummary]:
    return {k: MetricSummary.of(v) for k, v in metrics.items()}


def evaluate_gates(
    gates: Sequence[Gate],
    candidate: Mapping[str, MetricSummary],
    reference: Mapping[str, MetricSummary] | None,
) -> list[GateResult]:
    """Check every gate; a gate whose metric is missing fails with a message saying so."""
    results = []
    for gate in gates:
        got = candidate.get(gate.metric)
        if got is None:
            results.append(GateResult(gate.name, False, f"metric {gate.metric!r} was not given"))
            continue
        if isinstance(gate, MetricGate):
            ok = (gate.min is None or got.mean >= gate.min) and (
                gate.max is None or got.mean <= gate.max
            )
            results.append(
                GateResult(
                    gate.name,
                    ok,
                    f"{gate.metric} = {got.mean:.6g} ± {got.std_error:.2g} (n={got.n})",
                    {"candidate": got.to_dict()},
                )
            )
            continue
        ref = None if reference is None else reference.get(gate.metric)
        if ref is None:
            results.append(GateResult(gate.name, True, "no current model to compare with"))
            continue
        gain = got.mean - ref.mean if gate.direction == "higher" else ref.mean - got.mean
        se = math.sqrt(got.std_error**2 + ref.std_error**2)
        ok = gain >= gate.margin
        results.append(
            GateResult(
                gate.name,
                ok,
                f"gain {gain:.6g} ± {se:.2g} over the current {ref.mean:.6g} "
                f"(needs >= {gate.margin})",
                {
                    "candidate": got.to_dict(),
                    "current": ref.to_dict(),
                    "gain": gain,
                    "gain_std_error": se,
                },
            )
        )
    return results


def gate_from_dict(data: Mapping[str, Any]) -> Gate:
    if data.get("type") == "better_than_current":
        return BetterThanCurrent(
            data["metric"], data.get("margin", 0.0), data.get("direction", "higher")
        )
    return MetricGate(data["metric"], data.get("min"), data.get("max"))


def parse_gate(text: str) -> Gate:
    """``auc>=0.9``, ``latency_ms<=20`` or ``auc>+0.01`` (beat the current model by 0.01)."""
    for op in (">=", "<="):
        if op in text:
            metric, _, value = text.partition(op)
            bound = float(value)
            return MetricGate(
                metric.strip(), min=bound if op == ">=" else None, max=bound if op == "<=" else None
            )
    for op, direction in ((">+", "higher"), ("<-", "lower")):
        if op in text:
            metric, _, value = text.partition(op)
            return BetterThanCurrent(metric.strip(), float(value), direction)  # type: ignore[arg-type]
    raise ValueError(
        f"gate {text!r} not understood; use METRIC>=X, METRIC<=X, METRIC>+MARGIN (beat the "
        "current model, higher is better) or METRIC<-MARGIN (lower is better)"
    )
