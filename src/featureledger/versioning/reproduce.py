"""The reproducibility predicate R(m) factor by factor, with how to restore what differs.

Pure: the store fills a `ReproduceReport` with (item, recorded, current) triples per factor;
`hints` turns every difference into what changed and how to get the recorded state back.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FACTORS = ("data", "code", "environment")
#: the environment item that holds featureledger's own source hash
LIBRARY_SOURCE = "featureledger (source)"


@dataclass
class ReproduceReport:
    """The reproducibility predicate, factor by factor, for one recorded artifact or run."""

    identity: str
    #: factor -> list of (item, recorded, current)
    factors: dict[str, list[tuple[str, str, str]]] = field(
        default_factory=lambda: {f: [] for f in FACTORS}
    )
    output_expected: str | None = None
    output_actual: str | None = None
    output_note: str = ""
    #: item -> where its code was defined (``path:qualname``) or where its data lives
    where: dict[str, str] = field(default_factory=dict)
    #: the environment recorded with the artifact (its lock: Python and package versions)
    environment_lock: dict[str, str] = field(default_factory=dict)
    #: the recorded identities the report covers, outermost first (deployment, model, ...)
    covers: list[str] = field(default_factory=list)

    def add(self, factor: str, item: str, recorded: str, current: str) -> None:
        self.factors[factor].append((item, recorded, current))

    def holds(self, factor: str) -> bool:
        return all(recorded == current for _, recorded, current in self.factors[factor])

    def differences(self, factor: str) -> list[tuple[str, str, str]]:
        return [t for t in self.factors[factor] if t[1] != t[2]]

    @property
    def reproducible(self) -> bool:
        """R = 1[data] x 1[code] x 1[environment]."""
        return all(self.holds(f) for f in FACTORS)

    @property
    def output_matches(self) -> bool | None:
        if self.output_actual is None:
            return None
        return self.output_actual == self.output_expected

    def hints(self, factor: str) -> list[str]:
        """How to restore each difference of ``factor`` (empty when it holds)."""
        diffs = self.differences(factor)
        if factor == "environment":
            return _environment_hints(diffs)
        make = _data_hint if factor == "data" else _code_hint
        return [make(item, rec, cur, self.where.get(item, "")) for item, rec, cur in diffs]

    def to_dict(self) -> dict[str, Any]:
        return {
            "identity": self.identity,
            "covers": self.covers,
            "R": int(self.reproducible),
            "factors": {
                f: {
                    "holds": self.holds(f),
                    "items": [
                        {"item": i, "recorded": r, "current": c, "same": r == c}
                        for i, r, c in self.factors[f]
                    ],
                    "hints": self.hints(f),
                }
                for f in FACTORS
            },
            "output": {
                "recorded": self.output_expected,
                "recomputed": self.output_actual,
                "matches": self.output_matches,
                "note": self.output_note,
            },
            "environment_lock": self.environment_lock,
        }


def _data_hint(item: str, recorded: str, current: str, where: str) -> str:
    if item.startswith("feature_group/"):
        if current == "missing":
            return (
                f"{item}: its files are gone (vacuumed or deleted); restore them from a "
                f"backup of the table, whose rows hashed {recorded}"
            )
        state = "cannot be read" if current == "unreadable" else f"hash {current}"
        return (
            f"{item}: the stored rows {state}, not the recorded {recorded}; data "
            f"versions are immutable, so its files were altered: `featureledger verify "
            f"{item}` names them; restore them from a backup"
        )
    if item.startswith("file:"):
        path = item[len("file:") :].rpartition("@sha256:")[0]
        return f"{path} changed ({current}); restore the copy with SHA-256 {recorded}"
    place = f" ({where})" if where else ""
    return f"{item}{place} hashes {current}, not the recorded {recorded}; restore the recorded copy"


def _code_hint(item: str, recorded: str, current: str, where: str) -> str:
    place = f", defined at {where}" if where else ""
    if current in ("absent", "", "unavailable"):
        return (
            f"{item}{place} is not loaded now; pass the repository's definitions (the CLI "
            f"loads them) or restore the code whose hash was {recorded}"
        )
    return (
        f"{item}{place}: recorded code hash {recorded}, now {current}; check out the "
        f"version of that code whose hash was {recorded} from version control "
        "(`featureledger plan` shows the hash of the code in the working tree)"
    )


def _environment_hints(diffs: list[tuple[str, str, str]]) -> list[str]:
    hints: list[str] = []
    pins: list[str] = []
    for name, recorded, current in diffs:
        if name == "python":
            hints.append(f"Python {recorded} was used (now {current}): run with Python {recorded}")
        elif name == LIBRARY_SOURCE:
            hints.append(
                f"featureledger's own source hashed {recorded} (now {current}): install the "
                "featureledger release (or commit) that recorded it"
            )
        elif recorded == "absent":
            hints.append(
                f"{name} was not used then (now {current}); the code that imports it changed"
            )
        else:
            pins.append(f"{name}=={recorded}")
    if pins:
        hints.append("pip install " + " ".join(shlex.quote(p) for p in pins))
    return hints


def compare(
    report: ReproduceReport,
    factor: str,
    recorded: Mapping[str, str],
    current: Mapping[str, str],
    *,
    prefix: str = "",
) -> None:
    """Add every name of either mapping to ``factor``; a side without it is ``absent``."""
    for name in sorted(set(recorded) | set(current)):
        report.add(
            factor, f"{prefix}{name}", recorded.get(name, "absent"), current.get(name, "absent")
        )
