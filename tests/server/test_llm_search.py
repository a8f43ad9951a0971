"""``POST /llm/search/{index}``: token-scoped, refused by default, licence- and PII-aware,
traced (docs/llm.md#serving)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx

from featureledger import FeatureStore
from featureledger.llm.chunking import Chunker, word_windows

from .conftest import Server

DOCS = [
    {"doc_id": "open", "text": "the brake pads wear with every stop", "license": "cc-by-4.0"},
    {
        "doc_id": "nc",
        "text": "brake fluid should be changed every two years",
        "license": "cc-by-nc-4.0",
    },
    {
        "doc_id": "hr",
        "text": "brake supplier contact is ana@example.org",
        "license": "internal",
        "pii": "personal",
    },
]


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_search_is_scoped_refused_by_default_and_licence_and_pii_aware(
    tmp_path: Path, serve: Callable[..., AbstractContextManager[Server]]
) -> None:
    store = FeatureStore.init(tmp_path / "repo")
    store.llm.create_corpus("manuals")
    store.llm.add_documents("manuals", DOCS)
    store.llm.build_index("kb", "manuals", chunker=Chunker("w", word_windows, {"size": 50}))
    scoped = store.create_token("reader", ["index/kb"])
    nothing = store.create_token("reader")
    purposeful = store.create_token("reader", ["index/kb"], purpose="support")
    with serve(store) as server:
        url = f"{server.url}/llm/search/kb"
        body = {"query": "brake", "k": 5}
        assert httpx.post(url, json=body).status_code == 401
        refused = httpx.post(url, json=body, headers=_auth(nothing))
        assert refused.status_code == 403 and "index/kb" in refused.json()["detail"]
        got = httpx.post(url, json=body, headers=_auth(scoped))
        assert got.status_code == 200, got.text
        answer = got.json()
        # serving is commercial use by default; personal data is left out
        assert [h["doc_id"] for h in answer["hits"]] == ["open"]
        assert answer["index"] == "index/kb/1" and answer["trace"].startswith("trace/kb/")
        research = httpx.post(url, json={**body, "use": "research"}, headers=_auth(scoped))
        assert {h["doc_id"] for h in research.json()["hits"]} == {"open", "nc"}
        pii = {**body, "use": "internal", "include_pii": True}
        assert httpx.post(url, json=pii, headers=_auth(scoped)).status_code == 403
        with_pii = httpx.post(url, json=pii, headers=_auth(purposeful))
        assert {h["doc_id"] for h in with_pii.json()["hits"]} == {"open", "nc", "hr"}
        assert httpx.post(url, json={"query": ""}, headers=_auth(scoped)).status_code == 422
        missing = httpx.post(
            f"{server.url}/llm/search/nope",
            json=body,
            headers=_auth(store.create_token("reader", ["index/nope"])),
        )
        assert missing.status_code == 404
    trace = store.llm.trace(answer["trace"])
    assert trace.created_by.startswith("token/")
    assert trace.body["use"] == "commercial"
    store.flush_token_audit()
    uses = [e for e in store.audit_log("index/kb") if e.action == "token-use"]
    assert {e.details["allowed"] for e in uses} == {True, False}
