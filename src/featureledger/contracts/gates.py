"""Release gates for model candidates: metric thresholds, "better than the current model",
and slice gates on the metrics of population slices (``slice:auc_gap<=0.05``).

Metrics may be given as one number or as the values of repeated evaluations (folds,
seeds, bootstrap resamples); gates compare means and record the standard error, so a
decision is never taken on a point estimate without its uncertainty written next to it.
"""

from __future__ import annotations

import math
import re
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


SliceStat = Literal["min", "max", "gap"]


@dataclass(frozen=True)
class SliceGate:
    """A bound on a metric across population slices (values of helper columns): the worst
    slice's (``min`` / ``max``) or the largest ``gap`` between two values of one column.
    ``column`` limits it to one helper column; by default every sliced column counts."""

    metric: str
    stat: SliceStat
    min: float | None = None
    max: float | None = None
    column: str | None = None

    @property
    def name(self) -> str:
        where = "slice" if self.column is None else f"slice.{self.column}"
        what = (
            f"{where}:{self.metric}_gap"
            if self.stat == "gap"
            else (f"{where}:{self.stat}_{self.metric}")
        )
        bounds = []
        if self.min is not None:
            bounds.append(f"{what} >= {self.min}")
        if self.max is not None:
            bounds.append(f"{what} <= {self.max}")
        return " and ".join(bounds) or what

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "slice",
            "metric": self.metric,
            "stat": self.stat,
            "min": self.min,
            "max": self.max,
            "column": self.column,
        }


Gate = MetricGate | BetterThanCurrent | SliceGate
#: ``{metric: {"region=south": value}}``: slice figures as gates read them
SliceFigures = Mapping[str, Mapping[str, float | None]]


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
    slices: SliceFigures | None = None,
) -> list[GateResult]:
    """Check every gate; a gate whose metric is missing fails with a message saying so."""
    results = []
    for gate in gates:
        if isinstance(gate, SliceGate):
            results.append(_slice_gate(gate, slices or {}))
            continue
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


def _slice_gate(gate: SliceGate, slices: SliceFigures) -> GateResult:
    """The worst slice (or widest gap) against the bounds, naming the slices and figures."""
    values = slices.get(gate.metric)
    if not values:
        return GateResult(
            gate.name,
            False,
            f"no slice figures for {gate.metric!r}; evaluate with slices=[helper columns] "
            "and register with evaluation=",
        )
    by_column: dict[str, dict[str, float]] = {}
    undefined = []
    for name, value in values.items():
        column = name.partition("=")[0]
        if gate.column is not None and column != gate.column:
            continue
        if value is None or not math.isfinite(value):
            undefined.append(name)
            continue
        by_column.setdefault(column, {})[name] = value
    if not by_column:
        where = f"column {gate.column!r}" if gate.column else "any slice"
        return GateResult(gate.name, False, f"{gate.metric} is defined on no slice of {where}")
    note = f"; undefined on {', '.join(undefined)}" if undefined else ""
    if gate.stat == "gap":
        widest = max(by_column.values(), key=lambda v: max(v.values()) - min(v.values()))
        low, high = min(widest, key=widest.__getitem__), max(widest, key=widest.__getitem__)
        figure = widest[high] - widest[low]
        detail = (
            f"{gate.metric} gap {figure:.6g} between {high} ({widest[high]:.6g}) and "
            f"{low} ({widest[low]:.6g}){note}"
        )
        observed: dict[str, Any] = {"gap": figure, "high": high, "low": low}
    else:
        flat = {k: v for column in by_column.values() for k, v in column.items()}
        pick = min if gate.stat == "min" else max
        worst = pick(flat, key=flat.__getitem__)
        figure = flat[worst]
        detail = f"{gate.stat} {gate.metric} {figure:.6g} on slice {worst}{note}"
        observed = {"value": figure, "slice": worst}
    ok = (gate.min is None or figure >= gate.min) and (gate.max is None or figure <= gate.max)
    return GateResult(gate.name, ok, detail, {**observed, "slices": dict(values)})


def gate_from_dict(data: Mapping[str, Any]) -> Gate:
    if data.get("type") == "slice":
        return SliceGate(
            data["metric"], data["stat"], data.get("min"), data.get("max"), data.get("column")
        )
    if data.get("type") == "better_than_current":
        return BetterThanCurrent(
            data["metric"], data.get("margin", 0.0), data.get("direction", "higher")
        )
    return MetricGate(data["metric"], data.get("min"), data.get("max"))


def parse_gate(text: str) -> Gate:
    """``auc>=0.9``, ``latency_ms<=20``, ``auc>+0.01`` (beat the current model by 0.01),
    or a slice gate: ``slice:auc_gap<=0.05``, ``slice:min_auc>=0.7``,
    ``slice:max_mae<=3``, ``slice.region:min_auc>=0.7`` (one helper column only)."""
    if text.strip().startswith("slice"):
        return _parse_slice_gate(text.strip())
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


_SLICE = re.compile(
    r"slice(?:\.(?P<column>[A-Za-z_][A-Za-z0-9_]*))?:\s*(?:(?P<stat>min|max)_(?P<metric>\w+?)"
    r"|(?P<gmetric>\w+?)_gap)\s*(?P<op>>=|<=)\s*(?P<value>[-+0-9.eE]+)"
)


def _parse_slice_gate(text: str) -> SliceGate:
    match = _SLICE.fullmatch(text)
    if match is None:
        raise ValueError(
            f"gate {text!r} not understood; slice gates are slice:METRIC_gap<=X, "
            "slice:min_METRIC>=X, slice:max_METRIC<=X, optionally slice.COLUMN:..."
        )
    bound = float(match["value"])
    low, high = (bound, None) if match["op"] == ">=" else (None, bound)
    if match["gmetric"]:
        return SliceGate(match["gmetric"], "gap", low, high, match["column"])
    stat: SliceStat = "min" if match["stat"] == "min" else "max"
    return SliceGate(match["metric"], stat, low, high, match["column"])
