"""How a training dataset is split into parts (train / validation / test): a pure spec.

The rows each part gets are computed by `featureledger.store._splits`; the spec is recorded
with the training set, so the same spec on the same rows always gives the same parts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from featureledger.errors import DefinitionError

SplitKind = Literal["random", "stratified", "group", "time"]
KINDS: tuple[str, ...] = ("random", "stratified", "group", "time")
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(s|m|h|d|w)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _names(n: int) -> tuple[str, ...]:
    return ("train", "test") if n == 2 else ("train", "validation", "test")[:n]


@dataclass(frozen=True)
class Split:
    """A split of a training dataset into named parts.

    - ``random``: rows shuffled by a seeded hash of their position, exact part sizes;
    - ``stratified``: the same within each value of ``label``, so label rates match;
    - ``group``: whole entities (``by`` columns, default the view's join keys) go to one part;
    - ``time``: by the entity frame's time, parts in order, each boundary preceded by a
      ``gap`` whose rows belong to no part. Boundaries are ``boundaries`` (times) or the
      time quantiles at the cumulative ``fractions``.

    Build one with `Split.random`, `Split.stratified`, `Split.group` or `Split.time`.
    """

    kind: SplitKind
    names: tuple[str, ...]
    fractions: tuple[float, ...] = ()
    seed: int = 0
    #: stratified: the label column (default: the training call's ``label``)
    label: str | None = None
    #: group: the entity columns (default: the view's join keys)
    by: tuple[str, ...] = ()
    #: time: explicit boundaries (one fewer than the parts), UTC
    boundaries: tuple[datetime, ...] = ()
    #: time: rows this long before each boundary belong to no part (default: the longest
    #: TTL of the view's groups)
    gap: timedelta | None = None

    def __post_init__(self) -> None:
        what = f"split {self.kind!r}"
        if self.kind not in KINDS:
            raise DefinitionError(f"split kind {self.kind!r} unknown; use one of {KINDS}")
        if len(self.names) < 2 or len(set(self.names)) != len(self.names):
            raise DefinitionError(f"{what}: name two or more distinct parts, got {self.names}")
        bad = [n for n in self.names if not _NAME.fullmatch(n)]
        if bad:
            raise DefinitionError(f"{what}: part names {bad} must be lower-case identifiers")
        if self.kind == "time" and self.boundaries:
            if len(self.boundaries) != len(self.names) - 1:
                raise DefinitionError(
                    f"{what}: {len(self.names)} parts need {len(self.names) - 1} boundaries"
                )
            if any(b.tzinfo is None for b in self.boundaries):
                raise DefinitionError(f"{what}: boundaries must be timezone-aware")
            if list(self.boundaries) != sorted(self.boundaries):
                raise DefinitionError(f"{what}: boundaries must be in increasing order")
        else:
            if len(self.fractions) != len(self.names):
                raise DefinitionError(f"{what}: give one fraction per part {self.names}")
            if any(f < 0 for f in self.fractions) or not math.isclose(
                sum(self.fractions), 1.0, abs_tol=1e-9
            ):
                raise DefinitionError(
                    f"{what}: fractions {self.fractions} must be >= 0 and add up to 1"
                )
        if self.gap is not None and self.gap < timedelta(0):
            raise DefinitionError(f"{what}: gap must not be negative")

    @classmethod
    def random(cls, *fractions: float, seed: int = 0, names: Sequence[str] = ()) -> Split:
        """``Split.random(0.8, 0.1, 0.1, seed=7)``: train / validation / test."""
        return cls("random", tuple(names) or _names(len(fractions)), tuple(fractions), seed)

    @classmethod
    def stratified(
        cls, *fractions: float, label: str | None = None, seed: int = 0, names: Sequence[str] = ()
    ) -> Split:
        return cls(
            "stratified", tuple(names) or _names(len(fractions)), tuple(fractions), seed, label
        )

    @classmethod
    def group(
        cls,
        *fractions: float,
        by: Sequence[str] = (),
        seed: int = 0,
        names: Sequence[str] = (),
    ) -> Split:
        return cls(
            "group", tuple(names) or _names(len(fractions)), tuple(fractions), seed, by=tuple(by)
        )

    @classmethod
    def time(
        cls,
        *fractions: float,
        boundaries: Sequence[datetime] = (),
        gap: timedelta | None = None,
        names: Sequence[str] = (),
    ) -> Split:
        """``Split.time(0.7, 0.15, 0.15)`` or ``Split.time(boundaries=[t1, t2], gap=...)``."""
        n = len(boundaries) + 1 if boundaries else len(fractions)
        return cls(
            "time",
            tuple(names) or _names(n),
            tuple(fractions),
            boundaries=tuple(boundaries),
            gap=gap,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "names": list(self.names),
            "fractions": list(self.fractions),
            "seed": self.seed,
            "label": self.label,
            "by": list(self.by),
            "boundaries": [b.isoformat() for b in self.boundaries],
            "gap_seconds": None if self.gap is None else self.gap.total_seconds(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Split:
        gap = data.get("gap_seconds")
        return cls(
            data["kind"],
            tuple(data["names"]),
            tuple(data.get("fractions", ())),
            int(data.get("seed", 0)),
            data.get("label"),
            tuple(data.get("by", ())),
            tuple(datetime.fromisoformat(b) for b in data.get("boundaries", ())),
            None if gap is None else timedelta(seconds=gap),
        )

    @classmethod
    def parse(cls, text: str) -> Split:
        """The CLI form: ``KIND:F1,F2[,F3][,seed=N][,label=COL][,by=COL+COL][,gap=7d]``,
        e.g. ``time:0.7,0.15,0.15,gap=2d``, ``time:2025-03-01,2025-04-01``,
        ``stratified:0.8,0.2,seed=3``, ``group:0.8,0.2,by=user_id``."""
        kind, _, rest = text.partition(":")
        kind = kind.strip()
        hint = (
            f"split {text!r} not understood; use KIND:F1,F2[,F3][,seed=N][,label=COL]"
            "[,by=COL+COL][,gap=7d] with KIND one of random, stratified, group, time"
        )
        if kind not in KINDS or not rest:
            raise DefinitionError(hint)
        fractions: list[float] = []
        boundaries: list[datetime] = []
        options: dict[str, str] = {}
        for item in (p.strip() for p in rest.split(",")):
            key, eq, value = item.partition("=")
            if eq:
                options[key.strip()] = value.strip()
                continue
            try:
                fractions.append(float(item))
            except ValueError:
                try:
                    when = datetime.fromisoformat(item)
                except ValueError:
                    raise DefinitionError(hint) from None
                boundaries.append(when if when.tzinfo else when.replace(tzinfo=UTC))
        unknown = set(options) - {"seed", "label", "by", "gap"}
        if unknown or (fractions and boundaries):
            raise DefinitionError(hint)
        names = _names(len(boundaries) + 1 if boundaries else len(fractions))
        return cls(
            kind,  # type: ignore[arg-type]
            names,
            tuple(fractions),
            int(options.get("seed", 0)),
            options.get("label"),
            tuple(c for c in options.get("by", "").split("+") if c),
            tuple(boundaries),
            None if "gap" not in options else parse_duration(options["gap"]),
        )


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``6h``, ``7d``, ``2w`` (or a number of seconds)."""
    match = _DURATION.fullmatch(text.strip())
    if match:
        return timedelta(seconds=float(match[1]) * _UNITS[match[2]])
    try:
        return timedelta(seconds=float(text))
    except ValueError:
        raise DefinitionError(
            f"duration {text!r} not understood; use e.g. 90s, 15m, 6h, 7d or 2w"
        ) from None
