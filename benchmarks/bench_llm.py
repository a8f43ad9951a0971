"""Embedding index benchmark (issue 15, docs/llm.md): build throughput, search latency and
recall@10 of featureledger's usearch HNSW index against exact search on the same vectors.

    python benchmarks/bench_llm.py [--chunks 100000] [--queries 300] [--json OUT]

Data: ``--chunks`` synthetic documents of 40-80 words, one chunk each (the chunker's window
is wider than any document): a third from one of 20 topics (150 words each), a third from
one of 100 subtopics of that topic (20 words each), a third from a Zipf-distributed common
vocabulary; so each document has ~``chunks``/2000 close neighbours (its subtopic) inside a
wider cluster (its topic). Queries: 2 topic words and 2-4 words of one subtopic, seeded.

Figures, all in one run on the same index version:

    build             store.llm.build_index: read the corpus version, chunk, fit and
                      embed, build the HNSW graph, write, fsync and checksum its files,
                      record it (chunks per second); and its parts measured again alone
    search            store.llm.search without a trace (p50/p99), with a trace (one
                      registry row per search), with a 5 % metadata filter
    baseline          the same searches with exact=True: a full scan of the vectors
                      (numpy matrix-vector product and argpartition)
    recall@10         HNSW top-10 rows against the exact top-10 rows of the same query
                      vector, averaged over the queries, at the default expansion_search
                      (64) and at 256, with the graph search's own latency at each
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_facts, summarize_us

from featureledger import FeatureStore
from featureledger.llm import HashingSVD, chunk_documents
from featureledger.llm.chunking import Chunker, word_windows
from featureledger.llm.vector import (
    HNSWParams,
    build_hnsw,
    exact_search,
    hnsw_search,
    open_hnsw,
)

TOPICS = 20
SUBTOPICS = 100
WHOLE = Chunker("whole", word_windows, {"size": 200, "overlap": 0})


def documents(n: int, seed: int) -> list[dict[str, object]]:
    rnd = random.Random(seed)
    common = [f"c{i}" for i in range(3000)]
    weights = [1 / (i + 1) for i in range(len(common))]
    out = []
    for i in range(n):
        t, s = i % TOPICS, (i // TOPICS) % SUBTOPICS
        size = rnd.randint(40, 80)
        own = rnd.choices(_topic(t), k=size // 3) + rnd.choices(_subtopic(t, s), k=size // 3)
        words = own + rnd.choices(common, weights, k=size - len(own))
        rnd.shuffle(words)
        out.append(
            {
                "doc_id": f"d{i:07d}",
                "text": " ".join(words),
                "license": "cc-by-4.0",
                "metadata": {"topic": f"topic{t}"},
            }
        )
    return out


def _topic(t: int) -> list[str]:
    return [f"t{t}w{i}" for i in range(150)]


def _subtopic(t: int, s: int) -> list[str]:
    return [f"t{t}s{s}w{i}" for i in range(20)]


def queries(n: int, seed: int) -> list[str]:
    rnd = random.Random(seed + 1)
    out = []
    for _ in range(n):
        t, s = rnd.randrange(TOPICS), rnd.randrange(SUBTOPICS)
        words = rnd.choices(_topic(t), k=2) + rnd.choices(_subtopic(t, s), k=rnd.randint(2, 4))
        out.append(" ".join(words))
    return out


def timed(call: object, items: list[object]) -> dict[str, float]:
    samples = []
    for item in items:
        start = time.perf_counter_ns()
        call(item)  # type: ignore[operator]
        samples.append((time.perf_counter_ns() - start) / 1000)
    s = summarize_us(samples)
    return {
        "p50_ms": s["p50_us"] / 1000,
        "p99_ms": s["p99_us"] / 1000,
        "mean_ms": s["mean_us"] / 1000,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    result: dict[str, object] = {"chunks": args.chunks, "queries": args.queries}
    with tempfile.TemporaryDirectory(prefix="bench-llm-") as tmp:
        docs = documents(args.chunks, args.seed)
        store = FeatureStore.init(Path(tmp) / "repo")
        store.llm.create_corpus("docs")
        t0 = time.perf_counter()
        store.llm.add_documents("docs", docs)
        result["corpus_write_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        record = store.llm.build_index("kb", "docs", chunker=WHOLE)
        build_s = time.perf_counter() - t0
        assert record.body["chunks"] == args.chunks, record.body["chunks"]
        result["build_s"] = round(build_s, 2)
        result["build_chunks_per_s"] = round(args.chunks / build_s)

        # the build's parts again, alone, on the same chunks
        table = chunk_documents(store.llm.documents("docs"), WHOLE)
        texts = table.column("text").to_pylist()
        t0 = time.perf_counter()
        fitted = HashingSVD().fit(texts)
        result["part_fit_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        vectors = fitted.embed(texts)
        result["part_embed_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        build_hnsw(vectors, Path(tmp) / "alone.usearch", HNSWParams())
        result["part_hnsw_s"] = round(time.perf_counter() - t0, 2)
        del table, texts, vectors

        qs: list[object] = list(queries(args.queries, args.seed))
        llm = store.llm
        llm.search("kb", "warm up", trace=False)  # load the files once
        result["search_hnsw"] = timed(lambda q: llm.search("kb", q, k=10, trace=False), qs)
        result["search_hnsw_traced"] = timed(lambda q: llm.search("kb", q, k=10), qs)
        flt = {"topic": "topic3"}
        result["search_filtered_5pct"] = timed(
            lambda q: llm.search("kb", q, k=10, where=flt, trace=False), qs
        )
        idx = llm.indexes
        result["baseline_exact"] = timed(lambda q: idx.search("kb", q, k=10, exact=True), qs)

        loaded = idx.open("kb")
        graph_file = store.repo / ".featureledger" / "llm" / "indexes" / "kb"
        graph_file = graph_file / loaded.record.body["folder"] / "graph.usearch"
        for ef in (HNSWParams().expansion_search, 256):
            graph = open_hnsw(graph_file, ef)
            recalls = []
            for q in qs:
                v = loaded.embedder.embed([str(q)])[0]
                approx, _ = hnsw_search(graph, v, 10)
                exact, _ = exact_search(loaded.vectors, v, 10)
                recalls.append(len(set(approx.tolist()) & set(exact.tolist())) / 10)
            result[f"recall_at_10_ef{ef}"] = round(sum(recalls) / len(recalls), 4)
            result[f"hnsw_alone_ef{ef}"] = timed(
                lambda q, g=graph: hnsw_search(g, loaded.embedder.embed([str(q)])[0], 10), qs
            )
        store.close()
    h, b = result["search_hnsw"], result["baseline_exact"]
    result["speedup_p50_vs_exact"] = round(b["p50_ms"] / h["p50_ms"], 1)  # type: ignore[index]
    result["machine"] = machine_facts()
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
