"""A pipeline's SQL transform as a Daft SQL plan (`OfflineEngine.transform`).

Pipelines are written in DuckDB's dialect (the embedded engine's, docs/pipelines.md), so
the query is first given to Daft's SQL planner (``daft.sql``) with the source table, and
runs on the workers; ``$name`` parameters become Daft SQL literals (numbers, text,
booleans, and timestamps through ``to_datetime``: Daft's SQL has no bound parameters). A
query Daft cannot plan or run, such as one using DuckDB-only syntax (``QUALIFY``,
``list_value``, ``epoch_us``), runs on the driver in DuckDB instead, and the log says
so: its meaning is DuckDB's wherever it runs. Where both parse a query, they agree on
the common SQL the conformance suite checks (filters, grouping, aggregates, joins on
the one source); functions with the same name but other semantics are not known to us
but cannot be ruled out, which is why the fallback goes to DuckDB and not the reverse.
"""

from __future__ import annotations

import logging
import re
from datetime import date, datetime
from typing import Any

import pyarrow as pa

log = logging.getLogger(__name__)

_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def literal(value: object) -> str:
    """``value`` as a Daft SQL literal."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            text = value.strftime("%Y-%m-%d %H:%M:%S.%f")
            return f"to_datetime('{text}', '%Y-%m-%d %H:%M:%S%.f')"
        text = value.strftime("%Y-%m-%d %H:%M:%S.%f %z")
        return f"to_datetime('{text}', '%Y-%m-%d %H:%M:%S%.f %z', 'UTC')"
    if isinstance(value, date):
        return f"CAST('{value.isoformat()}' AS DATE)"
    return "'" + str(value).replace("'", "''") + "'"


def bind(query: str, params: dict[str, object]) -> str:
    """``query`` with each ``$name`` of ``params`` replaced by its literal."""
    return _PARAM.sub(
        lambda m: literal(params[m.group(1)]) if m.group(1) in params else m.group(0), query
    )


def transform(
    query: str, source: pa.Table, params: dict[str, object], *, fallback: Any
) -> pa.Table:
    """``query`` over the table ``source`` in Daft; on a query Daft refuses, in
    ``fallback`` (the driver's DuckDB engine)."""
    import daft

    try:
        return daft.sql(bind(query, params), source=daft.from_arrow(source)).to_arrow()
    except Exception as exc:
        log.warning(
            "pipeline SQL runs on the driver in DuckDB: Daft's SQL cannot run it (%s)",
            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
        )
        return fallback.transform(query, source, params)
