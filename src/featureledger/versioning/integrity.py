"""Checks that stored files and recorded hashes still agree."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featureledger.storage import Storage, object_sha256, open_storage

# files whose bytes were hashed in this process and found intact, by (path, size, mtime_ns)
_VERIFIED: set[tuple[str, int, int]] = set()


@dataclass
class VerifyReport:
    """The outcome of verifying one identity."""

    identity: str
    problems: list[str] = field(default_factory=list)
    checked_files: int = 0
    expected_hash: str | None = None
    actual_hash: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "identity": self.identity,
            "ok": self.ok,
            "problems": self.problems,
            "checked_files": self.checked_files,
            "expected_hash": self.expected_hash,
            "actual_hash": self.actual_hash,
        }


def recorded_files(
    file_maps: Iterable[Mapping[str, Mapping[str, Any]]],
) -> dict[str, Mapping[str, Any]]:
    """Merge the per-commit file records of a version and its ancestors."""
    merged: dict[str, Mapping[str, Any]] = {}
    for files in file_maps:
        merged.update(files)
    return merged


def check_files(
    root: Path | str,
    snapshot: Iterable[str],
    recorded: Mapping[str, Mapping[str, Any]],
    *,
    full: bool,
    storage: Storage | None = None,
) -> list[str]:
    """Problems with the files of a snapshot under ``root`` (a folder or an object-store
    URI read through ``storage``); ``full`` re-hashes every file's bytes.

    Without ``full`` a file whose size and modification time equal those recorded at
    commit is trusted; any other file is re-hashed and compared with its SHA-256. Object
    stores keep modification times in whole seconds, so only ``full`` is proof there
    against a same-size rewrite within the second of the commit.
    """
    store = storage if storage is not None else open_storage(str(root))
    base = str(root).rstrip("/")
    problems = []
    for rel in snapshot:
        uri = f"{base}/{rel}"
        meta = recorded.get(rel)
        if meta is None:
            problems.append(f"{rel}: not recorded by any featureledger commit")
            continue
        info = store.info(uri)
        if info is None:
            problems.append(f"{rel}: missing (deleted, or removed by vacuum)")
            continue
        key = (uri, info.size, info.mtime_ns or 0)
        if info.size != meta.get("size"):
            problems.append(f"{rel}: size {info.size} differs from {meta.get('size')} recorded")
            continue
        trusted = not full and info.mtime_ns is not None and info.mtime_ns == meta.get("mtime_ns")
        if trusted or (not full and key in _VERIFIED):
            continue
        if object_sha256(store, uri) != meta.get("sha256"):
            problems.append(f"{rel}: SHA-256 differs from the one recorded at commit (modified)")
        else:
            _VERIFIED.add(key)
    return problems
