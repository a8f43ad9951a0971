"""Served rows beside their recomputed offline rows, for training-serving skew, in DuckDB."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from featureledger.offline.duckdb._sql import positions, q, sandbox

_POS = "__fl_spos"


def pairs(
    offline: pa.Table,
    online: pa.Table,
    join: Sequence[str],
    features: Sequence[str],
    *,
    tolerance: float,
    event_time: str | None,
    history: pa.Table | None,
    history_time: str,
    request_time: str | None,
    entity_keys: Sequence[str],
) -> pa.Table:
    """`OfflineEngine.skew_pairs` in DuckDB: one LEFT JOIN, history matches as EXISTS."""
    con = sandbox()
    try:
        con.register("__fl_off", offline)
        con.register("__fl_on", online.append_column(_POS, positions(online.num_rows)))
        cols = [f"s.{q(k)} AS {q(k)}" for k in join]
        for i, f in enumerate(features):
            cols += [f"s.{q(f)} AS on{i}", f"o.{q(f)} AS off{i}"]
        if event_time:
            cols += [f"s.{q(event_time)} AS __fl_on_et", f"o.{q(event_time)} AS __fl_off_et"]
        if history is not None:
            con.register("__fl_hist", history)
            on_keys = " AND ".join(f"h.{q(k)} = s.{q(k)}" for k in entity_keys)
            if event_time:
                bound = f"h.{q(history_time)} < o.{q(event_time)}"
            elif request_time:
                bound = f"h.{q(history_time)} <= s.{q(request_time)}"
            else:
                raise ValueError("history needs event_time or request_time to order values")
            for i, f in enumerate(features):
                numeric = _is_number(history.schema.field(f).type)
                same = (
                    f"abs(h.{q(f)} - s.{q(f)}) <= {float(tolerance)!r} * greatest(1, abs(h.{q(f)}))"
                    if numeric
                    else f"h.{q(f)} = s.{q(f)}"
                )
                cols.append(
                    f"EXISTS (SELECT 1 FROM __fl_hist h WHERE {on_keys} AND {bound} AND {same})"
                    f" AS __fl_hist{i}"
                )
        on = " AND ".join(f"s.{q(k)} = o.{q(k)}" for k in join)
        sql = (
            f"SELECT {', '.join(cols)}, o.__fl_present FROM __fl_on s LEFT JOIN "
            f"(SELECT *, true AS __fl_present FROM __fl_off) o ON {on} ORDER BY s.{_POS}"
        )
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


def _is_number(dtype: pa.DataType) -> bool:
    return pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype)
