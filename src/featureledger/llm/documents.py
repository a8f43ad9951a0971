"""Corpus documents: their columns, per-document hashes, and the gate deciding what enters.

A document is (doc_id, text, source_uri, license, pii, metadata); ``pii`` is the owner's
classification ("none" when the document holds no personal data), ``metadata`` a JSON
object of strings. The gate runs vectorized on Arrow (RE2 regular expressions); PII
detectors run only when a contract names them (an explicit opt-in), because regexes both
miss personal data and flag harmless text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureledger.errors import DataError

#: the stored columns of a corpus, in order (doc_id is the key)
COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("doc_id", pa.string()),
    ("text", pa.string()),
    ("source_uri", pa.string()),
    ("license", pa.string()),
    ("pii", pa.string()),
    ("metadata", pa.string()),
    ("doc_hash", pa.string()),
)
#: why a rejected document was refused (a list of reasons per document)
REASONS = "_fl_reasons"

#: RE2 patterns of the opt-in detectors; deliberately simple (see the module docstring)
DETECTORS: dict[str, str] = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    "phone": r"\+?\d[\d ()-]{8,}\d",
    "credit_card": r"\b(?:\d[ -]?){12,15}\d\b",
    "iban": r"\b[A-Z]{2}\d{2}[A-Z0-9]{11,30}\b",
}
#: Unicode scripts a contract may require the letters of a text to be written in
SCRIPTS = ("Latin", "Cyrillic", "Greek", "Arabic", "Hebrew", "Han", "Hiragana", "Katakana")


@dataclass(frozen=True)
class CorpusContract:
    """What a document must satisfy to enter a corpus; the others are kept as rejected.

    ``licenses``: the allow-list (None: any). ``scripts``: at least ``script_share`` of a
    text's letters must be in these Unicode scripts (a cheap stand-in for a language check).
    ``pii_detectors``: detectors to run (empty: none, the default); ``pii_action``
    "reject" refuses a document where one fires and whose ``pii`` says "none", "label"
    records what was found in ``pii`` instead.
    """

    min_chars: int = 1
    max_chars: int = 1_000_000
    licenses: Sequence[str] | None = None
    scripts: Sequence[str] | None = None
    script_share: float = 0.8
    pii_detectors: Sequence[str] = ()
    pii_action: Literal["reject", "label"] = "reject"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.pii_detectors) - set(DETECTORS))
        if unknown:
            raise DataError(
                f"corpus contract: unknown PII detector(s) {unknown}; known: {sorted(DETECTORS)}"
            )
        bad = sorted(set(self.scripts or ()) - set(SCRIPTS))
        if bad:
            raise DataError(f"corpus contract: unknown script(s) {bad}; known: {list(SCRIPTS)}")
        if self.pii_action not in ("reject", "label"):
            raise DataError("corpus contract: pii_action must be 'reject' or 'label'")

    def to_dict(self) -> dict[str, Any]:
        return {
            "min_chars": self.min_chars,
            "max_chars": self.max_chars,
            "licenses": None if self.licenses is None else sorted(self.licenses),
            "scripts": None if self.scripts is None else list(self.scripts),
            "script_share": self.script_share,
            "pii_detectors": list(self.pii_detectors),
            "pii_action": self.pii_action,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CorpusContract:
        return cls(**dict(data))


def document_hash(
    doc_id: str, text: str, source_uri: str, license: str, pii: str, metadata: str
) -> str:
    """``d1:`` + SHA-256 of the document's fields, length-prefixed so no two differ only
    in where one field ends (the identity of a document version)."""
    h = hashlib.sha256()
    for part in (doc_id, text, source_uri, license, pii, metadata):
        raw = part.encode("utf-8")
        h.update(len(raw).to_bytes(8, "little"))
        h.update(raw)
    return "d1:" + h.hexdigest()[:32]


def conform_documents(data: Any, *, default_license: str = "", where: str) -> pa.Table:
    """Documents (an Arrow table, a list of dicts, pandas) as the corpus's columns, with
    their hashes. Missing optional columns get defaults; ``metadata`` dicts become JSON."""
    if isinstance(data, pa.Table):
        rows = data.to_pylist()
    elif isinstance(data, Sequence):
        rows = [dict(r) for r in data]
    elif hasattr(data, "to_dict"):
        rows = data.to_dict("records")
    else:
        raise DataError(f"{where}: documents must be a list of dicts, an Arrow table or pandas")
    out: dict[str, list[str]] = {name: [] for name, _ in COLUMNS}
    for i, row in enumerate(rows):
        if not row.get("doc_id") or row.get("text") is None:
            raise DataError(
                f"{where}: document {i} has no doc_id or no text; every document needs both"
            )
        text = row["text"]
        if isinstance(text, bytes):  # left for the gate to refuse if it is not UTF-8
            text = text.decode("utf-8", errors="replace")
        meta = row.get("metadata") or {}
        if isinstance(meta, str):
            meta = json.loads(meta)
        fields = [
            str(row["doc_id"]),
            str(text),
            str(row.get("source_uri") or ""),
            str(row.get("license") or default_license),
            str(row.get("pii") or "none"),
            json.dumps({str(k): str(v) for k, v in meta.items()}, sort_keys=True),
        ]
        for (name, _), value in zip(COLUMNS, fields, strict=False):
            out[name].append(value)
        out["doc_hash"].append(document_hash(*fields))
    return pa.table({n: pa.array(out[n], t) for n, t in COLUMNS})


def gate_documents(docs: pa.Table, contract: CorpusContract | None) -> tuple[pa.Table, pa.Table]:
    """Split documents into (accepted, rejected); rejected rows carry their reasons in
    `REASONS`. Label-mode PII findings rewrite ``pii`` (and so ``doc_hash``) of accepted ones."""
    n = docs.num_rows
    reasons: list[list[str]] = [[] for _ in range(n)]
    if n == 0:
        return docs, docs.append_column(REASONS, pa.array([], pa.list_(pa.string())))
    text = docs.column("text")
    fails: list[tuple[np.ndarray, str]] = []
    # text decoded from bytes that were not UTF-8 carries U+FFFD; control characters too
    bad_encoding = pc.match_substring_regex(text, r"[\x{FFFD}\x00-\x08\x0B\x0C\x0E-\x1F]")
    fails.append((_np(bad_encoding), "encoding: not clean UTF-8 text"))
    dupes = pc.value_counts(docs.column("doc_id"))
    if max(dupes.field("counts").to_pylist()) > 1:
        raise DataError("documents repeat a doc_id in one batch; send each document once")
    if contract is not None:
        length = pc.utf8_length(text)
        fails.append(
            (_np(pc.less(length, contract.min_chars)), f"length: under {contract.min_chars} chars")
        )
        fails.append(
            (
                _np(pc.greater(length, contract.max_chars)),
                f"length: over {contract.max_chars} chars",
            )
        )
        if contract.licenses is not None:
            allowed = pa.array(sorted(contract.licenses), pa.string())
            lic = pc.is_in(docs.column("license"), value_set=allowed)
            fails.append((~_np(lic), f"license: not in the allow-list {sorted(contract.licenses)}"))
        if contract.scripts:
            letters = pc.count_substring_regex(text, r"\pL").to_numpy(zero_copy_only=False)
            alts = "".join(f"\\p{{{s}}}" for s in contract.scripts)
            inside = pc.count_substring_regex(text, f"[{alts}]").to_numpy(zero_copy_only=False)
            share = np.where(letters > 0, inside / np.maximum(letters, 1), 1.0)
            fails.append(
                (
                    share < contract.script_share,
                    f"script: under {contract.script_share:.0%} "
                    f"of letters in {list(contract.scripts)}",
                )
            )
    for mask, why in fails:
        for i in np.flatnonzero(mask):
            reasons[i].append(why)
    pii = docs.column("pii").to_pylist()
    relabel = False
    if contract is not None and contract.pii_detectors:
        undeclared = _np(pc.equal(docs.column("pii"), "none"))
        for name in contract.pii_detectors:
            found = _np(pc.match_substring_regex(text, DETECTORS[name])) & undeclared
            for i in np.flatnonzero(found):
                if contract.pii_action == "reject":
                    reasons[i].append(f"pii: the {name} detector fired but pii says 'none'")
                else:
                    pii[i] = name if pii[i] == "none" else f"{pii[i]},{name}"
                    relabel = True
    if relabel:
        docs = _relabel(docs, pii)
    bad = np.array([bool(r) for r in reasons])
    rejected = docs.filter(pa.array(bad)).append_column(
        REASONS, pa.array([r for r in reasons if r], pa.list_(pa.string()))
    )
    return docs.filter(pa.array(~bad)), rejected


def _relabel(docs: pa.Table, pii: list[str]) -> pa.Table:
    cols = {name: docs.column(name).to_pylist() for name, _ in COLUMNS}
    cols["pii"] = pii
    cols["doc_hash"] = [
        document_hash(*(cols[n][i] for n, _ in COLUMNS[:6])) for i in range(docs.num_rows)
    ]
    return pa.table({n: pa.array(cols[n], t) for n, t in COLUMNS})


def _np(mask: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def diff_documents(old: pa.Table, new: pa.Table) -> dict[str, list[str]]:
    """Document ids added, removed and changed (same id, another hash) from ``old`` to ``new``."""
    before = dict(
        zip(old.column("doc_id").to_pylist(), old.column("doc_hash").to_pylist(), strict=True)
    )
    after = dict(
        zip(new.column("doc_id").to_pylist(), new.column("doc_hash").to_pylist(), strict=True)
    )
    return {
        "added": sorted(after.keys() - before.keys()),
        "removed": sorted(before.keys() - after.keys()),
        "changed": sorted(k for k in before.keys() & after.keys() if before[k] != after[k]),
    }
