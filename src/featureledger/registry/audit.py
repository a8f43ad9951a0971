"""The keyed audit chain: entry MACs, digests of recorded rows, signed head checkpoints and
the verification of all three. Pure: the SQL registry hands in raw rows.

An entry's MAC is HMAC-SHA256, under a repository secret kept outside the registry, of its
canonical JSON ``[seq, at, user, action, object, details, prev]`` where ``prev`` is the MAC
of the entry before it. Without the key an edited, re-chained or appended entry cannot get a
valid MAC. Entries written before the chain was keyed (scheme ``sha256``) keep their plain
SHA-256 links; the first keyed entry after them, ``re-keyed``, links to their head, so
re-chaining them afterwards breaks that link. Every data version and maintenance commit is
recorded with an entry, in the same transaction, whose ``details.record`` is the SHA-256 of
the row as stored: an edit to the row (hash, rows, user, times...) no longer matches it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

#: the previous-link of the first entry
GENESIS = "0" * 64
#: entries from before the chain was keyed; all others are keyed
UNKEYED = "sha256"
KEYED = "hmac-sha256"
#: the action of the entry that anchors an unkeyed chain (or a new key) under the current key
REKEYED = "re-keyed"
HEAD_FORMAT = "featureledger-audit-head/1"

_VERSION_FIELDS = (
    "group_name",
    "major",
    "version",
    "operation",
    "rows",
    "rows_added",
    "rows_removed",
    "content",
    "schema_hash",
    "files",
    "run_id",
    "user_name",
    "created_at",
    "note",
)
_MAINTENANCE_FIELDS = ("group_name", "major", "version", "operation", "run_id", "user_name", "at")


def dump(value: Any) -> str:
    """Canonical JSON: what MACs and digests are computed over."""
    return json.dumps(value, sort_keys=True, default=str)


def iso(value: Any) -> str:
    """A stored time as UTC ISO text, whatever the driver hands back (naive on SQLite)."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat()
    return str(value)


def key_id(key: bytes) -> str:
    """A short public name of a key, so a wrong key is told apart from a tampered chain."""
    return hmac.new(key, b"featureledger audit key id", hashlib.sha256).hexdigest()[:16]


def entry_mac(
    scheme: str,
    key: bytes | None,
    seq: int,
    at: str,
    user: str,
    action: str,
    obj: str,
    details: Any,
    prev: str,
) -> str:
    body = dump([seq, at, user, action, obj, details, prev]).encode()
    if scheme == UNKEYED:
        return hashlib.sha256(body).hexdigest()
    if key is None:
        raise ValueError("a keyed entry needs the audit key")
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def version_identity(row: Mapping[Any, Any]) -> str:
    return f"feature_group/{row['group_name']}@v{row['major']}#{row['version']}"


def version_digest(row: Mapping[Any, Any]) -> str:
    """SHA-256 of a ``fl_data_versions`` row as stored (times as UTC ISO text)."""
    return _digest(row, _VERSION_FIELDS, "created_at")


def maintenance_digest(row: Mapping[Any, Any]) -> str:
    """SHA-256 of a ``fl_maintenance`` row as stored."""
    return _digest(row, _MAINTENANCE_FIELDS, "at")


def _digest(row: Mapping[Any, Any], names: Sequence[str], time: str) -> str:
    values = [iso(row[n]) if n == time else row[n] for n in names]
    return hashlib.sha256(dump(values).encode()).hexdigest()


def sign_head(key: bytes, head: Mapping[Any, Any]) -> str:
    body = {k: v for k, v in head.items() if k != "signature"}
    return hmac.new(key, dump(body).encode(), hashlib.sha256).hexdigest()


def make_head(key: bytes, entries: Sequence[Mapping[Any, Any]]) -> dict[str, Any]:
    """The signed checkpoint of the chain's newest entry: export it, keep it elsewhere."""
    last = entries[-1] if entries else None
    head: dict[str, Any] = {
        "format": HEAD_FORMAT,
        "seq": 0 if last is None else int(last["seq"]),
        "mac": GENESIS if last is None else str(last["hash"]),
        "count": len(entries),
        "key_id": key_id(key),
        "at": datetime.now(UTC).isoformat(),
    }
    head["signature"] = sign_head(key, head)
    return head


def verify(
    entries: Sequence[Mapping[Any, Any]],
    versions: Sequence[Mapping[Any, Any]],
    maintenance: Sequence[Mapping[Any, Any]],
    *,
    key: bytes | None,
    counter: int | None,
    against: Mapping[Any, Any] | None = None,
) -> list[str]:
    """Every problem found in the chain, the rows it covers and a checkpoint; never raises.

    ``entries`` are raw ``fl_audit`` rows by seq, ``versions`` and ``maintenance`` raw
    rows, ``counter`` the audit sequence's counter value, ``against`` a head checkpoint.
    """
    problems: list[str] = []
    if key is None:
        problems.append(
            "no audit key: keyed entries cannot be checked (set FEATURELEDGER_AUDIT_KEY or "
            "restore .featureledger/audit.key)"
        )
    prev, expected, keyed_seen = GENESIS, 1, False
    recorded: dict[str, tuple[int, str]] = {}  # covered row -> (entry seq, digest)
    for raw in entries:
        seq = raw["seq"]
        try:
            seq = int(seq)
            details = json.loads(raw["details"])
            scheme = str(raw.get("scheme") or KEYED)
            name = f"entry {seq} ({raw['action']} {raw['object']})"
            if seq != expected:
                if seq > expected:
                    problems.append(f"entries {expected}..{seq - 1} are missing (deleted)")
                else:
                    problems.append(f"entry {seq}: out of order or duplicated")
            if raw["prev_hash"] != prev:
                problems.append(f"{name}: does not link to the entry before it")
            if scheme == UNKEYED and keyed_seen:
                problems.append(
                    f"{name}: unkeyed entry after the chain was keyed: forged or re-chained"
                )
            elif scheme == KEYED and not keyed_seen and seq > 1 and raw["action"] != REKEYED:
                problems.append(f"{name}: the first keyed entry is not a re-keyed anchor")
            elif scheme not in (UNKEYED, KEYED):
                problems.append(f"{name}: unknown scheme {scheme!r}")
            if scheme == KEYED:
                keyed_seen = True
            if scheme == UNKEYED or key is not None:
                mac = entry_mac(
                    scheme,
                    key,
                    seq,
                    iso(raw["at"]),
                    raw["user_name"],
                    raw["action"],
                    raw["object"],
                    details,
                    raw["prev_hash"],
                )
                if not hmac.compare_digest(mac, str(raw["hash"])):
                    problems.append(
                        f"{name}: edited (its {'MAC' if scheme == KEYED else 'hash'} does not "
                        "match; an entry edited, re-chained or added without the audit key)"
                    )
            if scheme == KEYED and isinstance(details, dict) and "record" in details:
                recorded[_covered(raw["object"], raw["action"])] = (seq, str(details["record"]))
        except Exception as exc:  # a corrupt row must be named, never crash the check
            problems.append(f"entry {seq}: unreadable ({type(exc).__name__}: {exc})")
        prev, expected = str(raw["hash"]), (seq + 1 if isinstance(seq, int) else expected + 1)
    if counter is not None and counter > expected - 1:
        problems.append(
            f"entries {expected}..{counter} are missing: the audit sequence reached {counter} "
            "(deleted newest entries)"
        )
    problems += _coverage(recorded, versions, maintenance)
    if against is not None:
        problems += _check_head(against, entries, key)
    return problems


def _covered(obj: str, action: str) -> str:
    return f"maintenance {obj}" if action == "maintenance" else obj


def _coverage(
    recorded: dict[str, tuple[int, str]],
    versions: Sequence[Mapping[Any, Any]],
    maintenance: Sequence[Mapping[Any, Any]],
) -> list[str]:
    problems = []
    seen = set()
    rows = [(version_identity(r), version_digest, r, "data version") for r in versions]
    rows += [
        (f"maintenance {version_identity(r)}", maintenance_digest, r, "maintenance commit")
        for r in maintenance
    ]
    for ident, digest, row, what in rows:
        seen.add(ident)
        try:
            actual = digest(row)
        except Exception as exc:
            problems.append(f"{ident}: unreadable {what} row ({type(exc).__name__}: {exc})")
            continue
        found = recorded.get(ident)
        if found is None:
            problems.append(
                f"{ident}: {what} without an audit entry (inserted outside featureledger, or "
                "its entry was deleted)"
            )
        elif found[1] != actual:
            problems.append(
                f"{ident}: the {what} row was edited after entry {found[0]} recorded it "
                "(hash, rows, user, times or files differ)"
            )
    for ident, (seq, _) in recorded.items():
        if ident not in seen:
            problems.append(f"entry {seq} records {ident}, which is no longer in the registry")
    return problems


def _check_head(
    head: Mapping[Any, Any], entries: Sequence[Mapping[Any, Any]], key: bytes | None
) -> list[str]:
    try:
        seq, mac, count = int(head["seq"]), str(head["mac"]), int(head["count"])
        signature = str(head["signature"])
    except Exception as exc:
        return [f"checkpoint: not a head file ({type(exc).__name__}: {exc})"]
    problems = []
    if key is not None and not hmac.compare_digest(sign_head(key, head), signature):
        if head.get("key_id") == key_id(key):
            problems.append("checkpoint: signature does not match: the head file was edited")
        else:
            problems.append(
                f"checkpoint: signed with another key (id {head.get('key_id')}, this key's is "
                f"{key_id(key)}), or the head file was edited"
            )
    if seq == 0:
        return problems
    by_seq = {r["seq"]: r for r in entries}
    newest = max(by_seq, default=0)
    entry = by_seq.get(seq)
    if entry is None:
        if newest < seq:
            problems.append(
                f"checkpoint: the chain ends at entry {newest}, but the checkpoint saw entry "
                f"{seq}: entries {newest + 1}..{seq} were deleted (truncated)"
            )
        else:
            problems.append(f"checkpoint: entry {seq} it names is missing (deleted)")
    elif str(entry["hash"]) != mac:
        problems.append(
            f"checkpoint: entry {seq} differs from the one the checkpoint saw (the chain was "
            "edited and re-chained)"
        )
    upto = sum(1 for s in by_seq if isinstance(s, int) and s <= seq)
    if upto != count:
        problems.append(
            f"checkpoint: it counted {count} entries up to {seq}, the chain has {upto} now"
        )
    return problems
