"""Embedding indexes: built from a corpus version, versioned, searched, pointed, rolled back
(docs/llm.md#embedding-indexes).

An index version's identity is (corpus version + content hash, chunker hash, embedding
function hash, graph parameters). Its files (chunks, vectors, the usearch graph, the fitted
embedder) are written into a temporary folder, fsynced, checksummed and renamed into place
before the registry records the version: a crash leaves at most an unrecorded folder, and
the previous version stays served. Which version serves is the index's pointer, a numbered
series of moves (build, promote, rollback), each audited.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from featureledger.config import STATE_DIR
from featureledger.contracts.licenses import license_table
from featureledger.errors import DataError, IntegrityError, NotFoundError
from featureledger.hashing import artifact_sha256
from featureledger.llm.chunking import META, Chunker, chunk_documents, word_windows
from featureledger.llm.embedding import Embedder, FittedEmbedder, HashingSVD, load_embedder
from featureledger.llm.vector import (
    HNSWParams,
    build_hnsw,
    exact_search,
    fsync_file,
    hnsw_search,
    open_hnsw,
)
from featureledger.registry import LLMRecord, RegistryBackend
from featureledger.store._corpora import CorpusService
from featureledger.versioning.provenance import current_user

DEFAULT_CHUNKER = Chunker("words", word_windows, {"size": 200, "overlap": 40})
#: a filter keeping fewer than this share of chunks is searched exactly: the graph would
#: need to look at too many neighbours to find k that pass
EXACT_BELOW = 0.05
#: a filter keeping at most this many rows is searched exactly: scanning them costs less
#: than asking the graph for k / share neighbours (bench_llm: 5 % of 100k chunks)
EXACT_ROWS = 20_000
_FILES = ("chunks.parquet", "vectors.npy", "graph.usearch", "embedder.pkl")


@dataclass
class LoadedIndex:
    """One index version in memory: chunks, vectors (memory-mapped), graph, embedder."""

    record: LLMRecord
    chunks: pa.Table
    vectors: np.ndarray
    graph: Any
    embedder: FittedEmbedder
    licences: np.ndarray = field(default_factory=lambda: np.empty(0, object))

    @property
    def identity(self) -> str:
        return f"index/{self.record.name}/{self.record.version}"


@dataclass(frozen=True)
class Hit:
    chunk_id: str
    doc_id: str
    doc_hash: str
    license: str
    score: float
    text: str
    source_uri: str
    metadata: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id,
            "doc_id": self.doc_id,
            "doc_hash": self.doc_hash,
            "license": self.license,
            "score": self.score,
            "text": self.text,
            "source_uri": self.source_uri,
            "metadata": self.metadata,
        }


def index_key(
    corpus_identity: str, content: str, chunker: str, embedder: str, params: Mapping[str, Any]
) -> str:
    """``ix1:`` digest of what an index version is made of."""
    text = json.dumps([corpus_identity, content, chunker, embedder, dict(params)], sort_keys=True)
    return "ix1:" + hashlib.sha256(text.encode()).hexdigest()[:16]


class IndexService:
    """Build, open, search, point and roll back embedding indexes."""

    def __init__(
        self,
        *,
        registry: RegistryBackend,
        corpora: CorpusService,
        repo: Path,
        licenses: Mapping[str, Sequence[str]],
    ) -> None:
        self.registry = registry
        self.corpora = corpora
        self.root = repo / STATE_DIR / "llm" / "indexes"
        self.licenses = license_table(licenses)
        #: chunkers this process knows by hash (a rebuild after a forget needs the function)
        self.chunkers: dict[str, Chunker] = {DEFAULT_CHUNKER.hash: DEFAULT_CHUNKER}
        self._open: dict[tuple[str, int], LoadedIndex] = {}
        self._lock = threading.Lock()

    # -- chunkers ---------------------------------------------------------------------------
    def register_chunker(self, chunker: Chunker) -> LLMRecord:
        """Record a chunker (its code hash and parameters); again only when its hash changed."""
        self.chunkers[chunker.hash] = chunker
        known = self.registry.llm_records("chunker", chunker.name)
        if known and known[-1].body["hash"] == chunker.hash:
            return known[-1]
        body = {
            "hash": chunker.hash,
            "code_hash": chunker.code_hash,
            "params": dict(chunker.params),
            "function": f"{chunker.fn.__module__}.{chunker.fn.__qualname__}",
        }
        return self.registry.add_llm_record(
            "chunker",
            chunker.name,
            body,
            user=current_user(),
            action="chunker-register",
            details={"hash": chunker.hash},
        )

    # -- build ------------------------------------------------------------------------------
    def build(
        self,
        name: str,
        corpus: str,
        *,
        corpus_version: int | None = None,
        chunker: Chunker | None = None,
        embedder: Embedder | None = None,
        params: HNSWParams | None = None,
        activate: bool = True,
        note: str = "",
    ) -> LLMRecord:
        """Build a new version of index ``name`` over a corpus version (latest by default);
        ``activate`` points the index at it (else it waits for `promote`)."""
        chunker = chunker or DEFAULT_CHUNKER
        embed_with: Embedder = embedder or HashingSVD()
        params = params or HNSWParams()
        start = time.perf_counter()
        self.register_chunker(chunker)
        versions = self.corpora.versions(corpus)
        if not versions:
            raise NotFoundError(f"corpus {corpus} has no documents yet; add some first")
        cv = (
            versions[-1]
            if corpus_version is None
            else next((v for v in versions if v.version == corpus_version), None)
        )
        if cv is None:
            raise NotFoundError(
                f"corpus {corpus} has no version {corpus_version}; it has "
                f"{[v.version for v in versions]}"
            )
        docs = self.corpora.documents(corpus, version=cv.version)
        chunks = chunk_documents(docs, chunker)
        texts = chunks.column("text").to_pylist()
        if not texts:
            raise DataError(f"corpus {corpus} v{cv.version}: the chunker made no chunks")
        fitted = embed_with.fit(texts)
        vectors = np.vstack(
            [fitted.embed(texts[i : i + 8192]) for i in range(0, len(texts), 8192)]
        ).astype(np.float32)
        build_id = uuid.uuid4().hex[:16]
        (self.root / name).mkdir(parents=True, exist_ok=True)
        _remove_dead_builds(self.root / name)
        tmp = self.root / name / f".tmp-{socket.gethostname()}-{os.getpid()}-{build_id}"
        tmp.mkdir()
        try:
            pq.write_table(chunks, tmp / "chunks.parquet")
            np.save(tmp / "vectors.npy", vectors)
            build_hnsw(vectors, tmp / "graph.usearch", params)
            (tmp / "embedder.pkl").write_bytes(fitted.dumps())
            for f in _FILES:
                fsync_file(tmp / f)
            checksums = {f: artifact_sha256(tmp / f) for f in _FILES}
            final = self.root / name / build_id
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        identity = str(cv.identity)
        body = {
            "corpus": corpus,
            "corpus_version": cv.version,
            "corpus_identity": identity,
            "corpus_content": str(cv.content),
            "chunker": {"name": chunker.name, "hash": chunker.hash},
            "embedder": {
                "name": fitted.name,
                "hash": fitted.hash,
                "dim": fitted.dim,
                "spec": _embedder_spec(embed_with),
            },
            "params": params.to_dict(),
            "key": "",
            "folder": build_id,
            "files": checksums,
            "chunks": chunks.num_rows,
            "documents": docs.num_rows,
            "build_seconds": round(time.perf_counter() - start, 3),
            "note": note,
        }
        body["key"] = index_key(
            identity, body["corpus_content"], chunker.hash, fitted.hash, params.to_dict()
        )
        record = self.registry.add_llm_record(
            "index",
            name,
            body,
            user=current_user(),
            action="index-build",
            details={"corpus": identity, "key": body["key"], "chunks": chunks.num_rows},
        )
        if activate:
            self.point(name, record.version, action="build", reason=note or "built")
        return record

    # -- versions and the pointer -----------------------------------------------------------
    def versions(self, name: str) -> list[LLMRecord]:
        return self.registry.llm_records("index", name)

    def names(self) -> list[str]:
        return sorted({r.name for r in self.registry.llm_records("index")})

    def record(self, name: str, version: int | None = None) -> LLMRecord:
        """An index version's record: ``version``, else the one its pointer names."""
        if version is None:
            version = self.current(name)
        found = self.registry.llm_records("index", name, version=version)
        if not found:
            known = [r.version for r in self.versions(name)]
            raise NotFoundError(
                f"index {name!r} has no version {version}; known: {known or 'none'} "
                "(build one with store.llm.build_index)"
            )
        return found[0]

    def current(self, name: str) -> int:
        moves = self.registry.llm_records("index-pointer", name)
        if not moves:
            raise NotFoundError(
                f"index {name!r} serves no version; build one (store.llm.build_index) or "
                "promote a built one"
            )
        return int(moves[-1].body["version"])

    def point(self, name: str, version: int, *, action: str, reason: str) -> LLMRecord:
        """Move the pointer of index ``name`` to ``version`` (recorded and audited)."""
        self.record(name, version)
        previous = None
        if self.registry.llm_records("index-pointer", name):
            previous = self.current(name)
        body = {"version": version, "previous": previous, "action": action, "reason": reason}
        return self.registry.add_llm_record(
            "index-pointer",
            name,
            body,
            user=current_user(),
            action=f"index-{action}",
            details={"index": f"index/{name}/{version}", "previous": previous, "reason": reason},
        )

    def rollback(self, name: str, *, to: int | None = None, reason: str) -> LLMRecord:
        """Point index ``name`` back at ``to`` (by default the version served before now)."""
        if not reason.strip():
            raise DataError("a rollback needs a reason (it goes into the audit log)")
        if to is None:
            served = self.current(name)  # an unknown index fails here, saying so
            moves = self.registry.llm_records("index-pointer", name)
            earlier = [m.body["version"] for m in moves if m.body["version"] != served]
            if not earlier:
                raise NotFoundError(f"index {name!r} has served no other version to roll back to")
            to = int(earlier[-1])
        return self.point(name, to, action="rollback", reason=reason)

    # -- open and search --------------------------------------------------------------------
    def open(self, name: str, version: int | None = None) -> LoadedIndex:
        """An index version, loaded once per process after its files' checksums pass."""
        record = self.record(name, version)
        key = (name, record.version)
        with self._lock:
            hit = self._open.get(key)
            if hit is not None:
                return hit
            folder = self.root / name / record.body["folder"]
            for f, digest in record.body["files"].items():
                path = folder / f
                if not path.exists() or artifact_sha256(path) != digest:
                    raise IntegrityError(
                        f"index/{name}/{record.version}: file {path} is missing or its "
                        "SHA-256 differs from the recorded one; rebuild the index "
                        "(store.llm.build_index) or roll back to another version"
                    )
            chunks = pq.read_table(folder / "chunks.parquet")
            loaded = LoadedIndex(
                record,
                chunks,
                np.load(folder / "vectors.npy", mmap_mode="r"),
                open_hnsw(folder / "graph.usearch", record.body["params"]["expansion_search"]),
                load_embedder((folder / "embedder.pkl").read_bytes()),
                np.asarray(chunks.column("license").to_pylist(), dtype=object),
            )
            self._open[key] = loaded
            return loaded

    def allowed(
        self,
        index: LoadedIndex,
        where: Mapping[str, Any] | None,
        use: str | None,
        include_pii: bool,
    ) -> np.ndarray | None:
        """The rows a search may return (None: all): metadata filters, PII, licence use."""
        chunks = index.chunks
        mask = np.ones(chunks.num_rows, dtype=bool)
        for key, value in (where or {}).items():
            column = key if key in chunks.column_names else META + key
            if column not in chunks.column_names:
                mask[:] = False  # no chunk has that metadata key
                continue
            values = value if isinstance(value, list | tuple | set) else [value]
            hit = pc.is_in(chunks.column(column), value_set=pa.array([str(v) for v in values]))
            mask &= np.asarray(pc.fill_null(hit, False).to_numpy(zero_copy_only=False))
        if not include_pii:
            mask &= np.asarray(
                pc.equal(chunks.column("pii"), "none").to_numpy(zero_copy_only=False)
            )
        if use is not None:
            ok = {lic for lic, uses in self.licenses.items() if use in uses}
            mask &= np.fromiter((lic.lower() in ok for lic in index.licences), bool, len(mask))
        return None if mask.all() else mask

    def search(
        self,
        name: str,
        query: str,
        *,
        k: int = 5,
        version: int | None = None,
        where: Mapping[str, Any] | None = None,
        use: str | None = None,
        include_pii: bool = False,
        exact: bool = False,
    ) -> tuple[LoadedIndex, list[Hit]]:
        """The ``k`` chunks nearest to ``query`` that pass the filters. Chunks with personal
        data (``pii`` other than "none") are left out unless ``include_pii``; ``use`` keeps
        only chunks whose licence allows it."""
        if k < 1:
            raise DataError(f"k must be at least 1, got {k}")
        index = self.open(name, version)
        q = index.embedder.embed([query])[0]
        mask = self.allowed(index, where, use, include_pii)
        n = len(index.vectors)
        if exact:
            rows = None if mask is None else np.flatnonzero(mask)
            keys, dist = exact_search(index.vectors, q, k, rows)
        elif mask is None:
            keys, dist = hnsw_search(index.graph, q, k)
        elif mask.mean() < EXACT_BELOW or mask.sum() <= EXACT_ROWS:
            keys, dist = exact_search(index.vectors, q, k, np.flatnonzero(mask))
        else:
            # ask the graph for more neighbours than k, twice at most: when the filter
            # keeps rows far from the query (another topic), a wider graph search costs
            # more than an exact scan of the kept rows (docs/benchmarks.md, issue 15)
            want = int(np.ceil(k / mask.mean() * 2))
            for _ in range(2):
                keys, dist = hnsw_search(index.graph, q, min(want, n))
                keep = mask[keys]
                if keep.sum() >= k or want >= n:
                    keys, dist = keys[keep][:k], dist[keep][:k]
                    break
                want *= 4
            else:
                keys, dist = exact_search(index.vectors, q, k, np.flatnonzero(mask))
        return index, [self._hit(index, int(r), float(d)) for r, d in zip(keys, dist, strict=True)]

    @staticmethod
    def _hit(index: LoadedIndex, row: int, distance: float) -> Hit:
        c = index.chunks.slice(row, 1).to_pylist()[0]
        meta = {k[len(META) :]: v for k, v in c.items() if k.startswith(META) and v is not None}
        return Hit(
            c["chunk_id"],
            c["doc_id"],
            c["doc_hash"],
            c["license"],
            round(1.0 - distance, 6),
            c["text"],
            c["source_uri"],
            meta,
        )

    def exact_neighbours(
        self, name: str, query: str, k: int, version: int | None = None
    ) -> list[int]:
        index = self.open(name, version)
        keys, _ = exact_search(index.vectors, index.embedder.embed([query])[0], k)
        return [int(r) for r in keys]

    def containing(self, name: str, version: int, doc_ids: Sequence[str]) -> list[str]:
        """Which of ``doc_ids`` have chunks in this index version (read from its files)."""
        record = self.record(name, version)
        path = self.root / name / record.body["folder"] / "chunks.parquet"
        if not path.exists():
            return []
        ids = pq.read_table(path, columns=["doc_id"]).column("doc_id")
        found = pc.unique(ids.filter(pc.is_in(ids, value_set=pa.array(list(doc_ids), pa.string()))))
        return sorted(found.to_pylist())


def _embedder_spec(embedder: Embedder) -> dict[str, Any]:
    """What rebuilding needs to refit the default embedder (others are reused as fitted)."""
    if isinstance(embedder, HashingSVD):
        return {
            "type": "hashing-svd",
            "dim": embedder.dim,
            "n_features": embedder.n_features,
            "ngram_range": list(embedder.ngram_range),
            "fit_sample": embedder.fit_sample,
            "seed": embedder.seed,
        }
    return {"type": "fitted"}


def _remove_dead_builds(folder: Path) -> None:
    """Remove what builds killed on this host left (``.tmp-HOST-PID-ID`` of a dead PID)."""
    host = socket.gethostname()
    for tmp in folder.glob(".tmp-*"):
        parts = tmp.name.removeprefix(".tmp-").rsplit("-", 2)
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
            continue
        try:
            os.kill(int(parts[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except PermissionError:  # alive, another user's
            pass
