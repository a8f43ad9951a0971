"""Commit a batch as one data version, keeping storage unique on (key, event time).

The caller passes the parent version and its content hash: on local disk it holds the
table's write lock; on object storage there is none, and `write_with_retry` repeats the
whole write (matching, hashing, commit) from the new latest version whenever another
writer's commit landed first. The content hash of the new version is the parent's plus
the rows added minus the rows removed, so its cost follows the batch, not the table; it
is kept in the commit itself too, so the next writer finds its parent's hash there.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureledger.definitions.feature_group import FeatureGroup
from featureledger.errors import ConcurrentWriteError, KeyConflictError
from featureledger.hashing import ContentHash, content_hash, row_values
from featureledger.offline.base import OfflineEngine
from featureledger.offline.delta import DeltaGroupTable

Mode = Literal["upsert", "append", "overwrite"]
MODES: tuple[str, ...] = ("upsert", "append", "overwrite")


@dataclass
class WriteOutcome:
    """What one write did; ``version`` is None when nothing changed."""

    version: int | None
    operation: str
    added: ContentHash
    removed: ContentHash
    rows_in: int
    duplicates_dropped: int = 0
    unchanged: int = 0
    superseded: int = 0
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the parent version the write was built on
    parent: int | None = None
    #: tries `write_with_retry` needed (another writer's commit landed first on the others)
    attempts: int = 1


def write_batch(
    table: DeltaGroupTable,
    engine: OfflineEngine,
    group: FeatureGroup,
    batch: pa.Table,
    mode: Mode,
    *,
    parent_version: int,
    parent_content: ContentHash,
    run_id: str,
    where: str,
) -> WriteOutcome:
    rows_in = batch.num_rows
    batch, dropped = engine.dedupe_sorted(batch, group.unique_key, group.created_time)
    if mode == "overwrite":
        added = content_hash(batch)
        if added == parent_content:
            return WriteOutcome(
                None,
                "overwrite",
                ContentHash(),
                ContentHash(),
                rows_in,
                dropped,
                unchanged=batch.num_rows,
                parent=parent_version,
            )
        version = table.overwrite(batch, run_id, **_strict(table, parent_version, added))
        return _finish(
            table, version, "overwrite", added, parent_content, rows_in, dropped, parent_version
        )

    files = candidate_files(table, parent_version, group, batch)
    time_range = _time_range(group, batch)
    existing, positions = engine.matching_rows(
        files, group.arrow_schema, batch, group.unique_key, time_range
    )
    if existing.num_rows == 0:
        added = content_hash(batch)
        version = table.append(
            batch, run_id, **_strict(table, parent_version, parent_content + added)
        )
        return _finish(
            table,
            version,
            "append" if mode == "append" else "upsert",
            added,
            ContentHash(),
            rows_in,
            dropped,
            parent_version,
        )
    if mode == "append":
        examples = existing.select(list(group.unique_key)).slice(0, 3).to_pylist()
        raise KeyConflictError(where, existing.num_rows, examples)

    incoming = batch.take(positions)
    ia, ib = row_values(incoming)
    ea, eb = row_values(existing)
    identical = (ia == ea) & (ib == eb)
    if group.created_time:
        wins = pc.greater_equal(
            incoming.column(group.created_time), existing.column(group.created_time)
        ).to_numpy(zero_copy_only=False)
    else:
        wins = np.ones(len(identical), dtype=bool)  # no created_time: the later write wins
    replace = wins & ~identical
    keep = np.ones(batch.num_rows, dtype=bool)
    keep[positions.to_numpy(zero_copy_only=False)[~replace]] = False
    to_write = batch.filter(pa.array(keep))
    unchanged = int(identical.sum())
    superseded = int((~wins & ~identical).sum())
    if to_write.num_rows == 0:
        return WriteOutcome(
            None,
            "upsert",
            ContentHash(),
            ContentHash(),
            rows_in,
            dropped,
            unchanged=unchanged,
            superseded=superseded,
            parent=parent_version,
        )
    removed_rows = existing.filter(pa.array(replace))
    added, removed = content_hash(to_write), content_hash(removed_rows)
    content = parent_content + added - removed
    if removed_rows.num_rows == 0:
        version = table.append(to_write, run_id, **_strict(table, parent_version, content))
    else:
        version = table.merge(
            to_write, list(group.unique_key), run_id, **_strict(table, parent_version, content)
        )
    out = _finish(table, version, "upsert", added, removed, rows_in, dropped, parent_version)
    out.unchanged, out.superseded = unchanged, superseded
    return out


def _strict(table: DeltaGroupTable, parent: int, content: ContentHash) -> dict[str, Any]:
    """Pin a commit to land right after ``parent`` and carry its content hash: on object
    storage, where no lock orders writers (local writers hold the table lock)."""
    return {"parent": parent, "content": content} if table.remote else {}


def _finish(
    table: DeltaGroupTable,
    version: int,
    operation: str,
    added: ContentHash,
    removed: ContentHash,
    rows_in: int,
    dropped: int,
    parent: int,
) -> WriteOutcome:
    commit = table.commit(version)
    return WriteOutcome(
        version,
        operation,
        added,
        removed,
        rows_in,
        dropped,
        files=table.checksums(commit.added),
        parent=parent,
    )


def logged_parent(table: DeltaGroupTable) -> tuple[int, ContentHash]:
    """The latest version and its content hash, as its commit recorded it (recomputed
    from the rows when the commit carries none: written before hashes were logged)."""
    version = table.latest_version()
    content = table.commit(version).content
    return version, content if content is not None else rebuild_content(table, version)


def write_with_retry(
    table: DeltaGroupTable,
    engine: OfflineEngine,
    group: FeatureGroup,
    batch: pa.Table,
    mode: Mode,
    *,
    run_id: str,
    where: str,
    parent: Callable[[], tuple[int, ContentHash]] | None = None,
    attempts: int = 50,
) -> tuple[WriteOutcome, ContentHash]:
    """`write_batch` on the latest version, again from the new latest one each time
    another writer commits first; returns the outcome and its parent's content hash.

    ``parent`` gives (version, content hash) to build on; by default the table's own
    log (`logged_parent`). Waits grow with jitter so colliding writers spread out.
    """
    read_parent = parent or (lambda: logged_parent(table))
    for attempt in range(attempts):
        version, content = read_parent()
        try:
            out = write_batch(
                table,
                engine,
                group,
                batch,
                mode,
                parent_version=version,
                parent_content=content,
                run_id=run_id,
                where=where,
            )
            out.attempts = attempt + 1
            return out, content
        except ConcurrentWriteError:
            if attempt == attempts - 1:
                raise
            time.sleep(random.uniform(0, min(2.0, 0.02 * 2**attempt)))
    raise AssertionError("unreachable")  # pragma: no cover


def _time_range(group: FeatureGroup, batch: pa.Table) -> tuple[str, object, object] | None:
    if not group.event_time:
        return None
    lo, hi = pc.min_max(batch.column(group.event_time)).values()
    return (group.event_time, lo.as_py(), hi.as_py())


def candidate_files(
    table: DeltaGroupTable, version: int, group: FeatureGroup, batch: pa.Table
) -> list[str]:
    """Files of ``version`` whose column statistics admit a row of ``batch``'s key range.

    Delta statistics store timestamps truncated to milliseconds, so the bounds are
    widened by a millisecond to keep the pruning safe.
    """
    dt = table.table(version)
    uris = list(dt.file_uris())
    if not uris:
        return []
    actions = pa.table(dt.get_add_actions(flatten=True))
    prefix = table.uri.rstrip("/") + "/"
    keep = np.ones(actions.num_rows, dtype=bool)
    checks: list[tuple[str, Any, Any]] = []
    if group.event_time:
        lo, hi = pc.min_max(batch.column(group.event_time)).values()
        slack = timedelta(milliseconds=1)
        checks.append((group.event_time, lo.as_py() - slack, hi.as_py() + slack))
    first = group.key_fields[0]
    if pa.types.is_integer(first.arrow_type):
        lo, hi = pc.min_max(batch.column(first.name)).values()
        checks.append((first.name, lo.as_py(), hi.as_py()))
    for column, lo, hi in checks:
        mins, maxs = f"min.{column}", f"max.{column}"
        if mins not in actions.column_names or maxs not in actions.column_names:
            continue
        fmin, fmax = actions.column(mins), actions.column(maxs)
        upper_ok = pc.less_equal(fmin, pa.scalar(hi, fmin.type))
        lower_ok = pc.greater_equal(fmax, pa.scalar(lo, fmax.type))
        # files without statistics (nulls) must be kept
        ok = pc.fill_null(pc.and_kleene(upper_ok, lower_ok), True)
        keep &= ok.to_numpy(zero_copy_only=False)
    paths = actions.column("path").to_pylist()
    return [prefix + p for p, k in zip(paths, keep, strict=True) if k]


def rebuild_content(table: DeltaGroupTable, version: int) -> ContentHash:
    """The content hash of ``version`` computed from all its rows (for recovery and verify)."""
    dt = table.table(version)
    return content_hash(dt.to_pyarrow_dataset().to_batches())


def widen(table: DeltaGroupTable, schema: pa.Schema, run_id: str) -> int:
    """Rewrite the table with widened column types: one new version, same logical rows."""
    current = table.read(table.latest_version())
    # columns added in the same apply are not stored yet; add_columns adds them afterwards
    stored = pa.schema(
        [
            schema.field(n) if n in schema.names else current.schema.field(n)
            for n in current.column_names
        ]
    )
    return table.overwrite(current.cast(stored), run_id, schema_mode="overwrite")
