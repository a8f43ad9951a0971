"""Row-level comparison of two snapshots in Daft (`OfflineEngine.diff`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from featureledger.offline.daft.select import smallest

if TYPE_CHECKING:
    import daft


def diff(
    old: daft.DataFrame,
    old_schema: pa.Schema,
    new: daft.DataFrame,
    new_schema: pa.Schema,
    unique_key: Sequence[str],
    examples: int,
) -> dict[str, object]:
    """Counts, per-column changes, example keys and per-side statistics; the join and the
    counts run on the workers, only the counts and examples reach the driver."""
    from daft import col, lit
    from daft.functions import coalesce

    keys: list[Any] = list(unique_key)
    common = [c for c in new_schema.names if c in old_schema.names and c not in keys]
    a = old.select(*[col(c).alias(f"__a_{c}") for c in old_schema.names], lit(True).alias("__in_a"))
    b = new.select(*[col(c).alias(f"__b_{c}") for c in new_schema.names], lit(True).alias("__in_b"))
    both = a.join(
        b, left_on=[f"__a_{k}" for k in keys], right_on=[f"__b_{k}" for k in keys], how="outer"
    )
    in_a = col("__in_a").not_null()
    in_b = col("__in_b").not_null()
    changed = {c: ~col(f"__a_{c}").eq_null_safe(col(f"__b_{c}")) for c in common}
    flags = [coalesce(col(f"__a_{k}"), col(f"__b_{k}")).alias(k) for k in keys]
    flags += [in_a.alias("__in_a"), in_b.alias("__in_b")]
    flags += [(in_a & in_b & e).alias(f"__chg_{c}") for c, e in changed.items()]
    any_change = lit(False)
    for c in common:
        any_change = any_change | col(f"__chg_{c}")
    kinds = {
        "added": col("__in_b") & ~col("__in_a"),
        "removed": col("__in_a") & ~col("__in_b"),
        "changed": col("__in_a") & col("__in_b") & any_change,
    }
    marked = (
        both.select(*flags)
        .with_columns(
            {f"__is_{k}": e for k, e in kinds.items()}
            | {"__is_unchanged": col("__in_a") & col("__in_b") & ~any_change}
        )
        .collect()
    )
    counted = marked.agg(
        *[
            col(f"__is_{k}").cast("int64").sum().alias(k)
            for k in ("added", "removed", "changed", "unchanged")
        ],
        *[col(f"__chg_{c}").cast("int64").sum().alias(f"__chg_{c}") for c in common],
    ).to_pylist()[0]
    # the smallest keys per kind, as rounds of global minima on the workers (`select`):
    # Daft's sort + limit is not trusted on Ray (partitions seen collected out of order)
    samples = smallest(marked, {kind: col(f"__is_{kind}") for kind in kinds}, keys, examples)
    return {
        "added": int(counted["added"] or 0),
        "removed": int(counted["removed"] or 0),
        "changed": int(counted["changed"] or 0),
        "unchanged": int(counted["unchanged"] or 0),
        "changed_by_column": {c: int(counted[f"__chg_{c}"] or 0) for c in common},
        "examples": samples,
        "stats": {"old": _stats(old, old_schema), "new": _stats(new, new_schema)},
    }


def _stats(frame: daft.DataFrame, schema: pa.Schema) -> dict[str, dict[str, object]]:
    from daft import col

    parts: list[Any] = [col(schema.names[0]).count("all").alias("__rows")]
    for i, f in enumerate(schema):
        c = col(f.name)
        numeric = pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
        orderable = numeric or pa.types.is_string(f.type) or pa.types.is_timestamp(f.type)
        parts.append(c.count("null").alias(f"n{i}"))
        if not pa.types.is_list(f.type):
            parts.append(c.approx_count_distinct().alias(f"d{i}"))
        if orderable:
            parts += [c.min().alias(f"lo{i}"), c.max().alias(f"hi{i}")]
        if numeric:
            parts.append(c.cast("float64").mean().alias(f"m{i}"))
    row = frame.agg(*parts).to_pylist()[0]
    return {
        f.name: {
            "count": row["__rows"],
            "nulls": row[f"n{i}"],
            "distinct": row.get(f"d{i}"),
            "min": row.get(f"lo{i}"),
            "max": row.get(f"hi{i}"),
            "mean": row.get(f"m{i}"),
        }
        for i, f in enumerate(schema)
    }
