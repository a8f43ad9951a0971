"""The audit chain in SQL: entries appended inside the caller's transaction (so a version
row and its entry commit together), the key check, and anchoring a chain under a key."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from featureledger.errors import ConfigError
from featureledger.registry import audit
from featureledger.registry.base import AuditEntry
from featureledger.registry.counters import next_number
from featureledger.registry.schema import (
    audit_table,
    counters_table,
    data_versions_table,
    maintenance_table,
    meta_table,
)

#: fl_meta key: the public id of the key the chain is written with
KEY_ID = "audit_key_id"
#: the PostgreSQL advisory lock taken while a chain is anchored: "flaudkey"
_PG_LOCK_KEY = int.from_bytes(b"flaudkey", "big", signed=True)


def no_key(where: str) -> ConfigError:
    return ConfigError(
        f"registry {where}: no audit key, so no audit entry can be written. A store reads it "
        "from FEATURELEDGER_AUDIT_KEY or .featureledger/audit.key; open the registry through "
        "FeatureStore, or pass audit_key= to open_registry"
    )


def check_key(conn: sa.Connection, key: bytes, where: str) -> None:
    """Refuse to write with a key other than the one the chain is keyed with."""
    error = key_mismatch(conn, key, where)
    if error is not None:
        raise error


def key_mismatch(conn: sa.Connection, key: bytes, where: str) -> ConfigError | None:
    """The error to raise on writes when ``key`` is not the chain's key, else None."""
    stored = conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == KEY_ID)).scalar()
    if stored is not None and stored != audit.key_id(key):
        return ConfigError(
            f"registry {where}: its audit chain is keyed with key id {stored}, but the audit "
            f"key in use has id {audit.key_id(key)}; nothing was written. Restore the "
            "repository's key (FEATURELEDGER_AUDIT_KEY, or .featureledger/audit.key copied "
            "from where the repository was made); docs/reliability.md, 'The audit key'"
        )
    return None


def append(
    conn: sa.Connection,
    key: bytes,
    user: str,
    action: str,
    obj: str,
    details: dict[str, Any],
    *,
    where: str,
) -> AuditEntry:
    """Append a keyed entry in ``conn``'s transaction."""
    check_key(conn, key, where)
    t = audit_table
    at = datetime.now(UTC)
    details = json.loads(audit.dump(details))  # exactly what is stored and checked later
    seq = next_number(conn, "audit", "")
    # read after drawing the number: the counter row's lock orders the appends, so the
    # entry before this one is committed and visible now
    last = conn.execute(
        sa.select(t.c.hash).where(t.c.seq < seq).order_by(t.c.seq.desc()).limit(1)
    ).first()
    prev = audit.GENESIS if last is None else str(last[0])
    mac = audit.entry_mac(audit.KEYED, key, seq, at.isoformat(), user, action, obj, details, prev)
    conn.execute(
        t.insert().values(
            seq=seq,
            at=at,
            user_name=user,
            action=action,
            object=obj,
            details=audit.dump(details),
            prev_hash=prev,
            hash=mac,
            scheme=audit.KEYED,
        )
    )
    return AuditEntry(seq, at, user, action, obj, details, prev, mac, audit.KEYED)


def anchor(engine: sa.Engine, key: bytes, user: str, where: str) -> None:
    """On the first open with a key: record the key's id and, for a chain written before
    keying, append a ``re-keyed`` entry linking to its head plus an entry recording each
    existing data version's row. Later opens only compare the key id."""
    with engine.connect() as conn:
        stored = conn.execute(
            sa.select(meta_table.c.value).where(meta_table.c.key == KEY_ID)
        ).scalar()
    if stored is not None:
        return  # a wrong key is refused when it is first used to write
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        again = conn.execute(
            sa.select(meta_table.c.value).where(meta_table.c.key == KEY_ID)
        ).scalar()
        if again is not None:
            return
        entries = conn.execute(sa.select(audit_table).order_by(audit_table.c.seq)).mappings().all()
        versions = conn.execute(sa.select(data_versions_table)).mappings().all()
        # the id first: the appends below check it
        conn.execute(meta_table.insert().values(key=KEY_ID, value=audit.key_id(key)))
        unkeyed = [e for e in entries if (e["scheme"] or audit.UNKEYED) == audit.UNKEYED]
        if not unkeyed and not versions:
            return
        if entries and len(unkeyed) < len(entries):
            return  # keyed already (fl_meta lost its row): entries say which key
        counter = conn.execute(
            sa.select(counters_table.c.value).where(counters_table.c.scope == "audit")
        ).scalar()
        before = audit.verify(entries, [], [], key=key, counter=counter)
        append(
            conn,
            key,
            user,
            audit.REKEYED,
            "audit",
            {
                "key_id": audit.key_id(key),
                "unkeyed_entries": len(unkeyed),
                "previous_head": str(entries[-1]["hash"]) if entries else audit.GENESIS,
                "problems_before": before[:20],
                "why": "the chain was keyed; entries before this one are plain SHA-256 links",
            },
            where=where,
        )
        for row in versions:
            append(
                conn,
                key,
                user,
                "version-covered",
                audit.version_identity(row),
                {"record": audit.version_digest(row), "why": "recorded before the key"},
                where=where,
            )


def raw_rows(conn: sa.Connection) -> tuple[list[Any], list[Any], list[Any], int | None]:
    """Entries by seq, version rows, maintenance rows, the audit counter: as stored."""
    entries = conn.execute(sa.select(audit_table).order_by(audit_table.c.seq)).mappings().all()
    versions = conn.execute(sa.select(data_versions_table)).mappings().all()
    maintenance = conn.execute(sa.select(maintenance_table)).mappings().all()
    counter = conn.execute(
        sa.select(counters_table.c.value).where(counters_table.c.scope == "audit")
    ).scalar()
    return list(entries), list(versions), list(maintenance), counter


def rotate(conn: sa.Connection, old: bytes, new: bytes, user: str, reason: str, where: str) -> int:
    """Re-compute every keyed MAC under ``new`` after checking the chain under ``old``; in
    the caller's write transaction. Returns how many entries were re-MAC-ed."""
    # the counter row's lock keeps appends out while the chain is rewritten
    conn.execute(
        sa.select(counters_table.c.value).where(counters_table.c.scope == "audit").with_for_update()
    )
    entries, versions, maintenance, counter = raw_rows(conn)
    problems = audit.verify(entries, versions, maintenance, key=old, counter=counter)
    if problems:
        raise ConfigError(
            f"registry {where}: the audit chain does not verify under the current key, so it "
            f"is not re-keyed (that would launder the damage): {'; '.join(problems[:5])}"
        )
    prev, count, t = audit.GENESIS, 0, audit_table
    for e in entries:
        if (e["scheme"] or audit.UNKEYED) == audit.KEYED:
            body = (e["seq"], audit.iso(e["at"]), e["user_name"], e["action"], e["object"])
            details = json.loads(e["details"])
            mac = audit.entry_mac(audit.KEYED, new, *body, details, prev)
            conn.execute(t.update().where(t.c.seq == e["seq"]).values(prev_hash=prev, hash=mac))
            prev, count = mac, count + 1
        else:
            prev = str(e["hash"])
    conn.execute(
        meta_table.update().where(meta_table.c.key == KEY_ID).values(value=audit.key_id(new))
    )
    append(
        conn,
        new,
        user,
        audit.REKEYED,
        "audit",
        {
            "key_id": audit.key_id(new),
            "previous_key_id": audit.key_id(old),
            "entries_re_maced": count,
            "reason": reason,
            "why": "key rotated: every keyed entry verified under the old key, then re-MAC-ed",
        },
        where=where,
    )
    return count
