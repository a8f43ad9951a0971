"""The audit page's verdict on the chain: the verification is reused while the chain's head
is unchanged (it takes seconds on a large chain), and an edit in SQL shows up as soon as the
chain grows or the verdict is older than `VERIFY_SECONDS`. In-process (no browser, no
server thread): Starlette's TestClient drives the real UI app over its own small store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from featureledger import Entity, FeatureStore
from featureledger.registry.schema import audit_table
from featureledger.ui import create_ui, governance


@pytest.fixture
def audited(tmp_path: Path) -> Iterator[tuple[FeatureStore, TestClient]]:
    store = FeatureStore.init(tmp_path / "repo")
    store.apply([Entity("user", join_keys=["user_id"])])
    token = store.create_token("reader", all_views=True)
    try:
        # in-process ASGI calls: no socket to wait on
        with TestClient(create_ui(store), headers={"Authorization": f"Bearer {token}"}) as client:
            yield store, client
    finally:
        store.close()


def status(client: TestClient) -> str:
    r = client.get("/audit")
    assert r.status_code == 200
    return r.text.split('id="chain-status">', 1)[1].split("</", 1)[0]


def tamper(store: FeatureStore) -> None:
    with store.registry.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(audit_table.update().where(audit_table.c.seq == 1).values(details="{}"))


def test_an_edit_shows_once_the_chain_grows(audited: tuple[FeatureStore, TestClient]) -> None:
    store, client = audited
    head = store.audit_log()[-1]
    assert f"Chain verified: every entry's MAC and link checks up to #{head.seq}" in status(client)
    tamper(store)
    store.apply([Entity("shop", join_keys=["shop_id"])])  # a new entry: a new head
    page = client.get("/audit").text
    assert "The chain does NOT verify" in page and "entry 1" in page
    assert store.audit_verify() != []  # what the page says is what the store says


def test_an_edit_shows_once_the_verdict_is_old(
    audited: tuple[FeatureStore, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, client = audited
    assert "Chain verified" in status(client)
    tamper(store)
    monkeypatch.setattr(governance, "VERIFY_SECONDS", 0.0)
    assert "The chain does NOT verify" in client.get("/audit").text


def test_a_filtered_page_still_judges_the_whole_chain(
    audited: tuple[FeatureStore, TestClient],
) -> None:
    store, client = audited
    tamper(store)
    store.apply([Entity("shop", join_keys=["shop_id"])])
    r = client.get("/audit", params={"object": "entity/shop"})
    assert r.status_code == 200 and "The chain does NOT verify" in r.text
    assert "entity/user" not in r.text.split("</table>")[0].split("<tbody>")[1]  # filtered
