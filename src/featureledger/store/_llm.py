"""`store.llm`: corpora, indexes, retrieval traces, lineage and impact, the right to be
forgotten, fine-tuning sets and release gates, in one namespace (docs/llm.md)."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from featureledger.config import STATE_DIR
from featureledger.contracts.licenses import license_problems
from featureledger.errors import DataError, GateError, LicenseError, NotFoundError
from featureledger.hashing import artifact_sha256
from featureledger.llm.chunking import Chunker
from featureledger.llm.documents import CorpusContract
from featureledger.llm.embedding import Embedder, HashingSVD
from featureledger.llm.evaluate import GateResult, LLMGates, count_tokens, judge, recall_at_k
from featureledger.llm.vector import HNSWParams
from featureledger.registry import DataVersion, LLMRecord, RegistryBackend
from featureledger.store._corpora import CorpusService, CorpusWrite
from featureledger.store._indexes import Hit, IndexService
from featureledger.versioning.provenance import current_user


@dataclass(frozen=True)
class SearchResult:
    """Hits of one search, the index version that served them, and the trace recorded."""

    index: str
    hits: list[Hit]
    latency_ms: float
    trace: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "hits": [h.to_dict() for h in self.hits],
            "latency_ms": self.latency_ms,
            "trace": self.trace,
        }


@dataclass
class ForgetReport:
    """What a right-to-be-forgotten request did and touched."""

    corpus_version: str
    documents: list[str]
    indexes_rebuilt: list[str] = field(default_factory=list)
    indexes_needing_rebuild: list[str] = field(default_factory=list)
    traces: list[str] = field(default_factory=list)
    finetune_sets: list[str] = field(default_factory=list)
    note: str = (
        "older corpus and index versions still hold the documents until `vacuum` of the "
        "corpus and removal of the old index folders"
    )


class LLMService:
    """The ``store.llm`` namespace."""

    def __init__(
        self,
        *,
        registry: RegistryBackend,
        corpora: CorpusService,
        indexes: IndexService,
        repo: Path,
    ) -> None:
        self.registry = registry
        self.corpora = corpora
        self.indexes = indexes
        self.root = repo / STATE_DIR / "llm"

    # -- corpora ----------------------------------------------------------------------------
    def create_corpus(
        self,
        name: str,
        *,
        contract: CorpusContract | None = None,
        licenses: Sequence[str] = (),
        description: str = "",
        owner: str = "",
    ) -> None:
        """Create a corpus (a static feature group keyed by doc_id) with its contract."""
        self.corpora.create(
            name, contract=contract, licenses=licenses, description=description, owner=owner
        )

    def add_documents(self, corpus: str, documents: Any, *, note: str = "") -> CorpusWrite:
        return self.corpora.add(corpus, documents, note=note)

    def documents(self, corpus: str, *, version: int | None = None) -> pa.Table:
        return self.corpora.documents(corpus, version=version)

    def corpus_versions(self, corpus: str) -> list[DataVersion]:
        return self.corpora.versions(corpus)

    def diff_corpus(self, corpus: str, old: int, new: int | None = None) -> dict[str, list[str]]:
        return self.corpora.diff(corpus, old, new)

    # -- indexes ----------------------------------------------------------------------------
    def register_chunker(self, chunker: Chunker) -> LLMRecord:
        return self.indexes.register_chunker(chunker)

    def build_index(
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
        return self.indexes.build(
            name,
            corpus,
            corpus_version=corpus_version,
            chunker=chunker,
            embedder=embedder,
            params=params,
            activate=activate,
            note=note,
        )

    def index_versions(self, name: str) -> list[LLMRecord]:
        return self.indexes.versions(name)

    def current_index(self, name: str) -> int:
        return self.indexes.current(name)

    def rollback_index(self, name: str, *, to: int | None = None, reason: str) -> LLMRecord:
        """Point index ``name`` back at version ``to`` (default: the one served before)."""
        return self.indexes.rollback(name, to=to, reason=reason)

    def search(
        self,
        index: str,
        query: str,
        *,
        k: int = 5,
        version: int | None = None,
        where: Mapping[str, Any] | None = None,
        use: str | None = None,
        include_pii: bool = False,
        prompt_template: str = "",
        trace: bool = True,
        guardrail: str = "none",
        user: str | None = None,
    ) -> SearchResult:
        """Top-``k`` chunks of the index version its pointer names (or ``version``),
        recorded as a retrieval trace unless ``trace=False``."""
        self.indexes.open(index, version)  # loading files is not the search's latency
        start = time.perf_counter()
        loaded, hits = self.indexes.search(
            index, query, k=k, version=version, where=where, use=use, include_pii=include_pii
        )
        latency = round((time.perf_counter() - start) * 1000, 3)
        trace_id = None
        if trace:
            trace_id = self._trace(
                index,
                {
                    "type": "retrieval",
                    "index": loaded.identity,
                    "index_key": loaded.record.body["key"],
                    "corpus": loaded.record.body["corpus_identity"],
                    "query": query,
                    "prompt_template": prompt_template,
                    "filters": {k: v for k, v in (where or {}).items()},
                    "use": use,
                    "hits": [_hit_ref(h) for h in hits],
                    "latency_ms": latency,
                    "tokens": {
                        "query": count_tokens(query),
                        "retrieved": sum(count_tokens(h.text) for h in hits),
                    },
                    "guardrail": guardrail,
                },
                user,
            )
        return SearchResult(loaded.identity, hits, latency, trace_id)

    def log_call(
        self,
        *,
        prompt_template: str,
        retrieval: SearchResult | None = None,
        model: str = "",
        input_tokens: int = 0,
        output_tokens: int = 0,
        latency_ms: float = 0.0,
        guardrail: str = "none",
        answer: str = "",
        user: str | None = None,
    ) -> str:
        """Record an LLM call the application made (after a search, or without one); the
        returned trace id is what `lineage` follows back to documents."""
        hits = [_hit_ref(h) for h in retrieval.hits] if retrieval else []
        index = retrieval.index.split("/")[1] if retrieval else "-"
        return self._trace(
            index,
            {
                "type": "llm-call",
                "index": retrieval.index if retrieval else None,
                "retrieval_trace": retrieval.trace if retrieval else None,
                "prompt_template": prompt_template,
                "model": model,
                "hits": hits,
                "latency_ms": latency_ms,
                "tokens": {"input": input_tokens, "output": output_tokens},
                "guardrail": guardrail,
                "answer_sha256": hashlib.sha256(answer.encode()).hexdigest() if answer else "",
            },
            user,
        )

    def _trace(self, index: str, body: dict[str, Any], user: str | None) -> str:
        body["id"] = uuid.uuid4().hex
        body["at"] = time.time()
        record = self.registry.add_llm_record(
            "trace", index, body, user=user or current_user(), action=None, details={}
        )
        return f"trace/{index}/{record.version}"

    def traces(self, index: str | None = None) -> list[LLMRecord]:
        return self.registry.llm_records("trace", index)

    def trace(self, ident: str) -> LLMRecord:
        try:
            _, name, number = ident.split("/")
            found = self.registry.llm_records("trace", name, version=int(number))
        except ValueError:
            found = []
        if not found:
            raise NotFoundError(f"no trace {ident!r}; traces are named trace/INDEX/N")
        return found[0]

    # -- lineage, impact, forgetting --------------------------------------------------------
    def lineage(self, trace: str) -> dict[str, Any]:
        """From an answer (a trace) back to the index version, corpus version, chunks,
        document versions and their licences."""
        body = self.trace(trace).body
        if body.get("retrieval_trace"):
            upstream = self.lineage(body["retrieval_trace"])
            upstream["trace"] = trace
            upstream["prompt_template"] = body["prompt_template"]
            return upstream
        return {
            "trace": trace,
            "prompt_template": body.get("prompt_template", ""),
            "index": body.get("index"),
            "corpus": body.get("corpus"),
            "chunks": [h["chunk_id"] for h in body["hits"]],
            "documents": sorted({(h["doc_id"], h["doc_hash"]) for h in body["hits"]}),
            "licenses": sorted({h["license"] for h in body["hits"]}),
        }

    def impact(self, corpus: str, doc_id: str) -> dict[str, list[str]]:
        """Index versions, traces and fine-tuning sets that used document ``doc_id``."""
        indexes = [
            f"index/{r.name}/{r.version}"
            for r in self.registry.llm_records("index")
            if r.body["corpus"] == corpus and self.indexes.containing(r.name, r.version, [doc_id])
        ]
        used = set(indexes)
        traces = [
            f"trace/{r.name}/{r.version}"
            for r in self.registry.llm_records("trace")
            if r.body.get("index") in used and any(h["doc_id"] == doc_id for h in r.body["hits"])
        ]
        finetunes = []
        for r in self.registry.llm_records("finetune-set"):
            if r.body["corpus"] != corpus:
                continue
            docs = self.corpora.documents(corpus, version=r.body["corpus_version"])
            if doc_id in set(docs.column("doc_id").to_pylist()):
                finetunes.append(f"finetune-set/{r.name}/{r.version}")
        return {"indexes": indexes, "traces": traces, "finetune_sets": finetunes}

    def forget(self, corpus: str, doc_ids: Iterable[str], *, reason: str) -> ForgetReport:
        """A right-to-be-forgotten request: a new corpus version without the documents, a
        new version of every index serving them (refitted, so they leave no trace in the
        embedding either), and the list of what had used them."""
        ids = sorted(set(doc_ids))
        if not reason.strip():
            raise DataError("forgetting documents needs a reason (it goes into the audit log)")
        affected = {d: self.impact(corpus, d) for d in ids}
        version = self.corpora.forget(corpus, ids, reason=reason)
        report = ForgetReport(str(version.identity), ids)
        report.traces = sorted({t for a in affected.values() for t in a["traces"]})
        report.finetune_sets = sorted({f for a in affected.values() for f in a["finetune_sets"]})
        for name in self.indexes.names():
            try:
                served = self.indexes.record(name)
            except NotFoundError:
                continue
            if served.body["corpus"] != corpus or not self.indexes.containing(
                name, served.version, ids
            ):
                continue
            chunker = self.indexes.chunkers.get(served.body["chunker"]["hash"])
            spec = served.body["embedder"]["spec"]
            if chunker is None or spec.get("type") != "hashing-svd":
                report.indexes_needing_rebuild.append(f"index/{name}/{served.version}")
                continue
            embedder = HashingSVD(
                name=served.body["embedder"]["name"],
                dim=spec["dim"],
                n_features=spec["n_features"],
                ngram_range=tuple(spec["ngram_range"]),
                fit_sample=spec["fit_sample"],
                seed=spec["seed"],
            )
            new = self.indexes.build(
                name,
                corpus,
                chunker=chunker,
                embedder=embedder,
                params=HNSWParams(**served.body["params"]),
                note=f"forget {ids}: {reason}",
            )
            report.indexes_rebuilt.append(f"index/{name}/{new.version}")
        self.registry.audit(
            current_user(),
            "forget",
            f"corpus/{corpus}",
            {
                "documents": ids,
                "reason": reason,
                "corpus_version": report.corpus_version,
                "indexes": report.indexes_rebuilt,
                "traces": len(report.traces),
                "finetune_sets": report.finetune_sets,
            },
        )
        return report

    # -- fine-tuning provenance -------------------------------------------------------------
    def finetune_set(
        self,
        name: str,
        corpus: str,
        *,
        use: str,
        corpus_version: int | None = None,
    ) -> LLMRecord:
        """A fine-tuning set over one corpus version, refused when a document's licence does
        not allow ``use`` (a non-commercial licence blocks a commercial model)."""
        versions = self.corpora.versions(corpus)
        cv = (
            versions[-1]
            if corpus_version is None
            else next((v for v in versions if v.version == corpus_version), None)
        )
        if cv is None:
            raise NotFoundError(f"corpus {corpus} has no version {corpus_version}")
        docs = self.corpora.documents(corpus, version=cv.version)
        lics = sorted(set(docs.column("license").to_pylist()))
        problems = license_problems({str(cv.identity): lics}, use, self.indexes.licenses)
        if problems:
            raise LicenseError(
                f"fine-tuning set {name} over {cv.identity} for use {use!r} refused: "
                + "; ".join(problems)
                + ". Remove those documents (a new corpus version) or choose another use."
            )
        folder = self.root / "finetune" / name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{uuid.uuid4().hex[:16]}.parquet"
        tmp = path.with_suffix(".tmp")
        pq.write_table(docs.select(["doc_id", "doc_hash", "text", "license"]), tmp)
        tmp.replace(path)
        body = {
            "corpus": corpus,
            "corpus_version": cv.version,
            "corpus_identity": str(cv.identity),
            "corpus_content": str(cv.content),
            "use": use,
            "licenses": lics,
            "documents": docs.num_rows,
            "path": str(path),
            "sha256": artifact_sha256(path),
        }
        return self.registry.add_llm_record(
            "finetune-set",
            name,
            body,
            user=current_user(),
            action="finetune-set",
            details={"corpus": str(cv.identity), "use": use, "licenses": lics},
        )

    def register_finetuned_model(
        self,
        name: str,
        *,
        finetune_set: str,
        artifact: str | Path,
        base_model: str,
        params: Mapping[str, Any] | None = None,
    ) -> LLMRecord:
        """Record a fine-tuned model with its pins: the set (hence corpus version and
        licences), the base model and the artifact's SHA-256."""
        set_name, _, number = finetune_set.removeprefix("finetune-set/").partition("/")
        found = self.registry.llm_records(
            "finetune-set", set_name, version=int(number) if number else None
        )
        if not found:
            raise NotFoundError(f"no fine-tuning set {finetune_set!r}")
        pinned = found[-1]
        body = {
            "finetune_set": f"finetune-set/{pinned.name}/{pinned.version}",
            "corpus_identity": pinned.body["corpus_identity"],
            "corpus_content": pinned.body["corpus_content"],
            "use": pinned.body["use"],
            "licenses": pinned.body["licenses"],
            "base_model": base_model,
            "artifact": str(artifact),
            "artifact_sha256": artifact_sha256(artifact),
            "params": dict(params or {}),
        }
        return self.registry.add_llm_record(
            "finetuned-model",
            name,
            body,
            user=current_user(),
            action="finetuned-model",
            details={"finetune_set": body["finetune_set"], "base_model": base_model},
        )

    # -- evaluation sets and release gates --------------------------------------------------
    def add_eval_set(self, name: str, queries: Sequence[Mapping[str, Any]]) -> LLMRecord:
        """A versioned evaluation set: ``[{"query": str, "relevant": [doc_id, ...]}]``."""
        items = [
            {"query": str(q["query"]), "relevant": sorted(map(str, q["relevant"]))} for q in queries
        ]
        if not items:
            raise DataError(f"evaluation set {name}: give at least one query")
        digest = hashlib.sha256(json.dumps(items, sort_keys=True).encode()).hexdigest()[:32]
        known = self.registry.llm_records("eval-set", name)
        if known and known[-1].body["sha256"] == digest:
            return known[-1]
        return self.registry.add_llm_record(
            "eval-set",
            name,
            {"items": items, "sha256": digest},
            user=current_user(),
            action="eval-set",
            details={"queries": len(items), "sha256": digest},
        )

    def evaluate(
        self,
        index: str,
        eval_set: str,
        *,
        version: int | None = None,
        k: int = 10,
        prompt_template: str = "",
    ) -> dict[str, float]:
        """recall@k over documents (the first k distinct documents of the retrieved
        chunks), p50 search latency and tokens of the chunks read per query, of an index
        version on the latest version of an evaluation set."""
        sets = self.registry.llm_records("eval-set", eval_set)
        if not sets:
            raise NotFoundError(f"no evaluation set {eval_set!r}; add one with add_eval_set")
        items = sets[-1].body["items"]
        got, want, times, tokens = [], [], [], []
        # load the files and warm the caches first: the gate compares steady-state latency
        self.indexes.search(index, items[0]["query"], k=k, version=version)
        for item in items:
            text = f"{prompt_template}{item['query']}" if prompt_template else item["query"]
            t0 = time.perf_counter()
            # a document has several chunks: ask for more, keep the first k documents
            _, hits = self.indexes.search(index, text, k=4 * k, version=version)
            times.append((time.perf_counter() - t0) * 1000)
            docs: list[str] = []
            used = 0
            for h in hits:
                if h.doc_id not in docs:
                    if len(docs) == k:
                        break
                    docs.append(h.doc_id)
                used += count_tokens(h.text)
            got.append(docs)
            want.append(item["relevant"])
            tokens.append(used)
        return {
            "recall": round(recall_at_k(got, want, k), 6),
            "p50_ms": round(float(np.percentile(times, 50)), 3),
            "tokens": float(np.mean(tokens)),
            "eval_set_version": float(sets[-1].version),
        }

    def gate(
        self,
        index: str,
        candidate: int,
        eval_set: str,
        *,
        gates: LLMGates | None = None,
    ) -> GateResult:
        """Compare a candidate index version with the one served now."""
        gates = gates or LLMGates()
        cand = self.evaluate(index, eval_set, version=candidate, k=gates.k)
        try:
            current = self.indexes.current(index)
        except NotFoundError:
            current = None
        base = None
        if current is not None and current != candidate:
            base = self.evaluate(index, eval_set, version=current, k=gates.k)
        return judge(cand, base, gates)

    def promote(
        self,
        index: str,
        candidate: int,
        eval_set: str,
        *,
        gates: LLMGates | None = None,
        reason: str = "",
        force: bool = False,
    ) -> GateResult:
        """Point the index at ``candidate`` if it passes the gates (refused otherwise,
        unless ``force``, which is recorded with the failures)."""
        result = self.gate(index, candidate, eval_set, gates=gates)
        if not result.passed and not force:
            # the pointer did not move: the index keeps serving what it served
            raise GateError(
                f"index/{index}/{candidate}",
                [{"gate": "index", "detail": p} for p in result.problems],
            )
        why = reason or "gates passed"
        if not result.passed:  # a forced promotion keeps the failures it overrode
            why = f"{reason or 'forced'}; forced over: " + "; ".join(result.problems)
        self.indexes.point(index, candidate, action="promote", reason=why)
        return result


def _hit_ref(h: Hit) -> dict[str, Any]:
    return {
        "chunk_id": h.chunk_id,
        "doc_id": h.doc_id,
        "doc_hash": h.doc_hash,
        "license": h.license,
        "score": h.score,
    }
