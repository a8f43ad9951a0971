"""Classify a definition change as none, patch, minor or major (breaking).

Pure functions over the definitions' ``to_dict`` forms, so `plan`, `apply` and
contract diffs agree on one table of rules (docs/concepts.md lists it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from featureledger.definitions.code import BODY
from featureledger.definitions.types import is_widening, parse_type

Level = Literal["none", "patch", "minor", "major"]
_ORDER: dict[str, int] = {"none": 0, "patch": 1, "minor": 2, "major": 3}


@dataclass
class Change:
    """The outcome of comparing two versions of one definition."""

    level: Level = "none"
    reasons: list[str] = field(default_factory=list)
    #: columns whose stored type must be widened (minor changes that rewrite storage)
    widened: dict[str, str] = field(default_factory=dict)
    added: list[str] = field(default_factory=list)

    def note(self, level: Level, reason: str) -> None:
        self.reasons.append(f"{reason} [{level}]")
        if _ORDER[level] > _ORDER[self.level]:
            self.level = level

    @property
    def breaking(self) -> bool:
        return self.level == "major"

    def breaking_reasons(self) -> list[str]:
        return [r.removesuffix(" [major]") for r in self.reasons if r.endswith("[major]")]


def bump(version: tuple[int, int, int], level: Level) -> tuple[int, int, int]:
    """The next semantic version after a change of ``level`` (major is never bumped here)."""
    major, minor, patch = version
    if level == "minor":
        return (major, minor + 1, 0)
    if level == "patch":
        return (major, minor, patch + 1)
    return version


def _fields(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in items}


def classify_entity(old: dict[str, Any], new: dict[str, Any]) -> Change:
    change = Change()
    if old["join_keys"] != new["join_keys"]:
        before = [(k["name"], k["dtype"]) for k in old["join_keys"]]
        after = [(k["name"], k["dtype"]) for k in new["join_keys"]]
        if before != after:
            change.note("major", f"join keys changed from {before} to {after}")
        else:
            change.note("patch", "join key descriptions changed")
    for key in ("description", "owner", "tags"):
        if old.get(key) != new.get(key):
            change.note("patch", f"{key} changed")
    return change


def classify_group(old: dict[str, Any], new: dict[str, Any]) -> Change:
    change = Change()
    old_keys = [(k["name"], k["dtype"]) for e in old["entities"] for k in e["join_keys"]]
    new_keys = [(k["name"], k["dtype"]) for e in new["entities"] for k in e["join_keys"]]
    if old_keys != new_keys:
        change.note("major", f"primary key changed from {old_keys} to {new_keys}")
    for col in ("event_time", "created_time"):
        if old.get(col) != new.get(col):
            change.note("major", f"{col} changed from {old.get(col)!r} to {new.get(col)!r}")
    before, after = _fields(old["features"]), _fields(new["features"])
    for name, f in before.items():
        if name not in after:
            change.note("major", f"column {name!r} removed (or renamed)")
            continue
        g = after[name]
        if f["dtype"] != g["dtype"]:
            if is_widening(parse_type(f["dtype"]), parse_type(g["dtype"])):
                change.note("minor", f"column {name!r} widened from {f['dtype']} to {g['dtype']}")
                change.widened[name] = g["dtype"]
            else:
                change.note("major", f"column {name!r} retyped from {f['dtype']} to {g['dtype']}")
        if f.get("classification", "internal") != g.get("classification", "internal"):
            change.note("minor", f"column {name!r} classification changed")
        for key in ("description", "tags"):
            if f.get(key) != g.get(key):
                change.note("patch", f"column {name!r} {key} changed")
    for name in after:
        if name not in before:
            change.note("minor", f"column {name!r} added")
            change.added.append(name)
    if [*before] != [n for n in after if n in before]:
        change.note("patch", "feature order changed")
    if old.get("ttl_seconds") != new.get("ttl_seconds"):
        change.note(
            "minor", f"ttl changed from {old.get('ttl_seconds')}s to {new.get('ttl_seconds')}s"
        )
    if old.get("online") != new.get("online"):
        change.note("minor", f"online changed to {new.get('online')}")
    if old.get("policy", "strict") != new.get("policy", "strict"):
        change.note("minor", f"ingest policy changed to {new.get('policy', 'strict')}")
    if old.get("source") != new.get("source"):
        change.note("minor", "pipeline source changed")
    if old.get("transform") != new.get("transform"):
        change.note("minor", transform_change(old.get("transform"), new.get("transform")))
    if sorted(old.get("licenses", [])) != sorted(new.get("licenses", [])):
        change.note("minor", "licenses changed")
    for key in ("description", "owner", "tags"):
        if old.get(key) != new.get(key):
            change.note("patch", f"{key} changed")
    return change


def transform_change(old: dict[str, Any] | None, new: dict[str, Any] | None) -> str:
    """What changed in a pipeline transformation, naming the parts of a Python function."""
    if not old or not new or old.get("type") != new.get("type"):
        return "pipeline transformation changed"
    before, after = old.get("code_parts") or {}, new.get("code_parts") or {}
    if not before and new.get("code_hash", "").startswith("fn1:"):
        # recorded before per-function hashes: a whole-source hash cannot be compared
        return (
            "pipeline transformation re-hashed per function (fn1); the old whole-source "
            "record cannot tell what changed"
        )
    named = [
        ("its body" if k == BODY else repr(k))
        + (" added" if k not in before else " removed" if k not in after else "")
        for k in sorted(set(before) | set(after))
        if before.get(k) != after.get(k)
    ]
    if old.get("name") != new.get("name"):
        named.append(f"renamed {old.get('name')!r} -> {new.get('name')!r}")
    if old.get("imports") != new.get("imports") and not named:
        named.append("packages used")
    return "pipeline transformation changed" + (f": {', '.join(named)}" if named else "")


def classify_view(old: dict[str, Any], new: dict[str, Any]) -> Change:
    change = Change()
    before = {s["group"]: s for s in old["sources"]}
    after = {s["group"]: s for s in new["sources"]}
    for group, s in before.items():
        if group not in after:
            change.note("major", f"group {group!r} removed from the view")
            continue
        t = after[group]
        if s.get("major") != t.get("major"):
            change.note(
                "major", f"group {group!r} moved from v{s.get('major')} to v{t.get('major')}"
            )
        removed = [f for f in s["features"] if f not in t["features"]]
        if removed:
            change.note("major", f"feature(s) {removed} of {group!r} removed from the view")
        added = [f for f in t["features"] if f not in s["features"]]
        if added:
            change.note("minor", f"feature(s) {added} of {group!r} added")
        if s.get("join_key_map", {}) != t.get("join_key_map", {}):
            change.note("major", f"join_key_map of {group!r} changed")
    for group in after:
        if group not in before:
            change.note("minor", f"group {group!r} added to the view")
    before_odt = {o["name"]: o for o in old.get("on_demand", [])}
    after_odt = {o["name"]: o for o in new.get("on_demand", [])}
    for name, o in before_odt.items():
        if name not in after_odt:
            change.note("major", f"on-demand transform {name!r} removed")
            continue
        gone = {f["name"] for f in o["outputs"]} - {f["name"] for f in after_odt[name]["outputs"]}
        if gone:
            change.note("major", f"on-demand transform {name!r} no longer outputs {sorted(gone)}")
        elif o != after_odt[name]:
            change.note("minor", f"on-demand transform {name!r} changed")
    for name in after_odt:
        if name not in before_odt:
            change.note("minor", f"on-demand transform {name!r} added")
    if old.get("use") != new.get("use"):
        change.note("minor", f"declared use changed to {new.get('use')!r}")
    if old.get("purpose", "") != new.get("purpose", ""):
        change.note("patch", "purpose changed")
    if old.get("full_feature_names") != new.get("full_feature_names"):
        change.note("major", "full_feature_names changed, which renames every output column")
    for key in ("description", "owner", "tags"):
        if old.get(key) != new.get(key):
            change.note("patch", f"{key} changed")
    return change
