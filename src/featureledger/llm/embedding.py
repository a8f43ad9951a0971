"""Embedding functions: pluggable, hashed, and the default that needs no download.

An `Embedder` is fitted on a corpus's chunks and gives a `FittedEmbedder`, whose hash
names the code, the parameters and the fitted state, so an index version says exactly
which function made its vectors. The default, `HashingSVD`, is scikit-learn's
HashingVectorizer, TF-IDF weights and TruncatedSVD (latent semantic analysis) fitted on the
corpus: no model file to fetch. Bring another model with `FunctionEmbedder`
(sentence-transformers, an API): its hash is the code hash of the function.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from featureledger.definitions.code import function_hash


@runtime_checkable
class FittedEmbedder(Protocol):
    """A ready embedding function: ``embed`` gives unit-length float32 rows."""

    name: str
    dim: int

    @property
    def hash(self) -> str: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...

    def dumps(self) -> bytes:
        """The fitted state, to store beside the index and load with `pickle`."""
        ...


@runtime_checkable
class Embedder(Protocol):
    @property
    def name(self) -> str: ...

    def fit(self, texts: Sequence[str]) -> FittedEmbedder: ...


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms == 0, 1, norms)


@dataclass
class _FittedLSA:
    """The fitted state of `HashingSVD`, kept small: the SVD's components are zero on every
    hash bucket the fitting chunks never used, so only the used buckets are stored."""

    name: str
    dim: int
    params: dict[str, Any]
    #: used hash buckets (sorted), their IDF weights and the components restricted to them
    used: np.ndarray
    idf: np.ndarray
    components: np.ndarray
    _hash: str = ""
    #: components.T as one C-ordered float64 block: scipy copies anything else per product
    _projection: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def hash(self) -> str:
        if not self._hash:
            digest = hashlib.sha256(self.dumps()).hexdigest()[:16]
            self._hash = f"em1:{self.name}:{digest}"
        return self._hash

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        # TF-IDF as scikit-learn's TfidfTransformer(sublinear_tf=True) computes it, then the
        # SVD projection; tests/llm check it against that pipeline
        counts = self._restrict(_vectorizer(self.params).transform(list(texts)).tocsr())
        counts.data = (1.0 + np.log(counts.data)) * self.idf[counts.indices]
        norms = np.sqrt(np.asarray(counts.multiply(counts).sum(axis=1)).ravel())
        counts = counts.multiply(1.0 / np.where(norms == 0, 1.0, norms)[:, None]).tocsr()
        if self._projection is None:
            # float64 like the TF-IDF weights, or scipy would upcast a copy per product
            self._projection = np.ascontiguousarray(self.components.T, dtype=np.float64)
        return _unit(counts @ self._projection)

    def _restrict(self, m: Any) -> Any:
        """``m[:, used]``, by a binary search per stored entry: scipy's column indexing
        allocates arrays as wide as all hash buckets, which dominated a one-query embed."""
        from scipy.sparse import csr_matrix

        m.sum_duplicates()
        pos = np.searchsorted(self.used, m.indices)
        known = pos < len(self.used)
        known[known] = self.used[pos[known]] == m.indices[known]
        rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))[known]
        return csr_matrix((m.data[known], (rows, pos[known])), shape=(m.shape[0], len(self.used)))

    def dumps(self) -> bytes:
        buf = io.BytesIO()
        np.savez(
            buf,
            meta=np.frombuffer(
                json.dumps({"name": self.name, "dim": self.dim, "params": self.params}).encode(),
                dtype=np.uint8,
            ),
            used=self.used,
            idf=self.idf,
            components=self.components,
        )
        return b"LSA1" + buf.getvalue()


def _vectorizer(params: dict[str, Any]) -> Any:
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(
        n_features=params["n_features"],
        alternate_sign=False,
        norm=None,
        ngram_range=tuple(params["ngram_range"]),
    )


@dataclass(frozen=True)
class HashingSVD:
    """The default embedder: hashed words, TF-IDF, TruncatedSVD to ``dim`` (LSA).

    ``fit_sample`` bounds the chunks the SVD is fitted on (the first ones, so the sample
    is deterministic); every chunk is still embedded."""

    name: str = "hashing-svd"
    dim: int = 128
    n_features: int = 2**18
    ngram_range: tuple[int, int] = (1, 1)
    fit_sample: int = 20_000
    seed: int = 0

    def fit(self, texts: Sequence[str]) -> FittedEmbedder:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfTransformer

        params = {
            "n_features": self.n_features,
            "ngram_range": list(self.ngram_range),
            "seed": self.seed,
        }
        sample = list(texts[: self.fit_sample])
        counts = _vectorizer(params).transform(sample).tocsc()
        used = np.flatnonzero(np.diff(counts.indptr))  # buckets some chunk uses
        counts = counts[:, used]
        tfidf = TfidfTransformer(sublinear_tf=True).fit(counts)
        weighted = tfidf.transform(counts)
        dim = max(1, min(self.dim, weighted.shape[0] - 1, weighted.shape[1] - 1))
        from threadpoolctl import threadpool_limits  # a dependency of scikit-learn

        # one BLAS thread: the SVD's dense blocks are small, and OpenBLAS threads spinning
        # on a busy machine made the fit ten times slower (docs/llm.md#embedding-indexes)
        with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
            # a tiny corpus has no variance to explain; the components are still usable
            warnings.simplefilter("ignore", RuntimeWarning)
            svd = TruncatedSVD(dim, random_state=self.seed, n_iter=5).fit(weighted)
        return _FittedLSA(
            self.name,
            dim,
            params,
            used.astype(np.int64),
            tfidf.idf_.astype(np.float64),
            svd.components_.astype(np.float32),
        )


@dataclass
class FunctionEmbedder:
    """A user's embedding function ``fn(texts) -> array (n, dim)``, needing no fitting;
    hashed by its code (`function_hash`) and ``version`` (say which model weights)."""

    name: str
    fn: Callable[[list[str]], Any]
    dim: int
    version: str = ""
    _fitted: bool = field(default=False, repr=False)

    def fit(self, texts: Sequence[str]) -> FittedEmbedder:
        return self

    @property
    def hash(self) -> str:
        text = json.dumps([function_hash(self.fn).value, self.version, self.dim])
        return f"em1:{self.name}:" + hashlib.sha256(text.encode()).hexdigest()[:16]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return _unit(np.asarray(self.fn(list(texts))))

    def dumps(self) -> bytes:
        return pickle.dumps(self, protocol=4)


def load_embedder(raw: bytes) -> FittedEmbedder:
    """A fitted embedder from `FittedEmbedder.dumps` (only files the store wrote itself:
    pickle runs code, so an index's files are checked against their SHA-256 first)."""
    if raw.startswith(b"LSA1"):  # plain arrays: no code runs on load
        arrays = np.load(io.BytesIO(raw[4:]), allow_pickle=False)
        meta = json.loads(arrays["meta"].tobytes())
        return _FittedLSA(
            meta["name"],
            meta["dim"],
            meta["params"],
            arrays["used"],
            arrays["idf"],
            arrays["components"],
        )
    state = pickle.loads(raw)
    assert isinstance(state, FittedEmbedder)
    return state
