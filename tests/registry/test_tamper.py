"""The tamper table: every kind of tampering with the books, done in SQL on a real SQLite and
a real PostgreSQL registry, and the command that detects it (docs/reliability.md).

The attacker here can write every registry table but does not have the audit key, which
lives outside the registry (FEATURELEDGER_AUDIT_KEY or .featureledger/audit.key).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from featureledger import Entity, FeatureGroup, FeatureStore, Field
from featureledger.cli.main import app
from featureledger.errors import ConfigError, IntegrityError
from featureledger.registry import audit as chain
from featureledger.registry.schema import audit_table, counters_table, data_versions_table

T0 = datetime(2024, 1, 1, tzinfo=UTC)
USER = Entity("user", join_keys=["user_id"])
STATS = FeatureGroup("stats", USER, features=[Field("clicks", "int64")])


def rows(keys: list[int], clicks: int = 1) -> dict[str, list[object]]:
    return {"user_id": keys, "event_timestamp": [T0] * len(keys), "clicks": [clicks] * len(keys)}


@pytest.fixture
def books(registry_url: str, tmp_path: Path) -> Iterator[FeatureStore]:
    """A repository on each registry backend: apply, two ingests, a pin."""
    repo = tmp_path / "repo"
    (repo / ".featureledger").mkdir(parents=True)
    (repo / "featureledger.yaml").write_text(f"project: tamper\nregistry: {registry_url}\n")
    store = FeatureStore(repo)
    store.apply([USER, STATS])
    store.ingest("stats", rows([1, 2]))
    store.ingest("stats", rows([2, 3], clicks=2))
    assert store.audit_verify() == []
    yield store
    store.close()


def sql(store: FeatureStore, statement: sa.Executable) -> None:
    with store.registry.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(statement)


def entries(store: FeatureStore) -> list[dict[str, object]]:
    with store.registry.engine.connect() as conn:  # type: ignore[attr-defined]
        result = conn.execute(sa.select(audit_table).order_by(audit_table.c.seq)).mappings()
        return [dict(r) for r in result]


def verify_cli(store: FeatureStore, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["audit", "verify", "--repo", str(store.repo), *args])
    return result.exit_code, result.output


def sha256_rechain(store: FeatureStore, start: int) -> None:
    """What an attacker without the key can do: recompute every link from ``start`` on."""
    log = entries(store)
    prev = log[start - 2]["hash"] if start > 1 else chain.GENESIS
    for e in log[start - 1 :]:
        body = chain.dump(
            [
                e["seq"],
                chain.iso(e["at"]),
                e["user_name"],
                e["action"],
                e["object"],
                json.loads(str(e["details"])),
                prev,
            ]
        )
        digest = hashlib.sha256(body.encode()).hexdigest()
        sql(
            store,
            audit_table.update()
            .where(audit_table.c.seq == e["seq"])
            .values(prev_hash=prev, hash=digest),
        )
        prev = digest


def test_intact_books_verify_with_and_without_a_checkpoint(books: FeatureStore) -> None:
    head = books.audit_head()
    assert head["seq"] == len(books.audit_log()) and head["count"] == head["seq"]
    assert books.audit_verify(head) == []
    books.ingest("stats", rows([4]))  # a later entry is not a problem for an older head
    assert books.audit_verify(head) == []
    code, output = verify_cli(books)
    assert code == 0 and "audit chain intact" in output


def test_edited_entry(books: FeatureStore) -> None:
    sql(books, audit_table.update().where(audit_table.c.seq == 4).values(user_name="mallory"))
    problems = books.audit_verify()
    assert any(p.startswith("entry 4 (ingest") and "edited" in p for p in problems), problems


def test_edited_and_rechained_entries(books: FeatureStore) -> None:
    sql(books, audit_table.update().where(audit_table.c.seq == 4).values(user_name="mallory"))
    sha256_rechain(books, 4)
    problems = books.audit_verify()
    # every link is consistent again, but no re-chained entry carries a valid MAC
    assert not any("does not link" in p for p in problems)
    assert sum("edited" in p for p in problems) == len(entries(books)) - 3, problems


def test_forged_entry_appended(books: FeatureStore) -> None:
    last = entries(books)[-1]
    forged = {
        **last,
        "seq": int(str(last["seq"])) + 1,
        "action": "deploy",
        "object": "model/evil/1",
        "details": "{}",
        "prev_hash": last["hash"],
        "hash": hashlib.sha256(b"forged").hexdigest(),
    }
    sql(books, audit_table.insert().values(**forged))
    problems = books.audit_verify()
    assert any(p.startswith(f"entry {forged['seq']} (deploy") and "edited" in p for p in problems)


def test_forged_unkeyed_entry_appended(books: FeatureStore) -> None:
    last = entries(books)[-1]
    seq = int(str(last["seq"])) + 1
    body = chain.dump([seq, chain.iso(T0), "mallory", "deploy", "model/evil/1", {}, last["hash"]])
    forged = {
        **last,
        "seq": seq,
        "at": T0,
        "user_name": "mallory",
        "action": "deploy",
        "object": "model/evil/1",
        "details": "{}",
        "prev_hash": last["hash"],
        "hash": hashlib.sha256(body.encode()).hexdigest(),
        "scheme": "sha256",
    }
    sql(books, audit_table.insert().values(**forged))
    problems = books.audit_verify()
    assert any("unkeyed entry after the chain was keyed" in p for p in problems), problems


def test_truncated_newest_entries(books: FeatureStore) -> None:
    head = books.audit_head()
    newest = int(head["seq"])
    sql(books, audit_table.delete().where(audit_table.c.seq >= newest - 1))
    problems = books.audit_verify()
    assert any(f"entries {newest - 1}..{newest} are missing" in p for p in problems), problems
    # the attacker also winds the counter back: only the checkpoint still tells
    sql(
        books,
        counters_table.update().where(counters_table.c.scope == "audit").values(value=newest - 2),
    )
    # ...and deletes the version rows those entries recorded, so nothing is left uncovered
    sql(books, data_versions_table.delete().where(data_versions_table.c.version >= 1))
    assert not any("missing" in p for p in books.audit_verify())
    problems = books.audit_verify(head)
    assert any("truncated" in p for p in problems), problems
    path = books.repo / "head.json"
    path.write_text(json.dumps(head))
    code, output = verify_cli(books, "--against", str(path))
    assert code == 1 and "truncated" in output


def test_rechained_chain_differs_from_the_checkpoint(books: FeatureStore) -> None:
    head = books.audit_head()
    sql(books, audit_table.update().where(audit_table.c.seq == 2).values(user_name="mallory"))
    sha256_rechain(books, 2)
    problems = books.audit_verify(head)
    assert any("differs from the one the checkpoint saw" in p for p in problems), problems


def test_edited_checkpoint(books: FeatureStore) -> None:
    head = books.audit_head()
    head["seq"] = int(head["seq"]) - 1
    problems = books.audit_verify(head)
    assert any("signature does not match" in p for p in problems), problems


@pytest.mark.parametrize(
    "column, value",
    [
        ("rows", 999),
        ("user_name", "mallory"),
        ("content", '{"lane_a": "1", "lane_b": "2", "rows": 2}'),
        ("created_at", datetime(2020, 1, 1, tzinfo=UTC)),
    ],
)
def test_edited_version_row(books: FeatureStore, column: str, value: object) -> None:
    t = data_versions_table
    sql(books, t.update().where(t.c.version == 1).values(**{column: value}))
    problems = books.audit_verify()
    assert any(
        p.startswith("feature_group/stats@v1#1: the data version row was edited") for p in problems
    ), problems


def test_version_row_inserted_or_deleted(books: FeatureStore) -> None:
    t = data_versions_table
    with books.registry.engine.connect() as conn:  # type: ignore[attr-defined]
        row = dict(conn.execute(sa.select(t).where(t.c.version == 2)).mappings().one())
    sql(books, t.insert().values(**{**row, "version": 9}))
    problems = books.audit_verify()
    assert any("stats@v1#9: data version without an audit entry" in p for p in problems)
    sql(books, t.delete().where(t.c.version.in_([2, 9])))
    problems = books.audit_verify()
    assert any("records feature_group/stats@v1#2, which is no longer" in p for p in problems)


def test_version_entry_deleted(books: FeatureStore) -> None:
    seq = next(e["seq"] for e in entries(books) if e["object"] == "feature_group/stats@v1#1")
    sql(books, audit_table.delete().where(audit_table.c.seq == seq))
    problems = books.audit_verify()
    assert any(f"entries {seq}..{seq} are missing" in p for p in problems)
    assert any("stats@v1#1: data version without an audit entry" in p for p in problems)


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        '{"rows": 2, "lane_a": "-1", "lane_b": "3"}',
        '{"rows": 1180591620717411303424, "lane_a": "1", "lane_b": "2"}',
        "[]",
    ],
)
def test_corrupt_content_field_is_named_never_a_traceback(
    books: FeatureStore, content: str
) -> None:
    t = data_versions_table
    sql(books, t.update().where(t.c.version == 2).values(content=content))
    problems = books.audit_verify()
    assert any(p.startswith("feature_group/stats@v1#2: the data version row") for p in problems)
    reports = books.verify()  # every latest version
    assert [r.ok for r in reports] == [False]
    assert "content field is corrupt" in reports[0].problems[0]
    assert "version=2" in reports[0].problems[0]
    with pytest.raises(IntegrityError, match="content field is corrupt"):
        books.versions("stats")
    result = CliRunner().invoke(app, ["verify", "--repo", str(books.repo)])
    assert result.exit_code == 1 and "corrupt" in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    result = CliRunner().invoke(app, ["audit", "verify", "--repo", str(books.repo)])
    assert result.exit_code == 1 and "stats@v1#2" in result.output


def test_corrupt_entry_details_are_named(books: FeatureStore) -> None:
    sql(books, audit_table.update().where(audit_table.c.seq == 3).values(details="{not json"))
    problems = books.audit_verify()
    assert any(p.startswith("entry 3: unreadable") for p in problems), problems
    assert books.audit_log()[2].details == {"unreadable": "{not json"}


def test_wrong_key_is_refused_for_writes_and_fails_verification(
    books: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    books.close()
    monkeypatch.setenv("FEATURELEDGER_AUDIT_KEY", "another-key-of-enough-length")
    other = FeatureStore(books.repo)
    with pytest.raises(ConfigError, match=r"keyed with key id .* nothing was written"):
        other.ingest("stats", rows([5]))
    assert [v.version for v in other.versions("stats")] == [0, 1, 2]  # nothing recorded
    problems = other.audit_verify()
    assert "keyed with key id" in problems[0] and "MACs cannot be checked" in problems[0]
    other.close()


def test_key_file_readable_by_others_is_refused(books: FeatureStore) -> None:
    books.close()
    key = books.repo / ".featureledger" / "audit.key"
    assert (key.stat().st_mode & 0o777) == 0o600
    os.chmod(key, 0o644)
    with pytest.raises(ConfigError, match="mode 0644: other users can read the audit key"):
        FeatureStore(books.repo)


def test_key_rotation_re_keys_a_verified_chain(books: FeatureStore) -> None:
    key = books.repo / ".featureledger" / "audit.key"
    before, head = key.read_text(), books.audit_head()
    count = books.rotate_audit_key(reason="yearly")
    assert count == len(books.audit_log()) - 1  # every entry but the new re-keyed one
    assert key.read_text() != before and (key.stat().st_mode & 0o777) == 0o600
    assert not (key.parent / "audit.key.new").exists()
    last = books.audit_log()[-1]
    assert last.action == "re-keyed" and last.details["reason"] == "yearly"
    assert books.audit_verify() == []
    # a checkpoint signed with the old key no longer verifies: export a new one
    assert any("signed with another key" in p for p in books.audit_verify(head))
    books.close()
    reopened = FeatureStore(books.repo)  # reads the new key file
    reopened.ingest("stats", rows([7]))
    assert reopened.audit_verify() == [] and reopened.audit_verify(reopened.audit_head()) == []
    reopened.close()


def test_key_rotation_refuses_a_tampered_chain(books: FeatureStore) -> None:
    key = books.repo / ".featureledger" / "audit.key"
    before = key.read_text()
    sql(books, audit_table.update().where(audit_table.c.seq == 4).values(user_name="mallory"))
    with pytest.raises(ConfigError, match="does not verify under the current key"):
        books.rotate_audit_key()
    assert key.read_text() == before and not (key.parent / "audit.key.new").exists()
    assert any("entry 4" in p for p in books.audit_verify())
