"""A plain point-in-time join, one entity row and one input row at a time, to check every
engine against. It reads the rows as they were written (not as stored), so it also checks
what storage keeps (DESIGN.md, "Semantics that must be exact"):

for an entity row (keys, t) and a group with TTL d, the input row with the greatest event
time e such that t - d <= e <= t (no lower bound without a TTL); ties on e go to the
greatest created time, then to the later write; no such row gives NULL features. A static
group (no event time) gives the last row written for the keys. Entity rows keep their
order and count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

Row = dict[str, Any]


@dataclass(frozen=True)
class RefGroup:
    #: every row written, in write order
    rows: Sequence[Row]
    keys: Sequence[str]
    entity_keys: Sequence[str]
    event_time: str | None
    created_time: str | None
    ttl: timedelta | None
    #: (stored column, output column)
    features: Sequence[tuple[str, str]]


def reference_pit(
    entities: Sequence[Row], timestamp_column: str | None, groups: Sequence[RefGroup]
) -> list[Row]:
    out = []
    for entity in entities:
        row = dict(entity)
        for g in groups:
            wanted = [entity[k] for k in g.entity_keys]
            best: Row | None = None
            best_rank: tuple[Any, ...] | None = None
            for position, cand in enumerate(g.rows):
                if [cand[k] for k in g.keys] != wanted or None in wanted:
                    continue
                if g.event_time is not None and timestamp_column is not None:
                    t, e = entity[timestamp_column], cand[g.event_time]
                    if e > t:
                        continue  # from the future
                    if g.ttl is not None and e < t - g.ttl:
                        continue  # too old
                    rank: tuple[Any, ...] = (
                        e,
                        cand[g.created_time] if g.created_time else 0,
                        position,
                    )
                else:
                    assert g.event_time is None, "joins without entity times are for static groups"
                    rank = (position,)
                if best_rank is None or rank > best_rank:
                    best, best_rank = cand, rank
            for stored, output in g.features:
                row[output] = None if best is None else best[stored]
        out.append(row)
    return out
