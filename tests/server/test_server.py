"""The feature server over HTTP: a real uvicorn on loopback, called with httpx."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from featureledger import FeatureStore
from featureledger.cli.main import app as cli

from .conftest import MAX_BODY, Server

pytestmark = pytest.mark.server


def test_health_needs_no_token(server: Server) -> None:
    r = server.client().get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "online_store": "sqlite"}


def test_features_in_request_order_equal_the_store(server: Server, tokens: dict[str, str]) -> None:
    entities = [{"user_id": 3}, {"user_id": 1}, {"user_id": 99}, {"user_id": 1}]
    r = server.client(tokens["reader"]).post("/features/spend", json={"entities": entities})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["view"] == "spend"
    expected = server.store.get_online_features("spend", entities).to_arrow().to_pylist()
    assert body["features"] == expected
    assert [row["user_id"] for row in body["features"]] == [3, 1, 99, 1]
    assert [row["spend"] for row in body["features"]] == [3.5, 1.5, None, 1.5]


def test_push_then_read(server: Server, tokens: dict[str, str]) -> None:
    later = (server.t0 + timedelta(minutes=5)).isoformat()
    rows = [{"user_id": 7, "event_timestamp": later, "spend": 70.0, "n": 7}]
    writer = server.client(tokens["writer"])
    r = writer.post("/push/stats", json={"rows": rows})
    assert r.status_code == 200, r.text
    assert r.json() == {"group": "stats", "accepted": 1}
    got = writer.post("/features/spend", json={"entities": [{"user_id": 7}]}).json()
    assert got["features"] == [{"user_id": 7, "spend": 70.0, "n": 7}]


@pytest.mark.parametrize(
    ("who", "path", "status"),
    [
        (None, "/features/spend", 401),
        ("bad", "/features/spend", 401),
        ("reader", "/features/spend", 200),
        ("writer", "/features/spend", 200),
        ("admin", "/features/spend", 200),
        ("scoped", "/features/spend", 200),
        ("scoped", "/features/profiles", 403),
        ("reader", "/features/profiles", 403),  # pii column, no purpose
        ("purpose", "/features/profiles", 200),
        (None, "/push/stats", 401),
        ("bad", "/push/stats", 401),
        ("reader", "/push/stats", 403),
        ("purpose", "/push/stats", 403),
        ("writer", "/push/stats", 200),
        ("admin", "/push/stats", 200),
        ("scoped", "/push/stats", 200),  # the group its view reads
        ("scoped", "/push/profile", 403),
    ],
)
def test_auth_matrix(
    server: Server, tokens: dict[str, str], who: str | None, path: str, status: int
) -> None:
    token = {"bad": "fl_not-a-real-token", None: None}.get(who, tokens.get(who or ""))
    if path.startswith("/push"):
        group = path.rsplit("/", 1)[1]
        row = (
            {"user_id": 8, "event_timestamp": server.t0.isoformat(), "spend": 1.0, "n": 1}
            if group == "stats"
            else {"user_id": 8, "city": "Rome", "email": "c@x.io"}
        )
        body: dict[str, object] = {"rows": [row]}
    else:
        body = {"entities": [{"user_id": 1}]}
    r = server.client(token).post(path, json=body)
    assert r.status_code == status, r.text
    if status == 401:
        assert r.headers["www-authenticate"] == "Bearer"
    if status >= 400:
        assert r.json()["detail"]


def test_pii_refusal_names_the_columns(server: Server, tokens: dict[str, str]) -> None:
    r = server.client(tokens["reader"]).post(
        "/features/profiles", json={"entities": [{"user_id": 1}]}
    )
    assert r.status_code == 403
    assert "email" in r.json()["detail"] and "purpose" in r.json()["detail"]
    ok = server.client(tokens["purpose"]).post(
        "/features/profiles", json={"entities": [{"user_id": 1}]}
    )
    assert ok.json()["features"] == [{"user_id": 1, "city": "Oslo", "email": "a@x.io"}]


def test_revoked_token_is_refused(server: Server) -> None:
    token = server.store.create_token("reader", ["spend"])
    client = server.client(token)
    assert client.post("/features/spend", json={"entities": [{"user_id": 1}]}).status_code == 200
    record = server.store.check_token(token)
    server.store.revoke_token(record.id)
    r = client.post("/features/spend", json={"entities": [{"user_id": 1}]})
    assert r.status_code == 401
    assert "revoked" in r.json()["detail"]


def test_token_use_is_audited(server: Server, tokens: dict[str, str]) -> None:
    server.client(tokens["admin"]).post("/features/spend", json={"entities": [{"user_id": 1}]})
    server.store.flush_token_audit()
    record = server.store.check_token(tokens["admin"])
    uses = [
        e
        for e in server.store.registry.audit_log("feature_view/spend")
        if e.action == "token-use" and e.user == f"token:{record.id}"
    ]
    assert uses and uses[-1].details["role"] == "admin" and uses[-1].details["allowed"]
    assert sum(e.details["uses"] for e in uses) >= 1
    assert server.store.audit_verify() == []


@pytest.mark.parametrize(
    ("path", "body", "status", "says"),
    [
        ("/features/nope", {"entities": [{"user_id": 1}]}, 404, "nope"),
        ("/push/nope", {"rows": [{"user_id": 1}]}, 404, "nope"),
        ("/features/spend", {"entities": [{"user_id": "one"}]}, 422, "user_id"),
        ("/features/spend", {"entities": [{"user": 1}]}, 422, "join key 'user_id'"),
        ("/features/spend", {"entities": []}, 422, "entities"),
        ("/features/spend", {"rows": [{"user_id": 1}]}, 422, "entities"),
        ("/features/spend", {"entities": [{"user_id": 1}, {"user_id": "x"}]}, 422, ""),
        ("/features/spend", {"entities": [{"user_id": i} for i in range(51)]}, 413, "at most"),
        ("/push/stats", {"rows": [{"user_id": 1}], "to": "moon"}, 422, "to"),
        ("/push/stats", {"rows": [{"user_id": "x", "spend": "y"}]}, 422, ""),
        ("/push/stats", {"rows": [{"user_id": 1, "event_timestamp": "soon"}]}, 422, ""),
    ],
)
def test_bad_requests_get_a_clear_4xx(
    server: Server, tokens: dict[str, str], path: str, body: object, status: int, says: str
) -> None:
    assert server.max_entities == 50
    r = server.client(tokens["admin"]).post(path, json=body)
    assert r.status_code == status, r.text
    assert says in r.json()["detail"]


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"not json", b"\xff\xfe\x00", b"[1, 2]", b'{"entities": "x"}', b"null" * 1000],
)
def test_garbage_never_crashes_the_server(
    server: Server, tokens: dict[str, str], raw: bytes
) -> None:
    client = server.client(tokens["admin"])
    for path in ("/features/spend", "/push/stats"):
        r = client.post(path, content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
        assert r.json()["detail"]
    assert client.get("/health").status_code == 200


def test_metrics_has_latency_and_errors(server: Server, tokens: dict[str, str]) -> None:
    row = {"user_id": 9, "event_timestamp": server.t0.isoformat(), "spend": 1.0, "n": 1}
    assert server.client(tokens["writer"]).post("/push/stats", json={"rows": [row]}).is_success
    client = server.client(tokens["reader"])
    client.post("/features/spend", json={"entities": [{"user_id": 1}]})
    client.post("/features/nope", json={"entities": [{"user_id": 1}]})
    text = client.get("/metrics").text
    assert 'featureledger_request_seconds_bucket{endpoint="/features/{view}"' in text
    assert 'featureledger_request_seconds_count{endpoint="/features/{view}",method="POST"}' in text
    assert 'featureledger_request_errors_total{endpoint="/features/{view}",status="404"}' in text
    assert 'featureledger_entities_served_total{view="spend"}' in text
    assert 'featureledger_last_push_timestamp_seconds{group="stats",to="online"}' in text


def test_openapi_lists_the_endpoints(server: Server) -> None:
    spec = server.client().get("/openapi.json").json()
    assert {"/features/{view}", "/push/{group}", "/health", "/metrics"} <= set(spec["paths"])
    assert "FeaturesRequest" in spec["components"]["schemas"]


def test_cli_token_create_prints_a_working_token(server: Server) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "token",
            "create",
            "--role",
            "reader",
            "--view",
            "spend",
            "--repo",
            str(server.store.repo),
        ],
    )
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert token.startswith("fl_")
    r = server.client(token).post("/features/spend", json={"entities": [{"user_id": 2}]})
    assert r.status_code == 200
    listed = CliRunner().invoke(cli, ["token", "list", "--repo", str(server.store.repo)])
    assert "reader" in listed.output and token not in listed.output


def test_cli_serve_refuses_without_tokens(fresh_store: FeatureStore) -> None:
    result = CliRunner().invoke(cli, ["serve", "--repo", str(fresh_store.repo)])
    assert result.exit_code == 1
    assert "token create" in result.output


def test_insecure_server_needs_no_token(
    fresh_store: FeatureStore, serve: Callable[..., AbstractContextManager[Server]]
) -> None:
    with serve(fresh_store, insecure=True) as srv:
        r = srv.client().post("/features/profiles", json={"entities": [{"user_id": 2}]})
        assert r.status_code == 200, r.text
        assert r.json()["features"][0]["city"] == "Lyon"


@pytest.mark.parametrize(
    ("who", "method", "path", "status"),
    [
        (who, method, path, status)
        for method, path in (
            ("POST", "/admin/materialize"),
            ("GET", "/admin/tokens"),
            ("POST", "/admin/tokens/nosuch/revoke"),
        )
        for who, status in (
            (None, 401),
            ("bad", 401),
            ("reader", 403),
            ("purpose", 403),
            ("writer", 403),
            ("scoped", 403),
            ("admin", 404 if "nosuch" in path else 200),
        )
    ],
)
def test_admin_endpoints_need_an_admin_token(
    server: Server, tokens: dict[str, str], who: str | None, method: str, path: str, status: int
) -> None:
    token = {"bad": "fl_not-a-real-token", None: None}.get(who, tokens.get(who or ""))
    r = server.client(token).request(method, path, json={} if method == "POST" else None)
    assert r.status_code == status, r.text
    if status == 403:
        assert "admin token" in r.json()["detail"]


def test_admin_materializes_lists_and_revokes(server: Server, tokens: dict[str, str]) -> None:
    admin = server.client(tokens["admin"])
    server.store.ingest(
        "stats",
        {"user_id": [3], "event_timestamp": [server.t0], "spend": [30.5], "n": [30]},
        mode="upsert",
    )
    done = admin.post("/admin/materialize", json={"names": ["spend"]}).json()["materialized"]
    assert [(m["group"], m["mode"]) for m in done] == [("stats", "incremental")]
    got = admin.post("/features/spend", json={"entities": [{"user_id": 3}]}).json()
    assert got["features"][0]["spend"] == 30.5
    listed = admin.get("/admin/tokens").json()["tokens"]
    assert {"reader", "writer", "admin"} <= {t["role"] for t in listed}
    assert not any(v in str(listed) for v in tokens.values())  # never a secret
    victim = server.store.create_token("reader", ["spend"])
    victim_id = server.store.check_token(victim).id
    r = admin.post(f"/admin/tokens/{victim_id}/revoke")
    assert r.status_code == 200 and r.json()["revoked_at"]
    refused = server.client(victim).post("/features/spend", json={"entities": [{"user_id": 1}]})
    assert refused.status_code == 401  # at once: this server's token cache was cleared
    revocations = server.store.registry.audit_log(f"token/{victim_id}")
    admin_id = server.store.check_token(tokens["admin"]).id
    assert [e.user for e in revocations if e.action == "token-revoke"] == [f"token:{admin_id}"]


def test_insecure_server_keeps_the_admin_endpoints_closed(
    fresh_store: FeatureStore, serve: Callable[..., AbstractContextManager[Server]]
) -> None:
    with serve(fresh_store, insecure=True) as srv:
        r = srv.client().post("/admin/materialize", json={})
        assert r.status_code == 403 and "--insecure" in r.json()["detail"]


def test_oversized_bodies_get_413_before_parsing(server: Server, tokens: dict[str, str]) -> None:
    client = server.client(tokens["admin"])
    padding = "x" * (MAX_BODY + 1)
    big = {"entities": [{"user_id": 1, "pad": padding}]}
    r = client.post("/features/spend", json=big)
    assert r.status_code == 413, r.text
    assert "limit of 262,144 bytes" in r.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no content-length: counted while it streams
        yield b'{"rows": ["'
        for _ in range(64):
            yield b"y" * 8192
        yield b'"]}'

    r = client.post("/push/stats", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text
    ok = client.post("/features/spend", json={"entities": [{"user_id": 1}]})
    assert ok.status_code == 200
    text = client.get("/metrics").text
    # refused on its declared length before routing; the streamed one after it
    assert 'featureledger_request_errors_total{endpoint="unmatched",status="413"}' in text
    assert 'featureledger_request_errors_total{endpoint="/push/{group}",status="413"}' in text


def test_metrics_report_online_freshness(
    fresh_store: FeatureStore,
    serve: Callable[..., AbstractContextManager[Server]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from featureledger.server import app as server_app

    monkeypatch.setattr(server_app._FreshnessCollector, "SECONDS", 0.0)
    token = fresh_store.create_token("reader")
    fresh_store.stats("feature_group/stats@v1")  # kept, so the age can be read cheaply
    with serve(fresh_store) as srv:
        text = srv.client(token).get("/metrics").text
        assert 'featureledger_online_versions_behind{group="stats@v1"} 0.0' in text
        assert 'featureledger_materialized_timestamp_seconds{group="stats@v1"}' in text
        age = next(
            float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith('featureledger_feature_age_seconds{group="stats@v1"}')
        )
        # the events are an hour older than the test module's import (srv.t0), which may
        # have been long ago in a whole-suite run
        expected = (datetime.now(UTC) - srv.t0).total_seconds()
        assert expected - 200 < age < expected + 600
        fresh_store.ingest(
            "stats",
            {"user_id": [1], "event_timestamp": [srv.t0], "spend": [9.0], "n": [9]},
            mode="upsert",
        )
        text = srv.client(token).get("/metrics").text
        assert 'featureledger_online_versions_behind{group="stats@v1"} 1.0' in text


@pytest.mark.parametrize(
    ("who", "view", "body"),
    [
        ("reader", "spend", {"entities": [{"user_id": 1}, {"user_id": 99}]}),
        ("reader", "spend", {"entities": [{"user_id": 2}], "log": True}),
        ("reader", "spend", {"entities": [{"user_id": "one"}]}),
        ("reader", "spend", {"entities": [{"user": 1}]}),
        ("reader", "spend", {"entities": [{"user_id": 1}, {"user_id": "x"}]}),
        ("reader", "spend", {"entities": [{"user_id": i} for i in range(51)]}),
        ("reader", "nope", {"entities": [{"user_id": 1}]}),
        ("reader", "profiles", {"entities": [{"user_id": 1}]}),
        ("purpose", "profiles", {"entities": [{"user_id": 1}]}),
        ("bad", "spend", {"entities": [{"user_id": 1}]}),
        (None, "spend", {"entities": [{"user_id": 1}]}),
    ],
)
def test_the_lean_features_path_answers_as_fastapi_does(
    server: Server, tokens: dict[str, str], who: str | None, view: str, body: object
) -> None:
    """A plain body takes the lean ASGI path; a query string sends the same request through
    FastAPI's endpoint. Both answer alike: status, body and auth header."""
    token = {"bad": "fl_not-a-real-token", None: None}.get(who, tokens.get(who or ""))
    client = server.client(token)
    lean = client.post(f"/features/{view}", json=body)
    routed = client.post(f"/features/{view}?log=false", json=body)
    assert lean.status_code == routed.status_code, (lean.text, routed.text)
    assert lean.json() == routed.json()
    assert lean.headers.get("www-authenticate") == routed.headers.get("www-authenticate")
