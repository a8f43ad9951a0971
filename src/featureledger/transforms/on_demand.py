"""Apply a view's on-demand transforms to a table of joined features (offline or online)."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from featureledger.definitions.feature_view import OnDemand
from featureledger.errors import DataError, DefinitionError
from featureledger.offline.conform import cast_exact, to_arrow


def output_fields(transforms: Sequence[OnDemand]) -> list[pa.Field]:
    return [pa.field(f.name, f.arrow_type) for t in transforms for f in t.output_fields]


def apply_on_demand(table: pa.Table, transforms: Sequence[OnDemand], *, where: str) -> pa.Table:
    """``table`` plus each transform's output columns, cast exactly to their declared types.

    The function sees the whole table (features, entity columns and request fields) and
    returns a table-like with its outputs; row count and order must be kept.
    """
    out = table
    for t in transforms:
        if t.function is None:
            raise DefinitionError(
                f"{where}: on-demand transform {t.name!r} has no function loaded; pass the "
                "FeatureView object from your definitions (the CLI and server load the "
                "repository's files)"
            )
        missing = [f.name for f in t.request_fields if f.name not in out.column_names]
        if missing:
            raise DataError(
                f"{where}: on-demand transform {t.name!r} needs request field(s) {missing}"
            )
        result = to_arrow(t.function(out), where=f"{where}, transform {t.name!r}")
        if result.num_rows != out.num_rows:
            raise DataError(
                f"{where}: on-demand transform {t.name!r} returned {result.num_rows} rows for "
                f"{out.num_rows}; it must return one row per input row, in order"
            )
        for f in t.output_fields:
            if f.name not in result.column_names:
                raise DataError(
                    f"{where}: on-demand transform {t.name!r} did not return its output {f.name!r}"
                )
            cast = cast_exact(result.column(f.name), f.arrow_type, name=f.name, where=where)
            if isinstance(cast, str):
                raise DataError(f"{where}: on-demand transform {t.name!r}: {cast}")
            out = out.append_column(pa.field(f.name, f.arrow_type), cast)
    return out
