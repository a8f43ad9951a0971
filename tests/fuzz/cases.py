"""Fuzz cases shared by the pytest suite (tests/fuzz/test_fuzz.py) and scripts/fuzz.py.

Each ``run_*`` function feeds one generated input to featureledger and returns its outcome
(``"accepted"`` or ``"refused:<ErrorClass>"``). It raises `AssertionError` when an
invariant breaks, and lets any exception outside `featureledger.errors` through: that is
a crash. Invariants: a refused input leaves the previous version unchanged (versions,
rows, content hash) and its message names the column or the row at fault.
"""

from __future__ import annotations

import csv
import json
import os
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from hypothesis import HealthCheck, assume, settings
from hypothesis import strategies as st

from featureledger import Entity, FeatureGroup, FeatureStore, Field, content_hash
from featureledger.contracts import evaluate, load_contract
from featureledger.contracts.odcs.native import contract_from_yaml, contract_to_dict
from featureledger.definitions import Contract
from featureledger.errors import FeatureLedgerError

T0 = datetime(2024, 1, 1, tzinfo=UTC)
USER = Entity("user", join_keys=["user_id"])
FEATURES = [Field("clicks", "int32"), Field("spend"), Field("label", "string")]
STRICT = FeatureGroup("strict_g", USER, features=FEATURES, created_time="created")
HELD = FeatureGroup("held_g", USER, features=FEATURES, created_time="created", policy="quarantine")
COLUMNS = ["user_id", "event_timestamp", "created", "clicks", "spend", "label"]
#: examples per fuzz test; the defaults keep tests/fuzz near a minute on a loaded 2-core machine
EXAMPLES = int(os.environ.get("FEATURELEDGER_FUZZ_EXAMPLES", "0"))


def fuzz_settings(default: int) -> settings:
    """``default`` examples (``FEATURELEDGER_FUZZ_EXAMPLES`` overrides it), no deadline."""
    return settings(
        max_examples=EXAMPLES or default,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )


FORMATS = ["rows", "columns", "pandas", "arrow", "polars", "parquet", "csv", "jsonl"]


def make_store(root: Path) -> FeatureStore:
    store = FeatureStore.init(root)
    store.apply([USER, STRICT, HELD])
    return store


# -- values ---------------------------------------------------------------------------------------
ZONES = st.sampled_from([None, UTC, ZoneInfo("Asia/Tokyo"), ZoneInfo("America/New_York")])
ANY_TIME = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=ZONES),
    # pandas Timestamps carry nanoseconds
    st.integers(-(2**63) + 1, 2**63 - 1).map(lambda ns: pd.Timestamp(ns, tz="UTC")),
)
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.binary(max_size=4),
    st.dates(),
    ANY_TIME,
    st.lists(st.integers(0, 3), max_size=2),
)
TYPICAL: dict[str, st.SearchStrategy[Any]] = {
    "user_id": st.integers(0, 30),
    "event_timestamp": st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2026, 1, 1), timezones=st.just(UTC)
    ),
    "created": st.just(T0),
    "clicks": st.integers(-(2**31), 2**31 - 1),
    "spend": st.floats(allow_nan=False, width=64),
    "label": st.text(max_size=5),
}


def mostly(
    good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any], one_in: int
) -> st.SearchStrategy[Any]:
    """``bad`` about once in ``one_in`` draws (a plain one_of would draw it half the time)."""
    return st.integers(1, one_in).flatmap(lambda i: bad if i == one_in else good)


def cell(column: str) -> st.SearchStrategy[Any]:
    # about one cell in 25 is junk, so most batches have a fault in some row, not in all
    return mostly(TYPICAL.get(column, JUNK), JUNK, 25)


@st.composite
def frames(draw: st.DrawFn) -> tuple[str, list[str], list[list[Any]]]:
    """``(format, column names, rows as lists)``: mostly well-formed, sometimes not."""
    names = list(COLUMNS)
    change = draw(st.sampled_from(["none"] * 6 + ["drop", "extra", "dup", "shuffle"]))
    if change == "drop":
        names.remove(draw(st.sampled_from(COLUMNS)))
    elif change == "extra":
        names.append(draw(st.sampled_from(["extra", "User_id", "event_time"])))
    elif change == "dup":
        names.append(draw(st.sampled_from(COLUMNS)))
    elif change == "shuffle":
        names = draw(st.permutations(names))
    # empty batches are a fixed example of the test: hypothesis would favour them here
    n = draw(st.integers(1, 6))
    rows = [[draw(cell(c)) for c in names] for _ in range(n)]
    return draw(st.sampled_from(FORMATS)), names, rows


def build(fmt: str, names: list[str], rows: list[list[Any]], folder: Path) -> Any:
    """The input in ``fmt``; an input that format cannot hold is skipped (not our bug)."""
    columns = [[r[i] for r in rows] for i in range(len(names))]
    if fmt == "rows":
        return [dict(zip(names, r, strict=True)) for r in rows]
    if fmt == "columns":
        return dict(zip(names, columns, strict=True))
    if fmt == "csv":
        path = folder / "batch.csv"
        with open(path, "w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(names)
            out.writerows([[_text(v) for v in r] for r in rows])
        return path
    if fmt == "jsonl":
        # what an HTTP client or a log shipper sends: JSON objects, times as ISO strings
        return [
            json.loads(json.dumps(dict(zip(names, r, strict=True)), default=_text)) for r in rows
        ]
    try:
        if fmt == "pandas":
            return pd.DataFrame(rows, columns=names)
        table = pa.Table.from_arrays([_column(c) for c in columns], names=names)
        if fmt == "polars":
            return pl.from_arrow(table)
    except Exception:  # pandas/pyarrow/polars cannot build it: not an input of ours
        assume(False)
        raise
    if fmt == "parquet":
        path = folder / "batch.parquet"
        pq.write_table(table, path)
        return path
    return table


def _column(values: list[Any]) -> pa.Array:
    """An Arrow column of ``values``; mixed ones as text, as a CSV export would give."""
    try:
        return pa.array(values)
    except (pa.ArrowException, OverflowError, ValueError, TypeError):
        return pa.array([None if v is None else _text(v) for v in values], pa.string())


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


# -- invariants ----------------------------------------------------------------------------------
class Snapshot:
    """A group's versions, rows and content hash, to compare after a refused call."""

    def __init__(self, store: FeatureStore, group: str) -> None:
        self.store, self.group = store, group
        self.versions = store.versions(group)
        self.rows = store.read(group)

    def unchanged(self) -> None:
        assert self.store.versions(self.group) == self.versions, "a refused input wrote a version"
        now = self.store.read(self.group)
        assert now.equals(self.rows), "a refused input changed the rows"


def names_the_place(message: str, columns: list[str]) -> bool:
    """Whether an error message says which column or row is at fault."""
    if any(repr(c) in message for c in {*columns, *COLUMNS}):
        return True
    return bool(re.search(r"\brows? \[?\d|no rows|empty|cannot read data of type", message))


def run_ingest(
    store: FeatureStore, case: tuple[str, list[str], list[list[Any]]], folder: Path
) -> str:
    fmt, names, rows = case
    data = build(fmt, names, rows, folder)
    outcomes = []
    for group in (STRICT.name, HELD.name):
        before = Snapshot(store, group)
        held_before = store.quarantined(group).num_rows
        try:
            version = store.ingest(group, data)
        except FeatureLedgerError as exc:
            before.unchanged()
            assert names_the_place(str(exc), names), str(exc)
            outcomes.append(f"refused:{type(exc).__name__}")
            continue
        # what was published reads back whole, as Python values too, and hashes as recorded
        table = store.read(group)
        table.to_pylist()
        assert content_hash(table) == version.content
        held = store.quarantined(group).num_rows - held_before
        assert held <= len(rows)
        outcomes.append("accepted" if held == 0 else "quarantined")
    return f"strict: {outcomes[0]}, quarantine: {outcomes[1]}"


# -- contract YAML ------------------------------------------------------------------------------
SAMPLE = {
    "apiVersion": "featureledger/v1",
    "kind": "DataContract",
    "dataset": "strict_g",
    "schema": [
        {
            "name": "strict_g",
            "properties": [
                {
                    "name": "user_id",
                    "physicalType": "int64",
                    "required": True,
                    "quality": [{"rule": "unique"}],
                },
                {
                    "name": "spend",
                    "physicalType": "float64",
                    "quality": [
                        {"rule": "range", "min": 0, "max": 100},
                        {"rule": "max_null_fraction", "max_fraction": 0.5},
                    ],
                },
                {
                    "name": "label",
                    "physicalType": "string",
                    "classification": "pii",
                    "quality": [{"rule": "allowed_values", "values": ["a", "b"]}],
                },
                {"name": "event_timestamp", "physicalType": "timestamp"},
            ],
        }
    ],
    "slaProperties": [{"rule": "freshness", "column": "event_timestamp", "max_age": "1d"}],
}
YAML_JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**80), 2**80),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(
        ["99999999999999999999d", "-1d", "1e400", ".inf", "nan", "", "0s", "1d2x", "int64"]
    ),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@st.composite
def mutated(draw: st.DrawFn, value: Any) -> Any:
    """``value`` with some leaves replaced by junk and some keys dropped."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if draw(st.integers(0, 39)) == 0:
                continue
            out[k] = draw(mutated(v))
        if draw(st.integers(0, 19)) == 0:
            out[draw(st.sampled_from(["extra", "rule", "max_age", "min"]))] = draw(YAML_JUNK)
        return out
    if isinstance(value, list):
        return [draw(mutated(v)) for v in value]
    return draw(YAML_JUNK) if draw(st.integers(0, 24)) == 0 else value


def contract_texts() -> st.SearchStrategy[str]:
    return st.one_of(
        mostly(
            mutated(SAMPLE).map(lambda d: yaml.safe_dump(d, sort_keys=False)),
            st.one_of(st.text(max_size=60), st.just("dataset: [" * 200)),
            8,
        ),
    )


CONTRACT_BATCH = pa.table(
    {
        "user_id": pa.array([1, 2, 2], pa.int64()),
        "spend": [1.0, None, 500.0],
        "label": ["a", "z", None],
        "event_timestamp": pa.array([T0, T0, T0], pa.timestamp("us", "UTC")),
    }
)


def run_contract(text: str) -> str:
    try:
        # YAML text or a path, as `featureledger contract` commands take them
        contract = load_contract(text)
    except FeatureLedgerError as exc:
        return f"refused:{type(exc).__name__}"
    assert isinstance(contract, Contract)
    again = contract_from_yaml(yaml.safe_dump(contract_to_dict(contract), sort_keys=False))
    assert again == contract, "a contract does not read back as written"
    try:
        evaluate(contract, CONTRACT_BATCH, now=T0 + timedelta(days=1))
    except FeatureLedgerError as exc:
        return f"evaluated-refused:{type(exc).__name__}"
    return "accepted"


# -- definitions --------------------------------------------------------------------------------
VALID = st.sampled_from(["user_id", "g", "clicks", "x1"])
NAMES = mostly(VALID, JUNK, 10)
SEQUENCES = st.one_of(JUNK, st.lists(NAMES, max_size=3))


@st.composite
def definitions(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    kind = draw(st.sampled_from(["entity", "feature_group", "field"]))
    if kind == "entity":
        kwargs = {"name": draw(NAMES), "join_keys": draw(SEQUENCES), "tags": draw(JUNK)}
    elif kind == "field":
        kwargs = {"name": draw(NAMES), "dtype": draw(st.one_of(JUNK, st.just("int32")))}
    else:
        kwargs = {
            "name": draw(NAMES),
            "entity": draw(st.one_of(st.just(USER), JUNK, st.lists(st.just(USER), max_size=2))),
            "features": draw(SEQUENCES),
            "event_time": draw(st.one_of(st.just("event_timestamp"), NAMES)),
            "created_time": draw(st.one_of(st.none(), NAMES)),
            "ttl": draw(st.one_of(st.none(), st.timedeltas(), JUNK)),
            "version": draw(st.one_of(st.none(), JUNK)),
            "licenses": draw(SEQUENCES),
            "tags": draw(st.one_of(st.just({}), JUNK)),
            "policy": draw(st.one_of(st.just("strict"), JUNK)),
        }
    drop = draw(st.lists(st.sampled_from(sorted(kwargs)), max_size=2))
    # name and entity are required arguments: leaving them out is a TypeError by design
    return kind, {k: v for k, v in kwargs.items() if k not in drop or k in ("name", "entity")}


def run_definition(case: tuple[str, dict[str, Any]]) -> str:
    kind, kwargs = case
    cls = {"entity": Entity, "feature_group": FeatureGroup, "field": Field}[kind]
    try:
        made = cls(**kwargs)
    except FeatureLedgerError as exc:
        return f"refused:{type(exc).__name__}"
    if isinstance(made, Entity | FeatureGroup):
        assert type(made).from_dict(made.to_dict()).to_dict() == made.to_dict()
    # a string is one name, never the sequence of its characters
    if isinstance(made, Entity) and isinstance(kwargs.get("join_keys"), str):
        assert made.key_names == (kwargs["join_keys"],)
    if isinstance(made, FeatureGroup) and isinstance(kwargs.get("licenses"), str):
        assert made.licenses == (kwargs["licenses"],)
    return "accepted"


# -- HTTP bodies --------------------------------------------------------------------------------
JSON = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=6)
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
PUSH_ROW = st.fixed_dictionaries(
    {
        "user_id": st.one_of(st.integers(0, 30), JSON),
        "event_timestamp": st.one_of(
            st.just("2024-01-01T00:00:00Z"),
            st.just("2024-01-01T00:00:00.000000001Z"),
            st.just("0001-01-01T00:00:00Z"),
            st.just("2024-01-01T00:00:00"),
            JSON,
        ),
        "created": st.one_of(st.just("2024-01-01T00:00:00+00:00"), JSON),
        "clicks": st.one_of(st.integers(), JSON),
        "spend": st.one_of(st.floats(allow_nan=False, allow_infinity=False), JSON),
        "label": st.one_of(st.text(max_size=4), JSON),
    }
)


def http_bodies() -> st.SearchStrategy[tuple[str, str, bytes]]:
    """``(path, token role, body)``."""
    bodies = st.one_of(
        st.fixed_dictionaries(
            {"rows": st.lists(PUSH_ROW, max_size=3), "to": st.sampled_from(["offline", "x"])}
        ).map(lambda d: json.dumps(d).encode()),
        JSON.map(lambda d: json.dumps(d).encode()),
        st.binary(max_size=40),
        st.integers(1, 200_000).map(lambda n: b"[" * n + b"]" * n),
    )
    paths = st.sampled_from(["/push/strict_g", "/push/held_g", "/features/v", "/push/nope"])
    return st.tuples(paths, st.sampled_from(["writer", "reader", "none"]), bodies)


def run_http(
    client: Any, tokens: dict[str, str], store: FeatureStore, case: tuple[str, str, bytes]
) -> str:
    path, role, body = case
    headers = {"Content-Type": "application/json"}
    if role in tokens:
        headers["Authorization"] = f"Bearer {tokens[role]}"
    before = Snapshot(store, STRICT.name)
    response = client.post(path, content=body, headers=headers)
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        before.unchanged()
        return f"refused:{response.status_code}"
    return "accepted"
