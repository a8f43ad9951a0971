"""ODCS against the standard's own files: the official v3.1.0 JSON schema and examples.

tests/contracts/data/odcs/README.md names their source and licence.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import given

from featureledger.contracts import (
    AllowedValues,
    Check,
    Contract,
    Freshness,
    IngestionDelay,
    RowCount,
    contract_from_yaml,
    contract_to_yaml,
    from_odcs,
    import_odcs,
    to_odcs,
)
from featureledger.errors import DefinitionError

from .test_yaml import ROUND_TRIP, contracts

DATA = Path(__file__).parent / "data" / "odcs"
EXAMPLES = sorted((DATA / "examples").glob("*.odcs.yaml"))


@cache
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads((DATA / "odcs-json-schema-v3.1.0.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def as_json(value: Any) -> Any:
    """What a JSON reader of the YAML sees: YAML's dates and times are strings there."""
    if isinstance(value, dict):
        return {str(k): as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


def schema_errors(doc: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator().iter_errors(as_json(doc))
    ]


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def test_the_shipped_files_are_the_official_ones():
    assert len(EXAMPLES) >= 15
    for path in EXAMPLES:
        assert schema_errors(load(path)) == [], path.name


# -- export ----------------------------------------------------------------------------------------
@ROUND_TRIP
@given(contracts())
def test_every_exported_contract_is_valid_odcs_v3_1(contract):
    doc = yaml.safe_load(to_odcs(contract))
    assert schema_errors(doc) == []
    assert from_odcs(doc) == contract


def test_an_exported_sla_is_valid_and_reads_back_exactly():
    contract = Contract(
        "tx",
        columns=["event_time", "created"],
        slos=[
            Freshness("event_time", "90m", severity="warn"),
            IngestionDelay("event_time", "created", "1d", name="late rows"),
        ],
        rules=[RowCount(5, 5)],
    )
    doc = yaml.safe_load(to_odcs(contract))
    assert schema_errors(doc) == []
    assert [s["property"] for s in doc["slaProperties"]] == ["freshness", "latency"]
    assert doc["schema"][0]["quality"][0]["mustBe"] == 5  # not mustBeBetween [5, 5]
    assert from_odcs(doc) == contract


# -- import ----------------------------------------------------------------------------------------
def objects(doc: dict[str, Any]) -> list[str | None]:
    return [o["name"] for o in doc.get("schema") or []] or [None]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name.removesuffix(".odcs.yaml"))
def test_each_official_example_imports_or_is_refused_item_by_item(path):
    doc = load(path)
    for name in objects(doc):
        lenient = import_odcs(doc, object=name, lenient=True)
        try:
            strict = import_odcs(doc, object=name)
        except DefinitionError as exc:
            # each item the lenient import dropped is named, with its reason, in the refusal
            assert lenient.dropped, str(exc)
            for item in lenient.dropped:
                assert item in str(exc)
                assert ": " in item
        else:
            assert lenient == strict and strict.dropped == ()
        contract = lenient.contract
        # what was imported is a working featureledger contract: its YAML reads back equal
        # and its own export is valid ODCS again
        assert contract_from_yaml(contract_to_yaml(contract)) == contract
        assert schema_errors(yaml.safe_load(to_odcs(contract))) == []


def test_the_official_examples_map_to_the_rules_they_state():
    accuracy = from_odcs(load(DATA / "examples" / "quality--column-accuracy.odcs.yaml"))
    # a SQL count over the literal table name is the row predicate it states
    assert accuracy.rules == (Check("NOT (DataValue <= 0 or DataValue >= 500)"),)
    completeness = from_odcs(load(DATA / "examples" / "quality--column-completeness.odcs.yaml"))
    assert [r.kind for r in completeness.rules] == ["not_null"]
    # a contract with no schema object (only SLAs) names its dataset by the contract's name
    sla = import_odcs(load(DATA / "examples" / "sla--database-table-sla.odcs.yaml"), lenient=True)
    assert sla.contract.dataset == "my_table" and sla.contract.columns == ()
    assert len(sla.dropped) == 1 and "latency names 1 element(s)" in sla.dropped[0]


def test_null_in_valid_values_means_nulls_are_valid():
    doc = {
        "apiVersion": "v3.1.0",
        "kind": "DataContract",
        "id": "x",
        "version": "1",
        "status": "active",
        "schema": [
            {
                "name": "t",
                "properties": [
                    {
                        "name": "s",
                        "quality": [
                            {
                                "metric": "invalidValues",
                                "arguments": {"validValues": ["a", None, "b"]},
                                "mustBe": 0,
                            }
                        ],
                    }
                ],
            }
        ],
    }
    assert schema_errors(doc) == []
    assert from_odcs(doc).rules == (AllowedValues("s", ["a", "b"]),)


def test_refusals_say_what_and_how_to_proceed():
    path = DATA / "examples" / "quality--column-validity.odcs.yaml"
    with pytest.raises(DefinitionError) as info:
        from_odcs(load(path))
    text = str(info.value)
    assert "'air_quality_status'" in text
    assert "mustBeLessOrEqualTo: 5 percent" in text and "admit no invalid row" in text
    assert "--lenient" in text
    multi = load(DATA / "examples" / "all--postgresql-adventureworks-contract.odcs.yaml")
    with pytest.raises(DefinitionError, match=r"schema holds \d+ objects .* --object NAME"):
        from_odcs(multi)
    assert from_odcs(multi, object="employee").dataset == "employee"
    with pytest.raises(DefinitionError, match="no schema object 'nope'"):
        from_odcs(multi, object="nope")


def test_cli_import_refuses_or_with_lenient_lists_what_it_dropped(tmp_path):
    from typer.testing import CliRunner

    from featureledger.cli.main import app

    source = DATA / "examples" / "quality--column-custom.odcs.yaml"
    out = tmp_path / "air.yaml"
    refused = CliRunner().invoke(app, ["contract", "import", str(source), "-o", str(out)])
    assert refused.exit_code == 1 and not out.exists()
    assert "engine 'soda'" in refused.output and "--lenient" in refused.output
    lenient = CliRunner().invoke(
        app, ["contract", "import", str(source), "-o", str(out), "--lenient"]
    )
    assert lenient.exit_code == 0, lenient.output
    assert lenient.output.count("dropped: ") == 2 and "2 item(s) dropped" in lenient.output
    assert contract_from_yaml(out.read_text()).dataset == "Air_Quality"
    many = DATA / "examples" / "all--postgresql-adventureworks-contract.odcs.yaml"
    picked = CliRunner().invoke(
        app, ["contract", "import", str(many), "-o", str(out), "--object", "shift"]
    )
    assert picked.exit_code == 0, picked.output
    assert contract_from_yaml(out.read_text()).dataset == "shift"
