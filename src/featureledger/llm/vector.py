"""The vector index: usearch's HNSW graph in one file, plus exact search for filters.

usearch is imported lazily (the ``llm`` extra) so the CLI starts fast without it. A built
index is written to a temporary name, fsynced and renamed, so a reader never sees half a
file; docs/llm.md says why usearch over LanceDB and faiss-cpu.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from featureledger.errors import ConfigError


def _usearch() -> Any:
    try:
        from usearch import index
    except ImportError:  # pragma: no cover - exercised without the extra
        raise ConfigError(
            "embedding indexes need usearch; install it with `pip install 'featureledger[llm]'`"
        ) from None
    return index


@dataclass(frozen=True)
class HNSWParams:
    """Graph parameters: ``connectivity`` (M), ``expansion_add`` (efConstruction),
    ``expansion_search`` (ef); part of an index version's identity."""

    connectivity: int = 16
    expansion_add: int = 128
    expansion_search: int = 64

    def to_dict(self) -> dict[str, int]:
        return {
            "connectivity": self.connectivity,
            "expansion_add": self.expansion_add,
            "expansion_search": self.expansion_search,
        }


def build_hnsw(vectors: np.ndarray, path: Path, params: HNSWParams, *, threads: int = 0) -> None:
    """Build a cosine HNSW index over ``vectors`` (keys = row numbers) into ``path``."""
    lib = _usearch()
    index = lib.Index(
        ndim=vectors.shape[1],
        metric="cos",
        dtype="f32",
        connectivity=params.connectivity,
        expansion_add=params.expansion_add,
        expansion_search=params.expansion_search,
    )
    if len(vectors):
        index.add(np.arange(len(vectors), dtype=np.uint64), vectors, threads=threads)
    tmp = path.with_name(path.name + ".tmp")
    index.save(str(tmp))
    fsync_file(tmp)
    os.replace(tmp, path)


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def open_hnsw(path: Path, expansion_search: int) -> Any:
    """A memory-mapped view of a saved index (no copy into memory)."""
    index = _usearch().Index.restore(str(path), view=True)
    index.expansion_search = expansion_search
    return index


def hnsw_search(index: Any, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers and cosine distances of the ``k`` nearest rows to one query."""
    k = min(k, len(index))
    if k <= 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    found = index.search(query, k)
    return found.keys.astype(np.int64), found.distances.astype(np.float32)


def exact_search(
    vectors: np.ndarray, query: np.ndarray, k: int, rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` by cosine distance over unit vectors (optionally only ``rows``);
    the reference for recall and the path for selective filters."""
    subset = vectors if rows is None else vectors[rows]
    if len(subset) == 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    dist = 1.0 - subset @ query.astype(np.float32)
    k = min(k, len(subset))
    top = np.argpartition(dist, k - 1)[:k]
    top = top[np.lexsort((top, dist[top]))]  # ties by row, so results are stable
    keys = top if rows is None else rows[top]
    return keys.astype(np.int64), dist[top].astype(np.float32)
