"""Chunkers: what they cut, and chunk ids that name one piece of one document version."""

from __future__ import annotations

import json

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from featureledger.llm.chunking import Chunker, chunk_documents, word_windows
from featureledger.llm.documents import conform_documents


@given(st.lists(st.sampled_from(["a", "bb", "c"]), max_size=60), st.integers(1, 12), st.data())
def test_word_windows_cover_every_word_in_order(
    words: list[str], size: int, data: st.DataObject
) -> None:
    overlap = data.draw(st.integers(0, size - 1))
    windows = word_windows(" ".join(words), size=size, overlap=overlap)
    assert all(0 < len(w.split()) <= size for w in windows)
    # windows start every size - overlap words: rebuilding the text from their fresh parts
    step = size - overlap
    rebuilt = [
        w
        for i, win in enumerate(windows)
        for w in win.split()[: step if i < len(windows) - 1 else None]
    ]
    assert rebuilt == words


def _docs(text: str = "one two three four five six") -> pa.Table:
    return conform_documents(
        [{"doc_id": "d", "text": text, "metadata": {"team": "x"}}],
        default_license="cc0-1.0",
        where="t",
    )


def test_chunk_ids_are_stable_and_follow_the_document_version_and_the_chunker() -> None:
    chunker = Chunker("w", word_windows, {"size": 2, "overlap": 0})
    first = chunk_documents(_docs(), chunker)
    assert first["text"].to_pylist() == ["one two", "three four", "five six"]
    assert (
        first["chunk_id"].to_pylist() == chunk_documents(_docs(), chunker)["chunk_id"].to_pylist()
    )
    assert len(set(first["chunk_id"].to_pylist())) == 3
    # every chunk carries its document's version, licence and metadata (for filters)
    assert set(first["doc_hash"].to_pylist()) == set(_docs()["doc_hash"].to_pylist())
    assert first["m.team"].to_pylist() == ["x"] * 3
    assert first["license"].to_pylist() == ["cc0-1.0"] * 3
    edited = chunk_documents(_docs("one two three four five seven"), chunker)
    assert set(edited["chunk_id"].to_pylist()).isdisjoint(first["chunk_id"].to_pylist())
    other = Chunker("w", word_windows, {"size": 2, "overlap": 1})
    assert other.hash != chunker.hash
    assert set(chunk_documents(_docs(), other)["chunk_id"].to_pylist()).isdisjoint(
        first["chunk_id"].to_pylist()
    )


def _sentences(text: str, **_: object) -> list[str]:
    return [s.strip() for s in text.split(".") if s.strip()]


def test_a_user_chunker_is_hashed_by_its_code_and_params() -> None:
    a = Chunker("sentences", _sentences, {})
    assert a.hash == Chunker("sentences", _sentences, {}).hash
    assert a.hash != Chunker("sentences", _sentences, {"x": 1}).hash
    assert a.hash != Chunker("sentences", word_windows, {}).hash
    assert a.split("A b. C d.") == ["A b", "C d"]
    json.dumps({"hash": a.hash})
