"""Run every kind of tampering against a fresh repository and print the tamper table.

Each row: a new repository (apply, two ingests, a pin, a checkpoint exported with
`featureledger audit head --out`), one tampering done in SQL on its registry, then the
command that should detect it, with its exit code and first message. The output is the
table in docs/reliability.md ("Tamper table").

    python scripts/tamper_table.py [--registry URL]   # default: a SQLite file per row

With ``--registry`` (a PostgreSQL server URL with rights to create databases), each row
gets its own database on that server.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

# one table row per line, so the verdict can be quoted: set before the CLI's console exists
os.environ["COLUMNS"] = "1000"

import sqlalchemy as sa
from typer.testing import CliRunner

from featureledger import Entity, FeatureGroup, FeatureStore, Field
from featureledger.cli import console
from featureledger.cli.main import app
from featureledger.registry import audit as chain
from featureledger.registry.schema import audit_table, counters_table, data_versions_table

T0 = datetime(2024, 1, 1, tzinfo=UTC)
USER = Entity("user", join_keys=["user_id"])
STATS = FeatureGroup("stats", USER, features=[Field("clicks", "int64")])

Tamper = Callable[[sa.Engine, FeatureStore], None]


def rows(keys: list[int], clicks: int) -> dict[str, list[object]]:
    return {"user_id": keys, "event_timestamp": [T0] * len(keys), "clicks": [clicks] * len(keys)}


def entries(engine: sa.Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        result = conn.execute(sa.select(audit_table).order_by(audit_table.c.seq)).mappings()
        return [dict(r) for r in result]


def rechain(engine: sa.Engine, start: int) -> None:
    """Recompute the links from ``start`` on, as someone without the key can."""
    log = entries(engine)
    prev = str(log[start - 2]["hash"])
    with engine.begin() as conn:
        for e in log[start - 1 :]:
            body = [e["seq"], chain.iso(e["at"]), e["user_name"], e["action"], e["object"]]
            body += [json.loads(str(e["details"])), prev]
            digest = hashlib.sha256(chain.dump(body).encode()).hexdigest()
            t = audit_table
            conn.execute(t.update().where(t.c.seq == e["seq"]).values(prev_hash=prev, hash=digest))
            prev = digest


def run(engine: sa.Engine, *statements: sa.Executable) -> None:
    with engine.begin() as conn:
        for s in statements:
            conn.execute(s)


def edit_entry(engine: sa.Engine, store: FeatureStore) -> None:
    run(engine, audit_table.update().where(audit_table.c.seq == 4).values(user_name="mallory"))


def edit_and_rechain(engine: sa.Engine, store: FeatureStore) -> None:
    edit_entry(engine, store)
    rechain(engine, 4)


def append_forged(engine: sa.Engine, store: FeatureStore) -> None:
    last = entries(engine)[-1]
    seq = int(str(last["seq"])) + 1
    body = [seq, chain.iso(T0), "mallory", "deploy", "model/evil/1", {}, last["hash"]]
    forged = {
        **last,
        "seq": seq,
        "at": T0,
        "user_name": "mallory",
        "action": "deploy",
        "object": "model/evil/1",
        "details": "{}",
        "prev_hash": last["hash"],
        "hash": hashlib.sha256(chain.dump(body).encode()).hexdigest(),
    }
    run(engine, audit_table.insert().values(**forged))


def truncate(engine: sa.Engine, store: FeatureStore) -> None:
    newest = int(str(entries(engine)[-1]["seq"]))
    run(engine, audit_table.delete().where(audit_table.c.seq == newest))


def truncate_hidden(engine: sa.Engine, store: FeatureStore) -> None:
    """Delete the newest entries, rewind the counter and delete the rows they recorded."""
    log = entries(engine)
    newest = int(str(log[-1]["seq"]))
    recorded = [str(e["object"]) for e in log[-2:] if "record" in json.loads(str(e["details"]))]
    versions = [int(o.rsplit("#", 1)[1]) for o in recorded]
    t = data_versions_table
    run(
        engine,
        audit_table.delete().where(audit_table.c.seq >= newest - 1),
        counters_table.update().where(counters_table.c.scope == "audit").values(value=newest - 2),
        t.delete().where(t.c.version.in_(versions)),
    )


def edit_version(column: str, value: object) -> Tamper:
    def tamper(engine: sa.Engine, store: FeatureStore) -> None:
        t = data_versions_table
        run(engine, t.update().where(t.c.version == 1).values(**{column: value}))

    return tamper


def insert_version(engine: sa.Engine, store: FeatureStore) -> None:
    t = data_versions_table
    with engine.connect() as conn:
        row = dict(conn.execute(sa.select(t).where(t.c.version == 2)).mappings().one())
    run(engine, t.insert().values(**{**row, "version": 9}))


def delete_version_entry(engine: sa.Engine, store: FeatureStore) -> None:
    seq = next(e["seq"] for e in entries(engine) if e["object"] == "feature_group/stats@v1#1")
    run(engine, audit_table.delete().where(audit_table.c.seq == seq))


def corrupt_content(text: str) -> Tamper:
    def tamper(engine: sa.Engine, store: FeatureStore) -> None:
        t = data_versions_table
        run(engine, t.update().where(t.c.version == 2).values(content=text))

    return tamper


def edit_head(engine: sa.Engine, store: FeatureStore) -> None:
    path = store.repo / "head.json"
    head = json.loads(path.read_text())
    head["seq"] -= 1
    path.write_text(json.dumps(head))


def readable_key(engine: sa.Engine, store: FeatureStore) -> None:
    os.chmod(store.repo / ".featureledger" / "audit.key", 0o644)


def wrong_key(engine: sa.Engine, store: FeatureStore) -> None:
    key = store.repo / ".featureledger" / "audit.key"
    key.write_text(uuid.uuid4().hex * 2)


AUDIT = ["audit", "verify"]
AGAINST = ["audit", "verify", "--against", "{repo}/head.json"]
CASES: list[tuple[str, Tamper, list[str]]] = [
    ("edit an entry's user", edit_entry, AUDIT),
    ("edit an entry and re-chain the SHA-256 links after it", edit_and_rechain, AUDIT),
    ("re-chained chain against an older checkpoint", edit_and_rechain, AGAINST),
    ("append a forged entry", append_forged, AUDIT),
    ("delete the newest entry", truncate, AUDIT),
    (
        "delete the newest entries, rewind the counter, delete the rows they recorded",
        truncate_hidden,
        AUDIT,
    ),
    ("the same, checked against a checkpoint", truncate_hidden, AGAINST),
    ("edit a checkpoint file", edit_head, AGAINST),
    ("edit a version's rows", edit_version("rows", 999), AUDIT),
    ("edit a version's user", edit_version("user_name", "mallory"), AUDIT),
    (
        "edit a version's content hash",
        edit_version("content", '{"lane_a": "1", "lane_b": "2", "rows": 2}'),
        AUDIT,
    ),
    ("edit a version's commit time", edit_version("created_at", datetime(2020, 1, 1)), AUDIT),
    ("insert a version row", insert_version, AUDIT),
    ("delete the entry of a version", delete_version_entry, AUDIT),
    ("non-JSON content field", corrupt_content("not json"), ["verify"]),
    (
        "out-of-range content field",
        corrupt_content('{"rows": 1180591620717411303424, "lane_a": "1", "lane_b": "2"}'),
        ["verify"],
    ),
    ("non-JSON content field", corrupt_content("not json"), AUDIT),
    ("key file readable by others (chmod 644)", readable_key, AUDIT),
    ("another key in the key file", wrong_key, AUDIT),
    ("another key in the key file, then ingest", wrong_key, ["ingest", "stats", "{repo}/x.csv"]),
]


def registry_url(server: str | None, folder: Path) -> str:
    if server is None:
        return f"sqlite:///{folder / 'registry.db'}"
    name = "fl_tamper_" + uuid.uuid4().hex[:10]
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return sa.make_url(server).set(database=name).render_as_string(hide_password=False)


def one(case: tuple[str, Tamper, list[str]], server: str | None) -> str:
    what, tamper, command = case
    repo = Path(tempfile.mkdtemp(prefix="fl-tamper-")) / "repo"
    (repo / ".featureledger").mkdir(parents=True)
    url = registry_url(server, repo.parent)
    (repo / "featureledger.yaml").write_text(f"project: tamper\nregistry: '{url}'\n")
    (repo / "x.csv").write_text("user_id,event_timestamp,clicks\n9,2024-01-01T00:00:00Z,1\n")
    runner = CliRunner()
    store = FeatureStore(repo)
    store.apply([USER, STATS])
    store.ingest("stats", rows([1, 2], 1))
    store.ingest("stats", rows([2, 3], 2))
    store.pin("feature_group/stats@v1#1", repo / "old")
    store.close()
    result = runner.invoke(app, ["audit", "head", "--out", str(repo / "head.json"), "--repo", repo])
    assert result.exit_code == 0, result.output
    engine = store.registry.engine  # type: ignore[attr-defined]
    tamper(engine, store)
    args = [a.replace("{repo}", str(repo)) for a in command] + ["--repo", str(repo)]
    result = runner.invoke(app, args, terminal_width=400)
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    lines = [ln.strip(" │┃✗") for ln in result.output.splitlines() if ln.strip(" │─╭╰")]
    lines = [ln for ln in lines if not any(c in ln for c in "┏┡━└┗")]
    hits = [ln for ln in lines if "corrupt" in ln or ln.startswith(("error", "ok", "✓"))]
    verdict = "CRASH " + repr(result.exception) if crashed else " / ".join((hits or lines)[:3])
    shown = "featureledger " + " ".join(command).replace("{repo}/", "")
    return f"| {what} | `{shown}` | {result.exit_code} | {verdict[:400]} |"


def main() -> None:
    console.console.width = console.errors.width = 1000
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", help="PostgreSQL server URL (default: SQLite files)")
    args = parser.parse_args()
    print("| tampering | command | exit | verdict (first lines of its output) |")
    print("| --- | --- | --- | --- |")
    for case in CASES:
        print(one(case, args.registry), flush=True)


if __name__ == "__main__":
    main()
