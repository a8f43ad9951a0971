"""The access model over real HTTP: default deny, exact purposes, column-scoped push, and
authorization before any look at the body, on every endpoint."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import orjson
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from featureledger import FeatureStore, FeatureView
from featureledger.cli.main import app as cli
from featureledger.errors import (
    AccessDeniedError,
    ConfigError,
    DataError,
    OnlineStoreUnavailable,
)
from featureledger.store._tokens import purpose_refusal

from .conftest import PROFILE, STATS, Server, make_store

ENTITY = {"entities": [{"user_id": 1}]}

# -- default deny ----------------------------------------------------------------------------


def test_a_token_without_views_reads_and_pushes_nothing(server: Server) -> None:
    s = server.store
    bare = s.create_token("writer")
    assert s.check_token(bare).views == []
    client = server.client(bare)
    for view in ("spend", "profiles"):
        r = client.post(f"/features/{view}", json=ENTITY)
        assert r.status_code == 403 and "lists no views" in r.json()["detail"]
    row = {"user_id": 5, "event_timestamp": server.t0.isoformat(), "spend": 1.0, "n": 1}
    r = client.post("/push/stats", json={"rows": [row]})
    assert r.status_code == 403 and "--view" in r.json()["detail"]
    wide = server.client(s.create_token("reader", all_views=True))
    assert wide.post("/features/spend", json=ENTITY).status_code == 200
    with pytest.raises(DataError, match="not both"):
        s.create_token("reader", ["spend"], all_views=True)


def test_cli_all_views_is_explicit_and_listed(server: Server) -> None:
    repo = str(server.store.repo)
    made = CliRunner().invoke(
        cli, ["token", "create", "--role", "reader", "--all-views", "--repo", repo]
    )
    assert made.exit_code == 0, made.output
    assert "views: all" in made.output
    token = made.output.strip().splitlines()[-1]
    assert server.client(token).post("/features/spend", json=ENTITY).status_code == 200
    bare = CliRunner().invoke(cli, ["token", "create", "--role", "reader", "--repo", repo])
    assert "views: none (reads nothing)" in bare.output
    listed = CliRunner().invoke(cli, ["token", "list", "--repo", repo])
    assert "none (reads nothing)" in listed.output and "all" in listed.output


# -- purposes --------------------------------------------------------------------------------


def _with_purposes(store: FeatureStore, purposes: dict[str, str]) -> FeatureStore:
    path = store.repo / "featureledger.yaml"
    config = yaml.safe_load(path.read_text())
    config["purposes"] = purposes
    path.write_text(yaml.safe_dump(config))
    return FeatureStore(store.repo)


def test_purposes_match_exactly_unless_declared_beneath(fresh_store: FeatureStore) -> None:
    s = fresh_store  # the profiles view serves the pii email for "fraud scoring"
    near = s.check_token(s.create_token("reader", ["profiles"], purpose="fraud scoring v2"))
    none = s.check_token(s.create_token("reader", ["profiles"]))
    same = s.check_token(s.create_token("reader", ["profiles"], purpose="fraud scoring"))
    with pytest.raises(AccessDeniedError, match="not the view's purpose 'fraud scoring'"):
        s.authorize_read(near, "profiles")
    with pytest.raises(AccessDeniedError, match="declares no purpose"):
        s.authorize_read(none, "profiles")
    s.authorize_read(same, "profiles")
    # declared beneath: a token for the narrower purpose reads the broader view
    declared = _with_purposes(s, {"fraud scoring v2": "fraud scoring"})
    declared.authorize_read(near, "profiles")
    # never the reverse: the view for the narrower purpose refuses the broader one
    declared.apply([FeatureView("narrow", [PROFILE], purpose="fraud scoring v2")])
    declared.close()
    broad = declared.check_token(
        declared.create_token("reader", ["narrow"], purpose="fraud scoring")
    )
    with pytest.raises(AccessDeniedError, match="not the view's purpose"):
        declared.authorize_read(broad, "narrow")


def test_a_purpose_cycle_is_refused(fresh_store: FeatureStore) -> None:
    with pytest.raises(ConfigError, match="cycle"):
        _with_purposes(fresh_store, {"a": "b", "b": "a"})


def _ancestors(purpose: str, parents: dict[str, str]) -> set[str]:
    """Reference: the purpose and everything it is declared beneath, by plain recursion."""
    parent = parents.get(purpose)
    return {purpose} | (_ancestors(parent, parents) if parent is not None else set())


@given(
    st.lists(st.integers(0, 7), min_size=8, max_size=8),
    st.integers(0, 7),
    st.integers(0, 7),
)
def test_purpose_matching_follows_the_declared_hierarchy(
    links: list[int], token: int, view: int
) -> None:
    names = [f"p{i}" for i in range(8)]
    # purpose i may sit beneath a purpose with a smaller index (no cycles)
    parents = {names[i]: names[p] for i, p in enumerate(links) if p < i}
    allowed = purpose_refusal(names[token], names[view], parents) == ""
    assert allowed == (names[view] in _ancestors(names[token], parents))


# -- push scope ------------------------------------------------------------------------------


def test_a_scoped_writer_pushes_only_the_columns_its_views_select(
    fresh_store: FeatureStore, serve: Callable[..., AbstractContextManager[Server]]
) -> None:
    fresh_store.apply([FeatureView("spend_only", [STATS[["spend"]]])])
    token = fresh_store.create_token("writer", ["spend_only"])
    with serve(fresh_store) as srv:
        client = srv.client(token)
        at = srv.t0.isoformat()
        r = client.post(
            "/push/stats",
            json={"rows": [{"user_id": 7, "event_timestamp": at, "spend": 2.0, "n": 9}]},
        )
        assert r.status_code == 403 and "['n']" in r.json()["detail"]
        pii = client.post("/push/profile", json={"rows": [{"user_id": 7, "email": "x@y.z"}]})
        assert pii.status_code == 403 and "do not read" in pii.json()["detail"]
        # a push carries whole rows (missing columns are refused), so writing this group
        # takes a token whose views select all of it
        whole = srv.client(fresh_store.create_token("writer", ["spend"]))
        ok = whole.post(
            "/push/stats",
            json={"rows": [{"user_id": 7, "event_timestamp": at, "spend": 2.0, "n": 9}]},
        )
        assert ok.status_code == 200, ok.text
        reader = srv.client(fresh_store.create_token("reader", ["spend"]))
        got = reader.post("/features/spend", json={"entities": [{"user_id": 7}]}).json()
        assert got["features"][0]["spend"] == 2.0


# -- every endpoint: authorization before the body ------------------------------------------

DEEP = b'{"entities": ' + b"[" * 5000 + b"]" * 5000 + b"}"
BAD_BODIES = [b"", b"{", b"\xff\xfe", b'{"entities": "x", "rows": 3, "names": 4}', DEEP]

#: endpoint -> (method, path, token that is valid but not allowed, token that is allowed,
#: a good body)
ENDPOINTS = {
    "features": ("POST", "/features/profiles", "scoped", "purpose", orjson.dumps(ENTITY)),
    "push": ("POST", "/push/stats", "reader", "writer", None),
    "materialize": ("POST", "/admin/materialize", "writer", "admin", b'{"names": ["spend"]}'),
    "tokens": ("GET", "/admin/tokens", "reader", "admin", None),
    "revoke": ("POST", "/admin/tokens/nope/revoke", "writer", "admin", None),
}


def _good_push(server: Server) -> bytes:
    row = {"user_id": 8, "event_timestamp": server.t0.isoformat(), "spend": 1.0, "n": 1}
    return orjson.dumps({"rows": [row]})


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
@pytest.mark.parametrize("body", [None, *BAD_BODIES], ids=lambda b: repr(b)[:20])
def test_auth_is_decided_before_the_body_on_every_endpoint(
    server: Server, tokens: dict[str, str], endpoint: str, body: bytes | None
) -> None:
    method, path, denied, allowed, good = ENDPOINTS[endpoint]
    if endpoint == "push":
        good = _good_push(server)
    sent = good if body is None else body
    # no Content-Type header at all: the body is JSON whatever the headers say

    def call(token: str | None) -> httpx.Response:
        with server.client(token) as client:
            return client.request(method, path, content=sent)

    nobody = call(None)
    assert nobody.status_code == 401 and nobody.headers["WWW-Authenticate"] == "Bearer"
    assert call("fl_" + "x" * 43).status_code == 401
    refused = call(tokens[denied])
    assert refused.status_code == 403, refused.text
    answer = call(tokens[allowed])
    takes_body = good is not None
    if not takes_body:  # GET and revoke ignore a body
        assert answer.status_code in (200, 404), answer.text
    elif body is None:
        assert answer.status_code == 200, answer.text
    elif endpoint == "materialize" and body == b"":
        assert answer.status_code == 200  # no body: every online group
    else:
        assert answer.status_code == 422, answer.text
        detail = answer.json()["detail"]
        assert detail.startswith("invalid request: body")
        if body is DEEP:
            assert "nested too deep" in detail and "1024" in detail


def test_the_docs_curl_without_content_type_works(server: Server, tokens: dict[str, str]) -> None:
    # curl -d sends application/x-www-form-urlencoded unless told otherwise
    form = {"content-type": "application/x-www-form-urlencoded"}
    with server.client(tokens["reader"]) as client:
        r = client.post("/features/spend", content=orjson.dumps(ENTITY), headers=form)
        assert r.status_code == 200 and r.json()["features"][0]["spend"] == 1.5
    with server.client() as anonymous:
        assert anonymous.post("/features/spend", content=b"x", headers=form).status_code == 401


def test_openapi_still_documents_the_request_bodies(server: Server) -> None:
    spec = server.client().get("/openapi.json").json()
    body = spec["paths"]["/push/{group}"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["$ref"].endswith("/PushRequest")
    assert {"FeaturesRequest", "PushRequest", "MaterializeRequest"} <= set(
        spec["components"]["schemas"]
    )


# -- the online store down -------------------------------------------------------------------


def _break_sqlite_online(store: FeatureStore) -> Path:
    """Close the store's connections and put a directory where the online database was."""
    store.close()
    path = store.repo / ".featureledger" / "online.db"
    for extra in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        extra.unlink(missing_ok=True)
    path.mkdir()
    return path


def test_online_store_down_gives_503_with_retry_after_then_falls_back(
    tmp_path: Path, serve: Callable[..., AbstractContextManager[Server]]
) -> None:
    store = make_store(tmp_path / "repo")
    token = store.create_token("reader", ["spend"])
    before = store.get_online_features("spend", [{"user_id": 2}]).to_pylist()
    broken = _break_sqlite_online(store)
    with pytest.raises(OnlineStoreUnavailable) as caught:
        store.get_online_features("spend", [{"user_id": 2}])
    assert caught.value.retryable and "online.db" in str(caught.value)
    with serve(store) as srv:
        r = srv.client(token).post("/features/spend", json={"entities": [{"user_id": 2}]})
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        assert r.json()["retryable"] is True and "online.fallback" in r.json()["detail"]
    config = yaml.safe_load((store.repo / "featureledger.yaml").read_text())
    config["online"]["fallback"] = "offline"
    (store.repo / "featureledger.yaml").write_text(yaml.safe_dump(config))
    fallback = FeatureStore(store.repo)
    got = fallback.get_online_features("spend", [{"user_id": 2}])
    assert got.source == "offline-fallback" and got.to_pylist() == before
    with serve(fallback) as srv:
        r = srv.client(token).post("/features/spend", json={"entities": [{"user_id": 2}]})
        assert r.status_code == 200
        assert r.json() == {"view": "spend", "features": before, "source": "offline-fallback"}
    assert broken.is_dir()  # still down: every answer above came from the fallback
