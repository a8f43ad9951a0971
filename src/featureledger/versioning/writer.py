"""Commit a batch as one data version, keeping storage unique on (key, event time).

The caller passes the parent version and its content hash: on local disk it holds the
table's write lock; on object storage there is none, and `write_with_retry` repeats the
whole write (matching, hashing, commit) from the new latest version whenever another
writer's commit landed first. The content hash of the new version is the parent's plus
the rows added minus the rows removed, so its cost follows the batch, not the table; it
is kept in the commit itself too, so the next writer finds its parent's hash there.

With an engine whose workers write data files (`FileWriter`: Daft), the writer decides
the same rows, then the workers write the files into the table's folder and the driver
makes one commit of their metadata (`_worker_commit`): an upsert that replaces stored
rows rewrites the stored files holding them, as Delta's merge does, sorted like a batch.
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
from featureledger.errors import ConcurrentWriteError, KeyConflictError, StorageError
from featureledger.hashing import ContentHash, content_hash, row_values
from featureledger.offline.base import FileWriter, OfflineEngine, WrittenFile
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
        if isinstance(engine, FileWriter):
            version, sums = _worker_commit(
                table, engine, group, batch, "overwrite", run_id, added, parent_version, added
            )
        else:
            version = table.overwrite(batch, run_id, **_strict(table, parent_version, added))
            sums = None
        return _finish(
            table,
            version,
            "overwrite",
            added,
            parent_content,
            rows_in,
            dropped,
            parent_version,
            sums,
        )

    files = candidate_files(table, parent_version, group, batch)
    time_range = _time_range(group, batch)
    existing, positions = engine.matching_rows(
        files, group.arrow_schema, batch, group.unique_key, time_range
    )
    if existing.num_rows == 0:
        added = content_hash(batch)
        content = parent_content + added
        if isinstance(engine, FileWriter):
            version, sums = _worker_commit(
                table, engine, group, batch, "append", run_id, added, parent_version, content
            )
        else:
            version = table.append(batch, run_id, **_strict(table, parent_version, content))
            sums = None
        return _finish(
            table,
            version,
            "append" if mode == "append" else "upsert",
            added,
            ContentHash(),
            rows_in,
            dropped,
            parent_version,
            sums,
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
    sums = None
    if isinstance(engine, FileWriter):
        version, sums = _worker_commit(
            table,
            engine,
            group,
            to_write,
            "append",
            run_id,
            added - removed,
            parent_version,
            content,
            replaced=(files, removed_rows),
        )
    elif removed_rows.num_rows == 0:
        version = table.append(to_write, run_id, **_strict(table, parent_version, content))
    else:
        version = table.merge(
            to_write, list(group.unique_key), run_id, **_strict(table, parent_version, content)
        )
    out = _finish(table, version, "upsert", added, removed, rows_in, dropped, parent_version, sums)
    out.unchanged, out.superseded = unchanged, superseded
    return out


def _worker_commit(
    table: DeltaGroupTable,
    engine: FileWriter,
    group: FeatureGroup,
    rows: pa.Table,
    mode: str,
    run_id: str,
    change: ContentHash,
    parent: int,
    content: ContentHash,
    *,
    replaced: tuple[list[str], pa.Table] | None = None,
) -> tuple[int, dict[str, dict[str, Any]]]:
    """``rows`` written by the engine's workers and committed in one Delta commit; with
    ``replaced`` = (candidate files, stored rows being replaced), the stored files holding
    those rows are rewritten without them and removed in the same commit. ``change`` is
    what the commit must add to the parent's hash: the files the workers report are
    checked against it (their per-file hashes, minus the rewritten files' hash) before
    anything is committed. Returns the version and the new files' checksums."""
    schema = table.schema(parent)
    sort_by = list(group.unique_key)
    carry: tuple[list[str], pa.Table] | None = None
    expect = change
    if replaced is not None and replaced[1].num_rows:
        keys = replaced[1].select(sort_by)
        rewritten = engine.files_holding(replaced[0], schema, keys)
        carry = (rewritten, keys)
        expect = expect + engine.content_of(rewritten, schema)
    files = engine.write_files(table.uri, schema, sort_by, rows, carry)
    wrote = sum((f.content for f in files), ContentHash())
    if wrote != expect:
        raise StorageError(
            f"{table.uri}: the engine's workers wrote {wrote.rows} row(s) hashing to {wrote}, "
            f"but this commit needs {expect.rows} row(s) hashing to {expect}; nothing was "
            "committed (the stray files are in no version; vacuum deletes them). Retry; if it "
            "persists, the workers' featureledger or pyarrow differs from the driver's",
            uri=table.uri,
        )
    version = table.commit_files(
        files, carry[0] if carry else [], mode, run_id, **_strict(table, parent, content)
    )
    return version, _checksums(table, files)


def _checksums(table: DeltaGroupTable, files: list[WrittenFile]) -> dict[str, dict[str, Any]]:
    """`DeltaGroupTable.checksums` of worker-written files: their SHA-256 as the workers
    computed it from the bytes they wrote, so the driver reads no data back."""
    out = {}
    for f in files:
        info = table.storage.info(f"{table.uri}/{f.path}")
        out[f.path] = {
            "sha256": f.sha256,
            "size": f.size,
            "mtime_ns": info.mtime_ns if info else None,
        }
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
    sums: dict[str, dict[str, Any]] | None = None,
) -> WriteOutcome:
    return WriteOutcome(
        version,
        operation,
        added,
        removed,
        rows_in,
        dropped,
        files=sums if sums is not None else table.checksums(table.commit(version).added),
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
