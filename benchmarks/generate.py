"""Deterministic benchmark data as Parquet under benchmarks/data/<size>/.

    python benchmarks/generate.py --size s|m|l [--shape base|few|skewed] [--force]

Writes, for each size, with numpy seeded so every run gives the same bytes:

* ``user_stats.parquet``: user_id int64, event_timestamp, created_timestamp
  (timestamp[us, UTC]), f0..f7 float64 (~1% nulls each), c0 int64, s0 string (20
  categories). TTL 30 days in every contender.
* ``user_txn.parquet``: user_id, event_timestamp, created_timestamp, g0..g3 float32.
  TTL 7 days.
* ``entities.parquet``: user_id, event_timestamp, label (int64), in random order,
  unique on (user_id, event_timestamp); ~1% of ids belong to no stored user.

"Feature rows" are per feature group: size l writes 10M rows to user_stats *and* 10M to
user_txn. In each group ~1% of the rows repeat an earlier row's (user_id, event_timestamp)
with a later created_timestamp and different values; the later one must win. Users number
rows/100 (1k, 10k, 100k), so each user has ~100 rows per group over one year (a row every
~3.7 days: the 7-day TTL of user_txn sometimes expires, the 30-day one rarely does).

Other shapes (``--shape``, written to benchmarks/data/<size>-<shape>/), so that a join tuned
to one shape is seen on others: ``few`` has rows/4 users (~4 rows per user and group, so
most entity rows find nothing inside the 7-day TTL), ``skewed`` gives half of each group's
rows to 1 % of the users (~5,000 rows per hot user at size l) and spreads the rest.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA

#: size -> (feature rows per group, entity rows, users)
SIZES: dict[str, tuple[int, int, int]] = {
    "s": (100_000, 10_000, 1_000),
    "m": (1_000_000, 100_000, 10_000),
    "l": (10_000_000, 1_000_000, 100_000),
}
TS = pa.timestamp("us", tz="UTC")
T0_US = 1_735_689_600_000_000  # 2025-01-01T00:00:00Z
YEAR_US = 365 * 86_400 * 1_000_000
CATEGORIES = [f"cat_{i:02d}" for i in range(20)]
DUP_FRACTION = 0.01
NULL_FRACTION = 0.01
SEEDS = {"user_stats": 11, "user_txn": 22, "entities": 33}
SHAPES = ("base", "few", "skewed")


def _keys(
    rng: np.random.Generator,
    n: int,
    n_users: int,
    t0_us: int,
    span_us: int,
    dup_fraction: float,
    skewed: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """user_id, event time (us) and created time (us) for ``n`` rows, ~dup_fraction of
    which repeat an earlier (user_id, event time) with a later created time; ``skewed``
    gives half of the rows to the first 1 % of the users."""
    n_dup = int(n * dup_fraction)
    n_base = n - n_dup
    uid = rng.integers(0, n_users, n_base, dtype=np.int64)
    if skewed:
        hot = n_base // 2
        uid[:hot] = rng.integers(0, max(n_users // 100, 1), hot, dtype=np.int64)
    et = t0_us + rng.integers(0, span_us, n_base, dtype=np.int64)
    created = et + rng.integers(0, 60_000_000, n_base, dtype=np.int64)  # written within 1 min
    if n_dup:
        src = rng.choice(n_base, n_dup, replace=False)
        uid = np.concatenate([uid, uid[src]])
        et = np.concatenate([et, et[src]])
        # a correction arrives 1 h .. 1 day after the original
        late = created[src] + rng.integers(3_600_000_000, 86_400_000_000, n_dup, dtype=np.int64)
        created = np.concatenate([created, late])
    return uid, et, created


def _float_col(
    rng: np.random.Generator, n: int, loc: float, scale: float, dtype: str, null_fraction: float
) -> pa.Array:
    values = rng.normal(loc, scale, n).astype(dtype)
    mask = rng.random(n) < null_fraction if null_fraction else None
    return pa.array(values, mask=mask)


def user_stats(
    n: int,
    n_users: int,
    *,
    seed: int = SEEDS["user_stats"],
    t0_us: int = T0_US,
    span_us: int = YEAR_US,
    dup_fraction: float = DUP_FRACTION,
    skewed: bool = False,
) -> pa.Table:
    rng = np.random.default_rng(seed)
    uid, et, created = _keys(rng, n, n_users, t0_us, span_us, dup_fraction, skewed)
    order = np.lexsort((created, et))  # feature pipelines write in time order
    uid, et, created = uid[order], et[order], created[order]
    cols: dict[str, pa.Array] = {
        "user_id": pa.array(uid),
        "event_timestamp": pa.array(et, TS),
        "created_timestamp": pa.array(created, TS),
    }
    for i in range(8):
        cols[f"f{i}"] = _float_col(rng, n, float(i), 1.0 + i, "float64", NULL_FRACTION)
    cols["c0"] = pa.array(rng.poisson(5.0, n).astype(np.int64))
    idx = pa.array(rng.integers(0, len(CATEGORIES), n, dtype=np.int32))
    cols["s0"] = pa.DictionaryArray.from_arrays(idx, pa.array(CATEGORIES)).cast(pa.string())
    return pa.table(cols)


def user_txn(
    n: int,
    n_users: int,
    *,
    seed: int = SEEDS["user_txn"],
    t0_us: int = T0_US,
    span_us: int = YEAR_US,
    dup_fraction: float = DUP_FRACTION,
    skewed: bool = False,
) -> pa.Table:
    rng = np.random.default_rng(seed)
    uid, et, created = _keys(rng, n, n_users, t0_us, span_us, dup_fraction, skewed)
    order = np.lexsort((created, et))
    uid, et, created = uid[order], et[order], created[order]
    cols: dict[str, pa.Array] = {
        "user_id": pa.array(uid),
        "event_timestamp": pa.array(et, TS),
        "created_timestamp": pa.array(created, TS),
    }
    for i in range(4):
        cols[f"g{i}"] = _float_col(rng, n, 10.0 * i, 3.0, "float32", 0.0)
    return pa.table(cols)


def entities(n: int, n_users: int, *, seed: int = SEEDS["entities"]) -> pa.Table:
    rng = np.random.default_rng(seed)
    m = int(n * 1.001) + 16  # a little extra so dropping duplicates still leaves n rows
    # ~1% of ids name users with no feature rows at all
    uid = rng.integers(0, int(n_users * 1.01) + 1, m, dtype=np.int64)
    et = T0_US + rng.integers(0, YEAR_US, m, dtype=np.int64)
    # keep (user_id, event_timestamp) unique so results can be matched row by row
    _, first = np.unique(np.stack([uid, et], axis=1), axis=0, return_index=True)
    keep = np.sort(first)[:n]
    uid, et = uid[keep], et[keep]
    label = (rng.random(n) < 0.1).astype(np.int64)
    return pa.table({"user_id": uid, "event_timestamp": pa.array(et, TS), "label": label})


def generate(size: str, force: bool = False, shape: str = "base") -> Path:
    rows, n_entities, n_users = SIZES[size]
    skewed = shape == "skewed"
    if shape == "few":
        n_users = rows // 4
    out = DATA / (size if shape == "base" else f"{size}-{shape}")
    meta_path = out / "meta.json"
    if meta_path.exists() and not force:
        meta = json.loads(meta_path.read_text())
        if meta.get("rows_per_group") == rows and meta.get("entity_rows") == n_entities:
            print(f"{out}: already generated (use --force to rewrite)")
            return out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    stats = user_stats(rows, n_users, skewed=skewed)
    pq.write_table(stats, out / "user_stats.parquet")
    del stats
    txn = user_txn(rows, n_users, skewed=skewed)
    pq.write_table(txn, out / "user_txn.parquet")
    del txn
    ents = entities(n_entities, n_users)
    pq.write_table(ents, out / "entities.parquet")
    meta = {
        "size": size,
        "shape": shape,
        "rows_per_group": rows,
        "duplicate_rows_per_group": int(rows * DUP_FRACTION),
        "entity_rows": ents.num_rows,
        "users": n_users,
        "seeds": SEEDS,
        "files": {p.name: p.stat().st_size for p in sorted(out.glob("*.parquet"))},
    }
    meta_path.write_text(json.dumps(meta, indent=2))
    total = sum(meta["files"].values())
    print(
        f"{out}: {rows:,} rows per group, {ents.num_rows:,} entity rows, "
        f"{total / 2**20:.0f} MiB in {time.perf_counter() - t0:.1f} s"
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), nargs="+", default=["s"])
    ap.add_argument("--shape", choices=SHAPES, default="base", help="rows per key (see above)")
    ap.add_argument("--force", action="store_true", help="rewrite existing data")
    args = ap.parse_args()
    for size in args.size:
        generate(size, args.force, args.shape)


if __name__ == "__main__":
    main()
