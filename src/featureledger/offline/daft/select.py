"""The smallest keys of a filtered Daft dataframe, without a distributed sort.

Daft's sort on Ray was seen to come back with partitions out of order (docs/benchmarks.md,
issue 13), so a "sort, then limit" is not trusted to pick the right rows. Instead the k
smallest keys are found by k rounds of global minima, each an aggregation every worker
computes over its partitions: round j takes, per column in order, the minimum among rows
lexicographically above the previous key and equal on the columns already fixed. That is
k x len(keys) small queries, all kinds at once; NULL keys are never picked (DuckDB's
ORDER BY puts them last).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import daft


def _above(keys: Sequence[str], prev: Sequence[Any]) -> Any:
    """Rows whose key tuple is lexicographically greater than ``prev``."""
    from daft import col, lit

    out = None
    for j in reversed(range(len(keys))):
        here = col(keys[j]) > lit(prev[j])
        if out is not None:
            here = here | ((col(keys[j]) == lit(prev[j])) & out)
        out = here
    return out


def smallest(
    frame: daft.DataFrame, kinds: Mapping[str, Any], keys: Sequence[str], k: int
) -> dict[str, list[dict[str, Any]]]:
    """Per kind (a boolean expression over ``frame``), up to ``k`` smallest ``keys`` tuples
    of the rows where it holds, ascending, as dicts."""
    from daft import col, lit
    from daft.functions import when

    found: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    active = {kind: cond for kind, cond in kinds.items()}
    for _ in range(k):
        if not active:
            break
        # rows still eligible per kind: above the last key found
        eligible = {}
        for kind, cond in active.items():
            last = found[kind][-1] if found[kind] else None
            eligible[kind] = cond if last is None else cond & _above(keys, [last[c] for c in keys])
        fixed: dict[str, dict[str, Any]] = {kind: {} for kind in active}
        for key in keys:
            aggs = []
            for n, kind in enumerate(active):
                cond = eligible[kind]
                for done, value in fixed[kind].items():
                    cond = cond & (col(done) == lit(value))
                aggs.append(when(cond, col(key)).min().alias(f"m{n}"))
            row = frame.agg(*aggs).to_pylist()[0]
            for n, kind in enumerate(list(active)):
                fixed[kind][key] = row[f"m{n}"]
        for kind in list(active):
            if any(fixed[kind][key] is None for key in keys):
                del active[kind]  # no row left of this kind
            else:
                found[kind].append(dict(fixed[kind]))
    return found
