"""LLM artifacts through the store: corpora, indexes, traces, lineage, forgetting,
fine-tuning sets, rollback and gates (docs/llm.md)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from featureledger import FeatureStore
from featureledger.errors import DataError, GateError, IntegrityError, LicenseError, NotFoundError
from featureledger.llm.evaluate import LLMGates
from featureledger.llm.vector import HNSWParams

from .conftest import SMALL


def test_corpus_versions_diff_time_travel_and_rejected_documents(store: FeatureStore) -> None:
    from featureledger.llm import CorpusContract

    llm = store.llm
    llm.create_corpus("docs", contract=CorpusContract(licenses=["cc-by-4.0"], min_chars=5))
    first = llm.add_documents(
        "docs",
        [
            {"doc_id": "a", "text": "alpha text", "license": "cc-by-4.0"},
            {"doc_id": "b", "text": "beta text", "license": "cc-by-4.0"},
            {"doc_id": "c", "text": "gamma text", "license": "gpl-3.0"},
        ],
    )
    assert first.version is not None and first.accepted == 2
    # the refused document is kept on disk with its reason, and the refusal is audited
    assert first.rejected_path is not None
    kept = pq.read_table(first.rejected_path).to_pylist()
    assert [(r["doc_id"], r["text"]) for r in kept] == [("c", "gamma text")]
    assert any(e.action == "corpus-reject" for e in store.audit_log("corpus/docs"))
    second = llm.add_documents(
        "docs",
        [
            {"doc_id": "a", "text": "alpha text, edited", "license": "cc-by-4.0"},
            {"doc_id": "d", "text": "delta text", "license": "cc-by-4.0"},
        ],
    )
    assert second.version is not None
    assert second.version.version == first.version.version + 1
    assert llm.diff_corpus("docs", first.version.version) == {
        "added": ["d"],
        "removed": [],
        "changed": ["a"],
    }
    # time travel: the first version still reads as it was
    assert llm.documents("docs", version=first.version.version)["text"].to_pylist() == [
        "alpha text",
        "beta text",
    ]
    # the same documents again make no new version
    again = llm.add_documents(
        "docs", [{"doc_id": "d", "text": "delta text", "license": "cc-by-4.0"}]
    )
    assert again.version is not None and again.version.version == second.version.version
    # a corpus is a feature group: the books verify it like any other
    assert all(r.ok for r in store.verify(f"feature_group/docs@v1#{second.version.version}"))


def test_search_filters_pii_and_licences(kb: FeatureStore) -> None:
    llm = kb.llm
    res = llm.search("kb", "kitten purr whiskers", k=5)
    assert res.index == "index/kb/1" and len(res.hits) == 5
    assert {h.metadata["topic"] for h in res.hits} == {"cats"}
    dogs = llm.search("kb", "kitten purr whiskers", k=3, where={"topic": "dogs"})
    assert [h.metadata["topic"] for h in dogs.hits] == ["dogs"] * 3
    # a selective filter is searched exactly: a document's chunks only
    one = llm.search("kb", "kitten", k=10, where={"doc_id": "d003"})
    assert {h.doc_id for h in one.hits} == {"d003"}
    commercial = llm.search("kb", "kitten purr", k=20, use="commercial")
    assert "cc-by-nc-4.0" not in {h.license for h in commercial.hits}
    with pytest.raises(DataError, match="k must be"):
        llm.search("kb", "x", k=0)


@pytest.mark.parametrize("where", [{"topic": "dogs"}, {"topic": ["dogs", "cars"]}])
def test_a_filtered_graph_search_finds_what_an_exact_scan_finds(
    kb: FeatureStore, where: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the corpus is small enough for an exact scan; force the graph path to test it
    monkeypatch.setattr("featureledger.store._indexes.EXACT_ROWS", 0)
    indexes = kb.llm.indexes
    for query in ["kitten purr whiskers", "engine brake", "puppy bark"]:
        _, graph = indexes.search("kb", query, k=5, where=where)
        _, exact = indexes.search("kb", query, k=5, where=where, exact=True)
        assert [h.score for h in graph] == pytest.approx([h.score for h in exact], abs=1e-5)
        assert {h.metadata["topic"] for h in graph} <= set(
            [where["topic"]] if isinstance(where["topic"], str) else where["topic"]
        )


def test_documents_with_personal_data_are_served_only_when_asked(store: FeatureStore) -> None:
    from featureledger.llm import CorpusContract

    llm = store.llm
    llm.create_corpus("hr", contract=CorpusContract(pii_detectors=["email"], pii_action="label"))
    llm.add_documents(
        "hr",
        [
            {
                "doc_id": "p",
                "text": "salary review for ana@example.org in march",
                "license": "internal",
            },
            {"doc_id": "q", "text": "salary bands policy for march reviews", "license": "internal"},
        ],
    )
    llm.build_index("hr", "hr", chunker=SMALL)
    assert [h.doc_id for h in llm.search("hr", "salary review march", k=5).hits] == ["q"]
    both = llm.search("hr", "salary review march", k=5, include_pii=True)
    assert {h.doc_id for h in both.hits} == {"p", "q"}


def test_traces_lineage_and_impact(kb: FeatureStore) -> None:
    llm = kb.llm
    res = llm.search("kb", "engine brake fuel", k=3, prompt_template="qa@v2", guardrail="pass")
    assert res.trace == "trace/kb/1"
    call = llm.log_call(
        prompt_template="qa@v2",
        retrieval=res,
        model="m",
        input_tokens=120,
        output_tokens=30,
        latency_ms=12.5,
        guardrail="pass",
        answer="use the brake",
    )
    body = llm.trace(call).body
    assert body["tokens"] == {"input": 120, "output": 30} and body["guardrail"] == "pass"
    lineage = llm.lineage(call)
    assert lineage["index"] == "index/kb/1"
    assert lineage["corpus"] == "feature_group/docs@v1#1"
    assert lineage["prompt_template"] == "qa@v2"
    docs = llm.documents("docs")
    versions = dict(zip(docs["doc_id"].to_pylist(), docs["doc_hash"].to_pylist(), strict=True))
    assert lineage["documents"] == sorted({(h.doc_id, versions[h.doc_id]) for h in res.hits})
    assert lineage["licenses"] == sorted({h.license for h in res.hits})
    doc = res.hits[0].doc_id
    impact = llm.impact("docs", doc)
    assert impact["indexes"] == ["index/kb/1"]
    assert impact["traces"] == ["trace/kb/1", call]
    with pytest.raises(NotFoundError, match="no trace"):
        llm.trace("trace/kb/99")


def test_forgetting_a_document_makes_new_versions_and_lists_what_used_it(kb: FeatureStore) -> None:
    llm = kb.llm
    res = llm.search("kb", "bark woof leash", k=1)
    doc = res.hits[0].doc_id
    ft = llm.finetune_set("ft", "docs", use="research")
    report = llm.forget("docs", [doc], reason="erasure request 42")
    assert report.corpus_version == "feature_group/docs@v1#2"
    assert report.indexes_rebuilt == ["index/kb/2"]
    assert report.traces == [res.trace]
    assert report.finetune_sets == [f"finetune-set/ft/{ft.version}"]
    assert llm.current_index("kb") == 2
    assert doc not in llm.documents("docs")["doc_id"].to_pylist()
    found = llm.search("kb", "bark woof leash", k=50, trace=False)
    assert doc not in {h.doc_id for h in found.hits}
    assert llm.impact("docs", doc)["indexes"] == ["index/kb/1"]  # the old version had it
    assert any(e.action == "forget" for e in kb.audit_log("corpus/docs"))
    with pytest.raises(DataError, match="needs a reason"):
        llm.forget("docs", ["d001"], reason=" ")


def test_a_non_commercial_licence_blocks_a_commercial_fine_tune(kb: FeatureStore, tmp_path) -> None:  # type: ignore[no-untyped-def]
    llm = kb.llm
    with pytest.raises(LicenseError, match=r"cc-by-nc-4\.0"):
        llm.finetune_set("ft", "docs", use="commercial")
    ok = llm.finetune_set("ft", "docs", use="research")
    assert ok.body["corpus_identity"] == "feature_group/docs@v1#1"
    assert pq.read_table(ok.body["path"]).num_rows == 60
    weights = tmp_path / "adapter.bin"
    weights.write_bytes(b"weights")
    model = llm.register_finetuned_model(
        "helper", finetune_set="finetune-set/ft/1", artifact=weights, base_model="tiny-llm@3"
    )
    assert model.body["corpus_identity"] == "feature_group/docs@v1#1"
    assert model.body["licenses"] == ["cc-by-4.0", "cc-by-nc-4.0"]
    assert len(model.body["artifact_sha256"]) == 64


def test_rollback_and_release_gates(kb: FeatureStore) -> None:
    llm = kb.llm
    llm.add_eval_set(
        "ev",
        [
            {"query": "kitten purr whiskers", "relevant": [f"d{i:03d}" for i in range(0, 60, 3)]},
            {"query": "engine brake fuel", "relevant": [f"d{i:03d}" for i in range(2, 60, 3)]},
        ],
    )
    # a candidate built but not served: the pointer stays until it is promoted
    cand = llm.build_index(
        "kb", "docs", chunker=SMALL, params=HNSWParams(connectivity=8), activate=False
    )
    assert llm.current_index("kb") == 1
    strict = LLMGates(k=5, min_recall=1.01, max_latency_ratio=1e9)
    with pytest.raises(GateError, match="under the floor"):
        llm.promote("kb", cand.version, "ev", gates=strict)
    assert llm.current_index("kb") == 1
    result = llm.promote("kb", cand.version, "ev", gates=LLMGates(k=5, max_latency_ratio=1e9))
    assert result.passed and result.candidate["recall"] == 1.0
    assert llm.current_index("kb") == 2
    back = llm.rollback_index("kb", reason="bad answers in incident 7")
    assert back.body == {
        "version": 1,
        "previous": 2,
        "action": "rollback",
        "reason": "bad answers in incident 7",
    }
    assert llm.search("kb", "kitten", k=1, trace=False).index == "index/kb/1"
    actions = [e.action for e in kb.audit_log("index-pointer/kb")]
    assert actions == ["index-build", "index-promote", "index-rollback"]
    # forcing past a failed gate serves the candidate and keeps what it overrode
    forced = llm.promote("kb", cand.version, "ev", gates=strict, force=True, reason="hotfix")
    assert not forced.passed and llm.current_index("kb") == cand.version
    last = kb.audit_log("index-pointer/kb")[-1]
    assert last.details["reason"].startswith("hotfix; forced over: recall@5")


def test_a_crashed_build_leaves_the_served_version_and_a_damaged_file_is_refused(
    kb: FeatureStore,
) -> None:
    llm = kb.llm
    root = kb.repo / ".featureledger" / "llm" / "indexes" / "kb"
    # what a build killed before its rename leaves: a temporary folder, never recorded
    (root / ".tmp-deadbeef").mkdir()
    (root / ".tmp-deadbeef" / "graph.usearch").write_bytes(b"half")
    assert llm.search("kb", "kitten", k=1, trace=False).index == "index/kb/1"
    rebuilt = llm.build_index("kb", "docs", chunker=SMALL)
    assert rebuilt.version == 2
    # a tampered file is refused by its checksum when a process opens the version
    folder = root / llm.index_versions("kb")[0].body["folder"]
    (folder / "chunks.parquet").write_bytes(b"not parquet")
    with FeatureStore(kb.repo) as fresh, pytest.raises(IntegrityError, match="SHA-256"):
        fresh.llm.search("kb", "kitten", version=1)
