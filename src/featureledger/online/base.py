"""The online store port: the latest value of every entity, read back by key in microseconds.

An online store holds, per *table key* (one per feature group major version, chosen by the
caller), one row per entity: its feature values, its event time and the source data version
it was written from. `OnlineStore.write` keeps the latest row per entity by event time and
`OnlineStore.read` answers a batch of keys in one round trip, serving NULL for unknown keys
and for values older than the TTL, exactly as the offline point-in-time join does
(docs/serving.md).

A full rebuild goes through `OnlineStore.replace`: the new copy is built beside the live one
under a *build id* and swapped in atomically, so readers see the old copy or the new one,
never a hole; a build left by a killed process is listed by `OnlineStore.builds` and dropped
by `OnlineStore.discard_build` (docs/reliability.md#crash-safe-materialization).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Protocol, TypeAlias, runtime_checkable

import pyarrow as pa

from featureledger.errors import InvalidNameError

#: column of `OnlineStore.read` results: the event time of the served row (timestamp[us, UTC])
EVENT_TIME_COLUMN = "__fl_event_time"
#: column of `OnlineStore.read` results: the source data version the served row came from
SOURCE_VERSION_COLUMN = "__fl_source_version"

#: what `write` accepts: a table, or record batches streamed one at a time
Rows: TypeAlias = "pa.Table | pa.RecordBatch | pa.RecordBatchReader | Iterable[pa.RecordBatch]"

_TABLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.@/-]{0,199}")


def check_table_key(table_key: object) -> str:
    """Return ``table_key`` if it can name a table in every backend, else raise.

    Letters, digits and ``_ . @ / -``, starting with a letter or underscore, at most 200
    characters: safe as a quoted SQL identifier, inside a Redis key and in a SCAN pattern.
    """
    if not isinstance(table_key, str) or not _TABLE_KEY.fullmatch(table_key):
        raise InvalidNameError(
            "online table key",
            table_key,
            "use letters, digits and '_ . @ / -', starting with a letter or underscore, "
            "at most 200 characters",
        )
    return table_key


_BUILD = re.compile(r"[A-Za-z0-9-]{1,64}")


def check_build(build: object) -> str:
    """Return ``build`` if it can name an unfinished build (letters, digits, ``-``), else raise."""
    if not isinstance(build, str) or not _BUILD.fullmatch(build):
        raise InvalidNameError("online build id", build, "use 1-64 letters, digits or '-'")
    return build


@runtime_checkable
class OnlineStore(Protocol):
    """Latest feature values per entity, written in batches and read by key.

    Every backend passes the shared suite in tests/online/.
    """

    #: short backend name, e.g. ``"sqlite"``
    name: str

    def write(
        self,
        table_key: str,
        rows: Rows,
        key_columns: Sequence[str],
        *,
        event_time_column: str | None,
        source_version: str,
        atomic: bool = False,
    ) -> int:
        """Store the latest row per entity; return how many stored values were created or replaced.

        ``atomic=True`` applies the whole write at once (one transaction): readers and a
        crash see all of it or none of it. Otherwise it is applied chunk by chunk.

        Every column of ``rows`` other than ``key_columns`` and ``event_time_column`` is a
        feature. A row replaces the stored one only if its event time is >= the stored one
        (ties: the newer write wins; within one call, the later row). ``event_time_column=None``
        (static data) always replaces. ``source_version`` is recorded with every row written.
        """
        ...

    def read(
        self,
        table_key: str,
        keys: pa.Table,
        feature_names: Sequence[str],
        *,
        now: datetime,
        ttl: timedelta | None,
    ) -> pa.Table:
        """One row per row of ``keys``, in the same order, in one round trip.

        Columns: ``feature_names`` in that order, then `EVENT_TIME_COLUMN` and
        `SOURCE_VERSION_COLUMN`. A key with no stored row, a NULL key, or a row whose event
        time is older than ``now - ttl`` (strictly) reads as all NULL.
        """
        ...

    def replace(
        self,
        table_key: str,
        rows: Rows,
        key_columns: Sequence[str],
        *,
        event_time_column: str | None,
        source_version: str,
        build: str,
    ) -> int:
        """Build a new copy of ``table_key`` from ``rows`` beside the live one, then swap it
        in atomically (the old copy is dropped); return how many values were written.

        ``build`` (letters, digits, ``-``) names the unfinished copy in `builds` until the
        swap, so a caller can tell a build of a killed process from one still running.
        """
        ...

    def builds(self) -> list[tuple[str, str]]:
        """Unfinished builds as (table key, build id), sorted."""
        ...

    def discard_build(self, table_key: str, build: str) -> None:
        """Drop an unfinished build (and any old copy a killed swap left); a missing build is
        no error. The live copy is untouched."""
        ...

    def delete_table(self, table_key: str) -> None:
        """Drop every row and the schema of ``table_key``; a missing table is no error."""
        ...

    def tables(self) -> list[str]:
        """The table keys holding data, sorted."""
        ...

    def close(self) -> None:
        """Release connections; the store cannot be used afterwards."""
        ...


@runtime_checkable
class PointReader(Protocol):
    """An optional fast path a store may offer beside `OnlineStore.read`: one entity.

    Returns the features' Python values (equal to ``read(...).to_pylist()`` of that row) and
    their served Arrow types, or None whenever it would rather `read` answered (an unusual
    key type, a schema it cannot decode alone, a table changed by another process).
    """

    def read_one(
        self,
        table_key: str,
        key: Sequence[object],
        feature_names: tuple[str, ...],
        *,
        now: datetime,
        ttl: timedelta | None,
    ) -> tuple[tuple[object, ...], tuple[pa.DataType, ...]] | None: ...
