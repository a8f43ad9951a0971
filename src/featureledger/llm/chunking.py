"""Chunkers: registered, function-hashed transforms from a document's text to pieces.

A chunk's id is a digest of (document hash, chunker hash, ordinal): the same document
version cut by the same chunker always gives the same ids, and editing either gives new
ones, so a chunk id names exactly one piece of one document version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from featureledger.definitions.code import function_hash
from featureledger.errors import DefinitionError

#: the columns every chunk carries besides the document's flattened metadata
CHUNK_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("chunk_id", pa.string()),
    ("doc_id", pa.string()),
    ("doc_hash", pa.string()),
    ("ordinal", pa.int32()),
    ("text", pa.string()),
    ("source_uri", pa.string()),
    ("license", pa.string()),
    ("pii", pa.string()),
)
#: prefix of a chunk column holding one metadata key of its document
META = "m."


def word_windows(text: str, *, size: int = 200, overlap: int = 40) -> list[str]:
    """Windows of ``size`` words, each sharing ``overlap`` words with the previous one."""
    words = text.split()
    if not words:
        return []
    step = max(1, size - overlap)
    return [" ".join(words[i : i + size]) for i in range(0, max(1, len(words) - overlap), step)]


@dataclass(frozen=True)
class Chunker:
    """A named chunking function and its parameters: ``fn(text, **params) -> [str]``."""

    name: str
    fn: Callable[..., list[str]] = word_windows
    params: Mapping[str, Any] = field(default_factory=lambda: {"size": 200, "overlap": 40})

    def __post_init__(self) -> None:
        try:
            json.dumps(dict(self.params), sort_keys=True)
        except TypeError as exc:
            raise DefinitionError(
                f"chunker {self.name!r}: params must be JSON values ({exc})"
            ) from None

    @property
    def code_hash(self) -> str:
        return function_hash(self.fn).value

    @property
    def hash(self) -> str:
        """``ch1:`` digest of the function's code hash and the parameters."""
        text = json.dumps([self.code_hash, dict(self.params)], sort_keys=True)
        return "ch1:" + hashlib.sha256(text.encode()).hexdigest()[:16]

    def split(self, text: str) -> list[str]:
        return list(self.fn(text, **dict(self.params)))


def chunk_id(doc_hash: str, chunker_hash: str, ordinal: int) -> str:
    return hashlib.sha256(f"{doc_hash}|{chunker_hash}|{ordinal}".encode()).hexdigest()[:24]


def chunk_documents(docs: pa.Table, chunker: Chunker) -> pa.Table:
    """Every chunk of ``docs`` (corpus columns), with its document's version (doc_hash),
    licence, PII class and metadata keys as ``m.KEY`` columns (for search filters)."""
    ch = chunker.hash
    cols: dict[str, list[Any]] = {name: [] for name, _ in CHUNK_COLUMNS}
    metas: list[dict[str, str]] = []
    for doc in docs.to_pylist():
        meta = json.loads(doc["metadata"] or "{}")
        for i, piece in enumerate(chunker.split(doc["text"])):
            cols["chunk_id"].append(chunk_id(doc["doc_hash"], ch, i))
            cols["ordinal"].append(i)
            cols["text"].append(piece)
            for name in ("doc_id", "doc_hash", "source_uri", "license", "pii"):
                cols[name].append(doc[name])
            metas.append(meta)
    out = {n: pa.array(cols[n], t) for n, t in CHUNK_COLUMNS}
    for key in sorted({k for m in metas for k in m}):
        out[META + key] = pa.array([m.get(key) for m in metas], pa.string())
    return pa.table(out)
