"""API tokens in the store: only hashes are kept, roles and scopes are checked, use is audited."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from featureledger import FeatureStore
from featureledger.cli.main import app as cli
from featureledger.errors import AccessDeniedError, DataError, NotFoundError, TokenError
from featureledger.store._tokens import hash_token


def test_only_the_hash_is_stored(fresh_store: FeatureStore) -> None:
    secret = fresh_store.create_token("writer", views=["spend"], purpose=" audit ")
    [record] = fresh_store.tokens()
    assert record.token_hash == hash_token(secret) and secret not in repr(record)
    assert (record.role, record.views, record.purpose) == ("writer", ["spend"], "audit")
    assert fresh_store.check_token(secret) == record


def test_bad_roles_views_and_tokens_are_refused(fresh_store: FeatureStore) -> None:
    with pytest.raises(DataError, match="reader, writer, admin"):
        fresh_store.create_token("root")
    with pytest.raises(NotFoundError, match="nope"):
        fresh_store.create_token("reader", views=["nope"])
    for bad in (None, "", "fl_x"):
        with pytest.raises(TokenError):
            fresh_store.check_token(bad)
    with pytest.raises(NotFoundError, match="does not exist"):
        fresh_store.revoke_token("123")


def test_authorization_rules(fresh_store: FeatureStore) -> None:
    s = fresh_store
    reader = s.check_token(s.create_token("reader", all_views=True))
    scoped = s.check_token(s.create_token("admin", views=["spend"], purpose="x"))
    with pytest.raises(AccessDeniedError, match="reader"):
        s.authorize_push(reader, "stats")
    with pytest.raises(AccessDeniedError, match=r"\['email'\]"):
        s.authorize_read(reader, "profiles")
    with pytest.raises(AccessDeniedError, match="scoped to the view"):
        s.authorize_read(scoped, "profiles")
    s.authorize_read(scoped, "spend")
    s.authorize_push(scoped, "stats")
    s.flush_token_audit()
    uses = [e for e in s.audit_log() if e.action == "token-use"]
    assert {(e.object, e.details["allowed"]) for e in uses} == {
        ("feature_group/stats", False),
        ("feature_view/profiles", False),
        ("feature_view/spend", True),
        ("feature_group/stats", True),
    }


def test_cli_revoke_applies_to_another_process(fresh_store: FeatureStore) -> None:
    secret = fresh_store.create_token("reader")
    record = fresh_store.check_token(secret)
    repo = str(fresh_store.repo)
    result = CliRunner().invoke(cli, ["token", "revoke", record.id, "--repo", repo])
    assert result.exit_code == 0, result.output
    assert FeatureStore(repo).tokens()[0].revoked_at is not None
    with pytest.raises(TokenError, match="revoked"):
        FeatureStore(repo).check_token(secret)
    bad = CliRunner().invoke(cli, ["token", "create", "--role", "root", "--repo", repo])
    assert bad.exit_code == 1 and "reader, writer, admin" in bad.output
