"""The corpus gate, document hashes and document diffs (pure logic)."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from featureledger.errors import DataError
from featureledger.llm.documents import (
    REASONS,
    CorpusContract,
    conform_documents,
    diff_documents,
    document_hash,
    gate_documents,
)


def _docs(*rows: dict[str, object]) -> pa.Table:
    return conform_documents(list(rows), default_license="cc-by-4.0", where="test")


def _reasons(rejected: pa.Table) -> dict[str, list[str]]:
    return dict(zip(rejected["doc_id"].to_pylist(), rejected[REASONS].to_pylist(), strict=True))


def test_the_gate_keeps_refused_documents_with_every_reason() -> None:
    docs = _docs(
        {"doc_id": "ok", "text": "a fine text"},
        {"doc_id": "short", "text": "ab"},
        {"doc_id": "gpl", "text": "some licensed text", "license": "gpl-3.0"},
        {"doc_id": "cyr", "text": "привет мир как дела"},
        {"doc_id": "bin", "text": b"caf\xe9 au lait"},
        {"doc_id": "both", "text": "x", "license": "gpl-3.0"},
    )
    contract = CorpusContract(
        min_chars=3, licenses=["cc-by-4.0"], scripts=["Latin"], script_share=0.9
    )
    accepted, rejected = gate_documents(docs, contract)
    assert accepted["doc_id"].to_pylist() == ["ok"]
    reasons = _reasons(rejected)
    assert set(reasons) == {"short", "gpl", "cyr", "bin", "both"}
    assert reasons["short"] == ["length: under 3 chars"]
    assert reasons["gpl"][0].startswith("license: not in the allow-list")
    assert reasons["cyr"][0].startswith("script:")
    assert reasons["bin"] == ["encoding: not clean UTF-8 text"]
    assert len(reasons["both"]) == 2
    # refused rows keep every column: nothing of the document is lost
    assert rejected.drop_columns([REASONS]).schema == docs.schema


def test_pii_detectors_run_only_when_a_contract_names_them() -> None:
    docs = _docs(
        {"doc_id": "a", "text": "write to ana@example.org please"},
        {"doc_id": "b", "text": "call +44 20 7946 0958 today"},
        {"doc_id": "c", "text": "ana@example.org", "pii": "personal"},
        {"doc_id": "d", "text": "nothing personal"},
    )
    accepted, rejected = gate_documents(docs, CorpusContract())
    assert accepted.num_rows == 4 and rejected.num_rows == 0  # no opt-in: no detector
    accepted, rejected = gate_documents(docs, CorpusContract(pii_detectors=["email", "phone"]))
    # a document already classified as personal data is let in: its owner said so
    assert accepted["doc_id"].to_pylist() == ["c", "d"]
    assert sorted(_reasons(rejected)) == ["a", "b"]
    labelled, rejected = gate_documents(
        docs, CorpusContract(pii_detectors=["email", "phone"], pii_action="label")
    )
    assert rejected.num_rows == 0
    assert labelled["pii"].to_pylist() == ["email", "phone", "personal", "none"]
    # the label is part of the document version
    assert labelled["doc_hash"][0] != docs["doc_hash"][0]


def test_unknown_detectors_and_repeated_ids_are_refused_clearly() -> None:
    with pytest.raises(DataError, match="unknown PII detector"):
        CorpusContract(pii_detectors=["ssn-magic"])
    docs = _docs({"doc_id": "a", "text": "x"}, {"doc_id": "a", "text": "y"})
    with pytest.raises(DataError, match="repeat a doc_id"):
        gate_documents(docs, None)
    with pytest.raises(DataError, match="no doc_id or no text"):
        _docs({"text": "no id"})


fields = st.text(max_size=6)


@given(st.tuples(fields, fields, fields, fields, fields, fields), st.integers(0, 5), fields)
def test_a_document_hash_changes_with_any_field(
    doc: tuple[str, ...], which: int, other: str
) -> None:
    changed = list(doc)
    changed[which] = other
    assert (document_hash(*doc) == document_hash(*changed)) == (tuple(changed) == doc)


@given(fields, fields)
def test_moving_a_field_boundary_changes_the_hash(a: str, b: str) -> None:
    if a + b and b:
        assert document_hash(a, b, "", "", "", "") != document_hash(a + b[0], b[1:], "", "", "", "")


versions = st.dictionaries(st.sampled_from("abcdefgh"), st.sampled_from(["x", "y", "z"]))


@given(versions, versions)
def test_diff_matches_a_plain_reference(old: dict[str, str], new: dict[str, str]) -> None:
    def table(d: dict[str, str]) -> pa.Table:
        return pa.table(
            {"doc_id": list(d), "doc_hash": list(d.values())},
            pa.schema([("doc_id", pa.string()), ("doc_hash", pa.string())]),
        )

    got = diff_documents(table(old), table(new))
    assert got == {
        "added": sorted(k for k in new if k not in old),
        "removed": sorted(k for k in old if k not in new),
        "changed": sorted(k for k in old if k in new and old[k] != new[k]),
    }
