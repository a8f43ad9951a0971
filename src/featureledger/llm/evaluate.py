"""Retrieval quality and release gates for an index or prompt change."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


def recall_at_k(
    retrieved: Sequence[Sequence[str]], relevant: Sequence[Sequence[str]], k: int
) -> float:
    """Mean over queries of |top-k ∩ relevant| / min(k, |relevant|) (queries without
    relevant items are skipped)."""
    scores = []
    for got, want in zip(retrieved, relevant, strict=True):
        wanted = set(want)
        if not wanted:
            continue
        scores.append(len(set(list(got)[:k]) & wanted) / min(k, len(wanted)))
    return sum(scores) / len(scores) if scores else 0.0


@dataclass(frozen=True)
class LLMGates:
    """Bounds a candidate must meet against the current version: recall may drop by at most
    ``max_recall_drop``, p50 latency grow by at most ``max_latency_ratio`` times, cost
    (tokens retrieved per query) by at most ``max_cost_ratio`` times."""

    k: int = 10
    min_recall: float = 0.0
    max_recall_drop: float = 0.02
    max_latency_ratio: float = 2.0
    max_cost_ratio: float = 1.5


@dataclass
class GateResult:
    passed: bool
    candidate: dict[str, float]
    current: dict[str, float] | None
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "candidate": self.candidate,
            "current": self.current,
            "problems": self.problems,
        }


def judge(
    candidate: Mapping[str, float], current: Mapping[str, float] | None, gates: LLMGates
) -> GateResult:
    """Compare metrics (recall, p50_ms, tokens) of a candidate with the current one."""
    problems = []
    if candidate["recall"] < gates.min_recall:
        problems.append(
            f"recall@{gates.k} {candidate['recall']:.3f} is under the floor {gates.min_recall:.3f}"
        )
    if current is not None:
        if candidate["recall"] < current["recall"] - gates.max_recall_drop:
            problems.append(
                f"recall@{gates.k} fell from {current['recall']:.3f} to "
                f"{candidate['recall']:.3f} (allowed drop {gates.max_recall_drop:.3f})"
            )
        if (
            current["p50_ms"] > 0
            and candidate["p50_ms"] > current["p50_ms"] * gates.max_latency_ratio
        ):
            problems.append(
                f"p50 latency {candidate['p50_ms']:.2f} ms is over {gates.max_latency_ratio}x "
                f"the current {current['p50_ms']:.2f} ms"
            )
        if current["tokens"] > 0 and candidate["tokens"] > current["tokens"] * gates.max_cost_ratio:
            problems.append(
                f"cost {candidate['tokens']:.0f} tokens/query is over {gates.max_cost_ratio}x "
                f"the current {current['tokens']:.0f}"
            )
    return GateResult(
        not problems, dict(candidate), None if current is None else dict(current), problems
    )


def count_tokens(text: str) -> int:
    """A whitespace token count: the cost unit when no tokenizer is given."""
    return len(text.split())
