"""The vector index: exact search against a plain reference, HNSW recall, atomic files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from featureledger.llm.evaluate import LLMGates, judge, recall_at_k
from featureledger.llm.vector import HNSWParams, build_hnsw, exact_search, hnsw_search, open_hnsw


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    v = rng.normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 40), st.integers(1, 10), st.integers(0, 2**16), st.booleans())
def test_exact_search_matches_sorting_every_distance(
    n: int, k: int, seed: int, subset: bool
) -> None:
    rng = np.random.default_rng(seed)
    vectors, q = _unit(rng, n, 8), _unit(rng, 1, 8)[0]
    rows = np.sort(rng.choice(n, size=max(1, n // 2), replace=False)) if subset else None
    keys, dist = exact_search(vectors, q, k, rows)
    candidates = list(range(n)) if rows is None else list(rows)
    reference = sorted(candidates, key=lambda r: (1 - float(vectors[r] @ q), r))[:k]
    # float ties may order differently; the distances must agree
    ref_dist = [1 - float(vectors[r] @ q) for r in reference]
    np.testing.assert_allclose(dist, ref_dist, atol=1e-5)
    assert set(keys.tolist()) <= set(candidates)


def test_the_graph_finds_most_exact_neighbours_and_is_written_whole(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = _unit(rng, 2000, 32)
    path = tmp_path / "graph.usearch"
    build_hnsw(vectors, path, HNSWParams())
    assert [p.name for p in tmp_path.iterdir()] == ["graph.usearch"]  # no temporary left
    graph = open_hnsw(path, 64)
    got, want = [], []
    for q in _unit(rng, 50, 32):
        got.append([str(k) for k in hnsw_search(graph, q, 10)[0]])
        want.append([str(k) for k in exact_search(vectors, q, 10)[0]])
    assert recall_at_k(got, want, 10) >= 0.9


def test_recall_and_gates() -> None:
    assert recall_at_k([["a", "b", "c"]], [["a", "c", "z"]], 2) == 0.5
    assert recall_at_k([["a"], ["b"]], [["a"], []], 1) == 1.0  # no relevant items: skipped
    base = {"recall": 0.8, "p50_ms": 2.0, "tokens": 100.0}
    assert judge(base, base, LLMGates()).passed
    worse = judge({"recall": 0.7, "p50_ms": 5.0, "tokens": 200.0}, base, LLMGates())
    assert not worse.passed and len(worse.problems) == 3
    assert judge({"recall": 0.1, "p50_ms": 1, "tokens": 1}, None, LLMGates(min_recall=0.5)).problems
