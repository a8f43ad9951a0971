"""Training-serving skew: the values a model was served, compared with the values the offline
store gives for the same entity and time.

``online`` is the feature log (one row per served request: keys, request time, the values
served); ``offline`` the point-in-time join of the same keys and request times (what
`FeatureStore.training_data` returns for the log used as the entity frame). Rows are joined
in DuckDB; the per-feature comparison is vectorized numpy. Each skewed feature gets a likely
cause class:

- ``missing value handling``: a null on one side and a value on the other (a default filled
  in online, or a null the offline transform keeps);
- ``stale online value``: the served value belongs to an older event than the offline one (its
  event time is older, or it equals an earlier offline value of the same key);
- ``transform mismatch``: values differ systematically (a constant ratio or offset, a linear
  relation, or nearly every row);
- ``unexplained``: a few values differ without one of those patterns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureledger.monitoring.drift import DriftReport, Source, drift
from featureledger.monitoring.metrics import DEFAULT_THRESHOLDS, Status, Threshold, worst
from featureledger.offline.duckdb import q

Cause = Literal["transform mismatch", "stale online value", "missing value handling", "unexplained"]
#: share of compared rows that must differ for "nearly every row" (transform mismatch)
SYSTEMATIC_SHARE = 0.9
#: a linear fit online ~ a * offline + b this good explains a transform mismatch
LINEAR_R2 = 0.9999


@dataclass(frozen=True)
class FeatureSkew:
    """Served vs offline values of one feature over the joined rows.

    ``match_rate`` counts a row as matching when both values are null or they are equal
    within the tolerance. ``online_nulls`` / ``offline_nulls``: rows null on that side only.
    ``stale``: differing rows whose served value is older than the offline one.
    """

    feature: str
    compared: int
    matches: int
    match_rate: float
    status: Status
    threshold: Threshold
    mean_abs_diff: float | None = None
    online_nulls: int = 0
    offline_nulls: int = 0
    value_mismatches: int = 0
    stale: int = 0
    cause: Cause | None = None
    detail: str = ""
    examples: tuple[Mapping[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "compared": self.compared,
            "matches": self.matches,
            "match_rate": self.match_rate,
            "status": self.status,
            "threshold": self.threshold.to_dict(),
            "mean_abs_diff": self.mean_abs_diff,
            "online_nulls": self.online_nulls,
            "offline_nulls": self.offline_nulls,
            "value_mismatches": self.value_mismatches,
            "stale": self.stale,
            "cause": self.cause,
            "detail": self.detail,
            "examples": [dict(e) for e in self.examples],
        }


@dataclass(frozen=True)
class SkewReport:
    online_rows: int
    joined_rows: int
    features: Mapping[str, FeatureSkew]
    distribution: DriftReport | None = None
    keys: tuple[str, ...] = ()
    tolerance: float = 1e-9

    @property
    def unmatched_rows(self) -> int:
        """Served rows with no offline row for their keys (not compared)."""
        return self.online_rows - self.joined_rows

    @property
    def status(self) -> Status:
        return worst(f.status for f in self.features.values())

    @property
    def skewed(self) -> list[str]:
        """Features with any mismatch beyond the tolerance."""
        return [f.feature for f in self.features.values() if f.matches < f.compared]

    def to_dict(self) -> dict[str, Any]:
        return {
            "online_rows": self.online_rows,
            "joined_rows": self.joined_rows,
            "unmatched_rows": self.unmatched_rows,
            "keys": list(self.keys),
            "tolerance": self.tolerance,
            "status": self.status,
            "skewed": self.skewed,
            "features": {k: f.to_dict() for k, f in self.features.items()},
            "distribution": None if self.distribution is None else self.distribution.to_dict(),
        }


def skew(
    offline: pa.Table,
    online: pa.Table,
    keys: Sequence[str],
    features: Sequence[str],
    tolerance: float = 1e-9,
    *,
    request_time: str | None = None,
    event_time: str | None = None,
    history: pa.Table | None = None,
    history_time: str = "event_time",
    training: Source | None = None,
    threshold: Threshold | None = None,
    examples: int = 3,
) -> SkewReport:
    """Compare served ``online`` values with point-in-time ``offline`` values per feature.

    Rows are joined on ``keys`` plus ``request_time`` (when given); the offline side must
    be unique on them. Numbers match when |online - offline| <= tolerance * max(1,
    |offline|) (absolute near zero, relative above 1); other types when equal.

    Staleness evidence, both optional: ``event_time``, a column in both tables with the event
    time of the feature row each side used; ``history``, the feature group's offline rows
    (keys without the request time, ``history_time`` and the features), to recognise a served
    value as an earlier version of the key's value. ``training`` (a table or stored stats) is
    the reference for the served-vs-training distribution comparison (default: ``offline``).
    """
    join = [*keys, *([request_time] if request_time else [])]
    for side, table, cols in (
        ("offline", offline, [*join, *features]),
        ("online", online, [*join, *features]),
    ):
        absent = [c for c in cols if c not in table.column_names]
        if absent:
            raise KeyError(
                f"the {side} table has no column(s) {absent}; it has {table.column_names}"
            )
    limit = threshold or DEFAULT_THRESHOLDS["match_rate"]
    joined = _join(
        offline,
        online,
        join,
        list(features),
        tolerance,
        request_time,
        event_time,
        history,
        history_time,
        list(keys),
    )
    present = joined.column("__fl_present").is_valid().to_numpy(zero_copy_only=False)
    rows = joined.filter(pa.array(present))
    out = {
        name: _compare(
            name,
            i,
            rows,
            join,
            offline.schema.field(name).type,
            online.schema.field(name).type,
            tolerance,
            limit,
            examples,
        )
        for i, name in enumerate(features)
    }
    distribution = drift(
        offline if training is None else training,
        online.select(list(features)),
        features=list(features),
        reference_id="training" if training is not None else "offline",
        current_id="served",
    )
    return SkewReport(online.num_rows, rows.num_rows, out, distribution, tuple(join), tolerance)


def _join(
    offline: pa.Table,
    online: pa.Table,
    join: list[str],
    features: list[str],
    tolerance: float,
    request_time: str | None,
    event_time: str | None,
    history: pa.Table | None,
    history_time: str,
    entity_keys: list[str],
) -> pa.Table:
    import duckdb  # here: the CLI's light commands import this module, never call it

    con = duckdb.connect(":memory:", config={"enable_external_access": False})
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("__fl_off", offline)
        con.register("__fl_on", online)
        keys = ", ".join(q(k) for k in join)
        dupes = con.sql(f"SELECT count(*) - count(DISTINCT ({keys})) FROM __fl_off").fetchall()[0][
            0
        ]
        if dupes:
            raise ValueError(
                f"the offline table has {dupes} duplicate row(s) on {join}; give one "
                "point-in-time value per key and request time (add the request time to the keys)"
            )
        cols = [f"s.{q(k)} AS {q(k)}" for k in join]
        for i, f in enumerate(features):
            cols += [f"s.{q(f)} AS on{i}", f"o.{q(f)} AS off{i}"]
        if event_time:
            cols += [f"s.{q(event_time)} AS __fl_on_et", f"o.{q(event_time)} AS __fl_off_et"]
        if history is not None:
            con.register("__fl_hist", history)
            on_keys = " AND ".join(f"h.{q(k)} = s.{q(k)}" for k in entity_keys)
            bound = (
                f"h.{q(history_time)} < o.{q(event_time)}"
                if event_time
                else f"h.{q(history_time)} <= s.{q(request_time)}"
                if request_time
                else None
            )
            if bound is None:
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
            f"(SELECT *, true AS __fl_present FROM __fl_off) o ON {on}"
        )
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


def _compare(
    name: str,
    i: int,
    rows: pa.Table,
    join: list[str],
    off_type: pa.DataType,
    on_type: pa.DataType,
    tolerance: float,
    limit: Threshold,
    n_examples: int,
) -> FeatureSkew:
    n = rows.num_rows
    if n == 0:
        return FeatureSkew(name, 0, 0, float("nan"), "n/a", limit, detail="no served row joined")
    on_col, off_col = rows.column(f"on{i}"), rows.column(f"off{i}")
    on_null = on_col.is_null().to_numpy(zero_copy_only=False)
    off_null = off_col.is_null().to_numpy(zero_copy_only=False)
    both = ~on_null & ~off_null
    numeric = _is_number(on_type) and _is_number(off_type)
    if numeric:
        on_v = _floats(on_col)
        off_v = _floats(off_col)
        diff = np.abs(on_v - off_v)
        with np.errstate(invalid="ignore"):
            equal = both & (diff <= tolerance * np.maximum(1.0, np.abs(off_v)))
    else:
        on_v = np.asarray(pc.cast(on_col, pa.string()).to_pylist(), dtype=object)
        off_v = np.asarray(pc.cast(off_col, pa.string()).to_pylist(), dtype=object)
        equal = both & (on_v == off_v)
    differ = both & ~equal
    matches = int(equal.sum() + (on_null & off_null).sum())
    rate = matches / n
    stale = differ & _stale_mask(rows, i, n)
    online_nulls = int((on_null & ~off_null).sum())
    offline_nulls = int((off_null & ~on_null).sum())
    mad = float(diff[both].mean()) if numeric and both.any() else None
    cause, detail = _cause(
        online_nulls + offline_nulls,
        int(stale.sum()),
        differ & ~stale,
        both,
        on_v,
        off_v,
        numeric,
        online_nulls,
        offline_nulls,
    )
    bad = np.flatnonzero((on_null != off_null) | differ)[:n_examples]
    key_rows = rows.select(join).take(pa.array(bad, pa.int64())).to_pylist()
    ex = tuple(
        {
            **{k: _plain(v) for k, v in kr.items()},
            "online": _plain(on_col[int(j)].as_py()),
            "offline": _plain(off_col[int(j)].as_py()),
        }
        for kr, j in zip(key_rows, bad, strict=True)
    )
    return FeatureSkew(
        name,
        n,
        matches,
        rate,
        limit.status(rate),
        limit,
        mean_abs_diff=mad,
        online_nulls=online_nulls,
        offline_nulls=offline_nulls,
        value_mismatches=int(differ.sum()),
        stale=int(stale.sum()),
        cause=cause,
        detail=detail,
        examples=ex,
    )


def _stale_mask(rows: pa.Table, i: int, n: int) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    if "__fl_on_et" in rows.column_names:
        older = pc.less(rows.column("__fl_on_et"), rows.column("__fl_off_et"))
        mask |= pc.fill_null(older, False).to_numpy(zero_copy_only=False)
    if f"__fl_hist{i}" in rows.column_names:
        mask |= pc.fill_null(rows.column(f"__fl_hist{i}"), False).to_numpy(zero_copy_only=False)
    return mask


def _cause(
    null_rows: int,
    stale_rows: int,
    other: np.ndarray,
    both: np.ndarray,
    on_v: np.ndarray,
    off_v: np.ndarray,
    numeric: bool,
    online_nulls: int,
    offline_nulls: int,
) -> tuple[Cause | None, str]:
    n_other = int(other.sum())
    if null_rows == stale_rows == n_other == 0:
        return None, ""
    # the largest group of differing rows names the cause; ties go to the more specific one
    ranked = sorted(
        [
            (null_rows, 0, "missing value handling"),
            (stale_rows, 1, "stale online value"),
            (n_other, 2, "values"),
        ],
        key=lambda t: (-t[0], t[1]),
    )
    top = ranked[0][2]
    if top == "missing value handling":
        return "missing value handling", (
            f"{online_nulls} row(s) null online only, {offline_nulls} null offline only"
        )
    if top == "stale online value":
        return "stale online value", f"{stale_rows} served value(s) older than the offline value"
    share = n_other / max(int(both.sum()), 1)
    if numeric:
        pattern = _numeric_pattern(on_v[other], off_v[other])
        if pattern:
            return "transform mismatch", pattern
    else:
        a = np.array([str(x).strip().lower() for x in on_v[other]], dtype=object)
        b = np.array([str(x).strip().lower() for x in off_v[other]], dtype=object)
        if a.size and bool((a == b).all()):
            return "transform mismatch", "values differ only in case or surrounding whitespace"
    if share >= SYSTEMATIC_SHARE:
        return "transform mismatch", f"{share:.0%} of compared values differ"
    return "unexplained", f"{n_other} value(s) differ ({share:.1%}) without a common pattern"


def _numeric_pattern(on_d: np.ndarray, off_d: np.ndarray) -> str:
    """A constant ratio, a constant offset or a tight linear relation among the differing
    rows (a transform applied on one side only)."""
    if on_d.size >= 2:
        nz = off_d != 0
        if nz.sum() >= 2:
            ratio = on_d[nz] / off_d[nz]
            mid = float(np.median(ratio))
            if np.ptp(ratio) <= 1e-6 * max(abs(mid), 1e-12):
                return f"online = {mid:.6g} × offline on every differing row"
        delta = on_d - off_d
        mid = float(np.median(delta))
        if np.ptp(delta) <= 1e-6 * max(abs(mid), 1.0):
            return (
                f"online = offline {'+' if mid >= 0 else '-'} {abs(mid):.6g} on every differing row"
            )
    if on_d.size >= 3 and np.ptp(off_d) > 0:
        a, b = np.polyfit(off_d, on_d, 1)
        resid = on_d - (a * off_d + b)
        total = float(((on_d - on_d.mean()) ** 2).sum())
        r2 = 1 - float((resid**2).sum()) / total if total > 0 else 0.0
        if r2 >= LINEAR_R2 and (abs(a - 1) > 1e-6 or abs(b) > 1e-6):
            return f"online ≈ {a:.6g} × offline {'+' if b >= 0 else '-'} {abs(b):.6g} (R² {r2:.6f})"
    return ""


def _is_number(dtype: pa.DataType) -> bool:
    return pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype)


def _floats(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return pc.fill_null(col.cast(pa.float64()), float("nan")).to_numpy(zero_copy_only=False)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
