"""The point-in-time join as a Daft query, and training data written by the workers.

Plan, per source: Daft's as-of join (``join_asof``, strategy "backward": per entity row the
stored row of equal keys with the greatest event time e <= t, both ends of the comparison
inclusive; NULL keys match nothing), then the TTL applied after it: features are NULL when
e < t - ttl. That is exact: the newest row not after t either lies in the window or no row
of the window exists, since any in-window row is not after t and so not newer than it.
Storage is unique on (keys, event time) and the created-time tie-break was applied by the
writer (`dedupe_sorted`), so no tie is left for the as-of join to break. Static sources are
a left join on the keys. Entity rows keep their order and count through `ROW_COLUMN`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from featureledger.offline.base import ROW_COLUMN, PitSource

if TYPE_CHECKING:
    import daft

    from featureledger.hashing import ContentHash

Scan = Callable[[Sequence[str], pa.Schema], "daft.DataFrame"]

#: 16-bit pieces per 64-bit lane value: sums of pieces stay exact in 64 bits up to 2**47
#: rows, and the lane's sum mod 2**64 is rebuilt from them on the driver
_PIECES = 4


def output_schema(entities: pa.Table, sources: Sequence[PitSource]) -> pa.Schema:
    """The join's columns: the entity columns but `ROW_COLUMN`, then each source's features
    in their stored types."""
    fields = [f for f in entities.schema if f.name != ROW_COLUMN]
    for src in sources:
        fields += [pa.field(out, src.schema.field(stored).type) for stored, out in src.features]
    return pa.schema(fields)


def joined(
    scan: Scan,
    entities: pa.Table,
    timestamp_column: str | None,
    sources: Sequence[PitSource],
    *,
    ordered: bool = True,
    keep_row: bool = False,
) -> daft.DataFrame:
    """The join as a lazy frame, sorted by `ROW_COLUMN` when ``ordered``; `ROW_COLUMN` is
    kept when ``keep_row``."""
    import daft
    from daft import col, lit
    from daft.functions import when

    frame = daft.from_arrow(entities)
    outputs: list[daft.Expression] = []
    for i, src in enumerate(sources):
        keys: list[Any] = [f"__fl_{i}_k{j}" for j in range(len(src.keys))]
        feats = [f"__fl_{i}_f{j}" for j in range(len(src.features))]
        et = f"__fl_{i}_et"
        timed = src.event_time is not None and timestamp_column is not None
        picked = [col(k).alias(n) for k, n in zip(src.keys, keys, strict=True)]
        if timed:
            picked.append(col(src.event_time).alias(et))  # type: ignore[arg-type]
        picked += [col(f).alias(n) for (f, _), n in zip(src.features, feats, strict=True)]
        right = scan(src.files, src.schema).select(*picked)
        if timed:
            assert timestamp_column is not None
            frame = frame.join_asof(
                right,
                left_on=timestamp_column,
                right_on=et,
                left_by=list(src.entity_keys),
                right_by=keys,
                strategy="backward",
            )
        else:
            frame = frame.join(right, left_on=list(src.entity_keys), right_on=keys, how="left")
        for name, (stored, out) in zip(feats, src.features, strict=True):
            value = col(name)
            if timed and src.ttl_us is not None:
                assert timestamp_column is not None
                oldest = col(timestamp_column) - lit(timedelta(microseconds=int(src.ttl_us)))
                dtype = daft.DataType.from_arrow_type(src.schema.field(stored).type)
                value = when(col(et) >= oldest, value).otherwise(lit(None).cast(dtype))
            outputs.append(value.alias(out))
    if ordered:
        frame = frame.sort(ROW_COLUMN)
    kept = [c for c in entities.column_names if keep_row or c != ROW_COLUMN]
    return frame.select(*[col(c) for c in kept], *outputs)


def write_joined(
    scan: Scan,
    entities: pa.Table,
    timestamp_column: str | None,
    sources: Sequence[PitSource],
    directory: str,
    io: Any,
) -> tuple[list[str], ContentHash]:
    """Write the join from the workers to Parquet files under ``directory`` (rows keep
    `ROW_COLUMN`), then hash them on the workers: one (count, lane sums) per partition,
    combined on the driver. The files are read back for the hash so it is the hash of
    what was stored; the ``flh1`` sum does not depend on order or layout, so it equals
    the hash of the same rows joined anywhere else."""
    frame = joined(scan, entities, timestamp_column, sources, ordered=False, keep_row=True)
    written = frame.write_parquet(directory, io_config=io).to_pydict()
    files = sorted(str(p) for p in written["path"])
    return files, hash_files(files, output_schema(entities, sources), io)


def hash_files(files: Sequence[str], schema: pa.Schema, io: Any) -> ContentHash:
    """The ``flh1`` content hash of the rows in ``files`` (columns of ``schema``, in its
    types), computed by Daft's workers per batch and summed."""
    import daft

    from featureledger.hashing import ContentHash

    if not files:
        return ContentHash()
    return hash_frame(daft.read_parquet(list(files), io_config=io), schema)


def hash_frame(frame: daft.DataFrame, schema: pa.Schema) -> ContentHash:
    """The ``flh1`` content hash of ``frame``'s rows (columns of ``schema``, in its types),
    computed by Daft's workers per batch and summed."""
    import daft
    from daft import col

    from featureledger.hashing import ContentHash

    lanes = {f"__fl_h{lane}_{p}": daft.DataType.uint64() for lane in (0, 1) for p in range(_PIECES)}
    names = list(schema.names)

    @daft.func.batch(return_dtype=daft.DataType.struct(lanes))
    def row_pieces(*columns: Any) -> pa.StructArray:
        from featureledger.hashing import row_values

        batch = pa.RecordBatch.from_arrays([c.to_arrow() for c in columns], names=names).cast(
            schema
        )
        pieces = []
        for lane in row_values(batch):
            for p in range(_PIECES):
                pieces.append(pa.array((lane >> np.uint64(16 * p)) & np.uint64(0xFFFF)))
        return pa.StructArray.from_arrays(pieces, names=list(lanes))

    hashed = frame.select(row_pieces(*[col(c) for c in names]).alias("__fl_h"))
    sums = hashed.select(*[col("__fl_h")[n].alias(n) for n in lanes]).agg(
        daft.col(next(iter(lanes))).count().alias("__fl_rows"),
        *[col(n).sum().alias(n) for n in lanes],
    )
    total = sums.to_pydict()
    lane_sums = []
    for lane in (0, 1):
        value = sum(int(total[f"__fl_h{lane}_{p}"][0] or 0) << (16 * p) for p in range(_PIECES))
        lane_sums.append(value % (1 << 64))
    return ContentHash(int(total["__fl_rows"][0] or 0), lane_sums[0], lane_sums[1])
