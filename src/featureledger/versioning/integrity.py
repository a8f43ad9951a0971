"""Checks that stored files and recorded hashes still agree."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featureledger.hashing import file_sha256

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
    root: Path, snapshot: Iterable[str], recorded: Mapping[str, Mapping[str, Any]], *, full: bool
) -> list[str]:
    """Problems with the files of a snapshot; ``full`` re-hashes every file's bytes.

    Without ``full`` a file whose size and modification time equal those recorded at
    commit is trusted; any other file is re-hashed and compared with its SHA-256.
    """
    problems = []
    for rel in snapshot:
        path = root / rel
        meta = recorded.get(rel)
        if meta is None:
            problems.append(f"{rel}: not recorded by any featureledger commit")
            continue
        try:
            st = os.stat(path)
        except FileNotFoundError:
            problems.append(f"{rel}: missing (deleted, or removed by vacuum)")
            continue
        key = (str(path), st.st_size, st.st_mtime_ns)
        if st.st_size != meta.get("size"):
            problems.append(f"{rel}: size {st.st_size} differs from {meta.get('size')} recorded")
            continue
        trusted = not full and st.st_mtime_ns == meta.get("mtime_ns")
        if trusted or (not full and key in _VERIFIED):
            continue
        if file_sha256(str(path)) != meta.get("sha256"):
            problems.append(f"{rel}: SHA-256 differs from the one recorded at commit (modified)")
        else:
            _VERIFIED.add(key)
    return problems
