"""OpenLineage events: they validate against the spec's schemas (checked offline, against
tests/lineage/schemas), carry featureledger's facts, and reach each configured transport."""

from __future__ import annotations

import gzip
import json
import logging
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from featureledger.definitions import FeatureView, ViewSource
from featureledger.errors import ConfigError
from featureledger.lineage import (
    DatasetInfo,
    LineageSink,
    MemorySink,
    NullSink,
    training_column_lineage,
)
from featureledger.lineage.openlineage import (
    DEFAULT_EVENTS_PATH,
    OpenLineageSink,
    dataset_name,
    emit_run,
    event_dict,
    make_sink,
    read_events,
    run_events,
)
from featureledger.registry.base import RunRecord

from .conftest import USERS_SRC, fraud_records, run_id, run_record, tx, us

Validate = Callable[[dict[str, Any]], None]
SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("event_timestamp", pa.timestamp("us", tz="UTC")),
        ("f0", pa.float64()),
    ]
)


def rich_datasets(run: RunRecord) -> dict[str, DatasetInfo]:
    """Everything the store can say about a run's datasets."""
    info: dict[str, DatasetInfo] = {}
    for ident in run.inputs:
        info[ident] = DatasetInfo(
            schema=SCHEMA,
            rows=1000,
            content_hash="flh1:abc",
            column_metrics={"f0": {"nullCount": 3, "distinctCount": 90, "min": 0.0, "max": 9.5}},
            assertions=[
                {"assertion": "not_null", "success": True, "column": "f0", "severity": "error"},
                {"assertion": "row_count", "success": False, "name": "row_count"},
            ],
        )
    for ident in run.outputs:
        info[ident] = DatasetInfo(
            schema=[{"name": "f0", "type": "double", "description": "spend"}],
            rows=1000,
            content_hash="flh1:def",
            schema_hash="sh",
            operation="upsert",
            column_lineage={"f0": [(i, "f0") for i in run.inputs]},
        )
    return info


def runs() -> list[RunRecord]:
    return [r for r in fraud_records() if isinstance(r, RunRecord)]


# -- events ----------------------------------------------------------------------------------------
def test_every_event_validates(validate_event: Validate) -> None:
    checked = 0
    for run in runs():
        for datasets in ({}, rich_datasets(run)):
            for event in run_events(run, namespace="fraud-demo", datasets=datasets):
                validate_event(event_dict(event))
                checked += 1
    assert checked == 2 * 2 * len(runs())


@pytest.mark.parametrize(
    ("status", "states"),
    [
        ("succeeded", ["START", "COMPLETE"]),
        ("unchanged", ["START", "COMPLETE"]),
        ("failed", ["START", "FAIL"]),
        ("aborted", ["START", "ABORT"]),
        ("running", ["START"]),
    ],
)
def test_run_states(status: str, states: list[str], validate_event: Validate) -> None:
    run = run_record(run_id(1), "ingest", [], [us(1)], status=status)
    run = RunRecord(
        **{**run.__dict__, "error": "KeyConflictError: boom" if status == "failed" else ""}
    )
    events = [event_dict(e) for e in run_events(run)]
    assert [e["eventType"] for e in events] == states
    assert {e["run"]["runId"] for e in events} == {run_id(1)}
    assert events[0]["eventTime"] == run.started_at.isoformat()
    assert events[0].get("outputs", []) == []
    if len(events) == 2:
        assert events[1]["eventTime"] == run.ended_at.isoformat()  # type: ignore[union-attr]
        assert [o["name"] for o in events[1]["outputs"]] == ["feature_group/user_stats@v1"]
    error = events[-1]["run"]["facets"].get("errorMessage")
    assert (error is not None) == (status == "failed")
    if error:
        assert error["message"] == "KeyConflictError: boom"
        assert error["programmingLanguage"] == "PYTHON"
    for e in events:
        validate_event(e)


def test_mapping_of_jobs_datasets_and_facets() -> None:
    training = next(r for r in runs() if r.kind == "training-data")
    start, complete = (
        event_dict(e)
        for e in run_events(training, namespace="fraud-demo", datasets=rich_datasets(training))
    )
    assert complete["job"] == {
        "namespace": "fraud-demo",
        "name": "featureledger.training_data.fraud",
        "facets": complete["job"]["facets"],
    }
    assert complete["job"]["facets"]["jobType"]["jobType"] == "TRAINING_DATA"
    inputs = {i["name"]: i for i in complete["inputs"]}
    assert set(inputs) == {"feature_group/user_stats@v1", "feature_group/txn@v1"}
    users = inputs["feature_group/user_stats@v1"]
    assert users["namespace"] == "fraud-demo"
    assert users["facets"]["version"]["datasetVersion"] == "2"
    assert users["facets"]["featureledger_dataset"]["identity"] == us(2)
    assert users["facets"]["featureledger_dataset"]["contentHash"] == "flh1:abc"
    assert [f["name"] for f in users["facets"]["schema"]["fields"]] == SCHEMA.names
    assert users["facets"]["schema"]["fields"][1]["type"] == "timestamp[us, tz=UTC]"
    metrics = users["inputFacets"]["dataQualityMetrics"]
    assert metrics["rowCount"] == 1000 and metrics["columnMetrics"]["f0"]["nullCount"] == 3
    (output,) = complete["outputs"]
    assert output["name"] == "training_dataset/fraud@v1"
    assert output["facets"]["version"]["datasetVersion"] == "1"
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == 1000
    lineage = output["facets"]["columnLineage"]["fields"]["f0"]["inputFields"]
    assert {(f["name"], f["field"]) for f in lineage} == {
        ("feature_group/user_stats@v1", "f0"),
        ("feature_group/txn@v1", "f0"),
    }
    run_facet = complete["run"]["facets"]["featureledger_run"]
    assert run_facet["codeHash"] == "c0de" and run_facet["envHash"] == "e0e0"
    assert (
        run_facet["params"] == {"view": "fraud", "major": 1}
        and run_facet["kind"] == "training-data"
    )
    assert complete["run"]["facets"]["processing_engine"]["name"] == "featureledger"
    assert start["inputs"] == complete["inputs"]


def test_versioned_names_and_source_names() -> None:
    assert dataset_name(us(17), "ns") == ("ns", "feature_group/user_stats@v1", "17")
    assert dataset_name(us(17), "ns", versioned=True) == ("ns", us(17), "17")
    assert dataset_name("training_dataset/fraud@v1/3", "ns") == (
        "ns",
        "training_dataset/fraud@v1",
        "3",
    )
    assert dataset_name("model/fraud_xgb/4", "ns") == ("ns", "model/fraud_xgb", "4")
    assert dataset_name("feature_view/fraud@v1", "ns") == ("ns", "feature_view/fraud@v1", None)
    assert dataset_name(USERS_SRC, "ns") == ("s3://raw", "users.parquet", None)
    assert dataset_name("/data/raw/txn.csv", "ns") == ("file", "/data/raw/txn.csv", None)
    assert dataset_name("file:///data/raw/txn.csv", "ns") == ("file", "/data/raw/txn.csv", None)
    assert dataset_name("source/crm", "ns") == ("ns", "source/crm", None)
    ingest = next(r for r in runs() if r.kind == "ingest" and r.inputs)
    event = event_dict(run_events(ingest, versioned_names=True)[-1])
    assert event["outputs"][0]["name"] == ingest.outputs[0]
    assert event["inputs"][0]["namespace"] == "s3://raw"
    assert event["job"]["name"] == "featureledger.ingest.user_stats"


def test_a_run_id_that_is_not_a_uuid(validate_event: Validate) -> None:
    run = {"id": "ingest-42", "kind": "ingest", "status": "succeeded", "outputs": [tx(1)]}
    first, second = (event_dict(e) for e in run_events(run))
    assert first["run"]["runId"] == second["run"]["runId"]
    assert uuid.UUID(first["run"]["runId"]).version == 5
    assert first["run"]["facets"]["featureledger_run"]["recordedRunId"] == "ingest-42"
    assert run_events(run)[0].run.runId == first["run"]["runId"]  # stable across calls
    assert first["job"]["name"] == "featureledger.ingest.txn"
    validate_event(first)
    validate_event(second)


def test_a_pipeline_window_is_the_nominal_time(validate_event: Validate) -> None:
    run = run_record(
        run_id(5),
        "pipeline",
        ["/data/raw/txn.csv"],
        [tx(4)],
        params={
            "group": "txn",
            "start": "2025-03-01T00:00:00+00:00",
            "end": "2025-03-02T00:00:00+00:00",
        },
    )
    event = event_dict(run_events(run)[0])
    assert event["run"]["facets"]["nominalTime"]["nominalEndTime"] == "2025-03-02T00:00:00+00:00"
    validate_event(event)


def test_training_column_lineage_follows_the_view(validate_event: Validate) -> None:
    view = FeatureView(
        "fraud",
        [ViewSource("user_stats", ("f0", "f1"), 1), ViewSource("txn", ("g0",), 1)],
        version=1,
        full_feature_names=True,
    )
    pins = {"user_stats": {"identity": us(2)}, "txn": {"identity": tx(1)}}
    lineage = training_column_lineage(view, pins)
    assert lineage == {
        "user_stats__f0": [(us(2), "f0", "DIRECT", "IDENTITY")],
        "user_stats__f1": [(us(2), "f1", "DIRECT", "IDENTITY")],
        "txn__g0": [(tx(1), "g0", "DIRECT", "IDENTITY")],
    }
    run = run_record(run_id(9), "training-data", [us(2), tx(1)], ["training_dataset/fraud@v1/1"])
    event = event_dict(
        run_events(run, datasets={"training_dataset/fraud@v1/1": {"column_lineage": lineage}})[-1]
    )
    fields = event["outputs"][0]["facets"]["columnLineage"]["fields"]
    assert fields["txn__g0"]["inputFields"][0]["name"] == "feature_group/txn@v1"
    validate_event(event)


def test_unknown_dataset_info_fields_are_refused() -> None:
    with pytest.raises(TypeError, match="no field"):
        run_events(run_record(run_id(1), "ingest", [], [us(1)]), datasets={us(1): {"row": 3}})


# -- sinks -----------------------------------------------------------------------------------------
def test_default_sink_appends_json_lines_under_the_repository(
    tmp_path: Path, validate_event: Validate
) -> None:
    sink = make_sink(None, repo=tmp_path)
    assert isinstance(sink, OpenLineageSink) and isinstance(sink, LineageSink)
    for run in runs()[:3]:
        emit_run(sink, run, namespace="fraud-demo", datasets=rich_datasets(run))
    events = read_events(tmp_path / DEFAULT_EVENTS_PATH)
    assert len(events) == 6
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"] * 3
    for event in events:
        validate_event(event)


def test_file_sink_at_a_configured_path(tmp_path: Path) -> None:
    sink = make_sink({"type": "file", "path": "lineage/out.jsonl"}, repo=tmp_path)
    emit_run(sink, runs()[0])
    assert len(read_events(tmp_path / "lineage" / "out.jsonl")) == 2


def test_console_sink_logs_each_event(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="openlineage.client.transport.console")
    emit_run(make_sink({"type": "console"}), runs()[0], namespace="c")
    logged = [json.loads(r.getMessage()) for r in caplog.records if r.name.endswith("console")]
    assert [e["eventType"] for e in logged] == ["START", "COMPLETE"]


@pytest.mark.subprocess
def test_console_sink_prints_without_logging_setup_and_imports_lazily() -> None:
    code = (
        "import sys, featureledger.lineage as fl\n"
        "assert 'openlineage' not in sys.modules, 'imported eagerly'\n"
        "from featureledger.registry.base import RunRecord\n"
        "from datetime import datetime, UTC\n"
        "run = RunRecord('0f6e6c1a-5bb0-4c1d-9d1e-0a5a2f3c4d5e', 'ingest', 'succeeded', 'ada',"
        " datetime.now(UTC), datetime.now(UTC), outputs=['feature_group/g@v1#1'])\n"
        "fl.emit_run(fl.make_sink({'type': 'console'}), run, strict=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]


@pytest.fixture
def lineage_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local OpenLineage endpoint (like Marquez's) recording what it receives."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            received.append(
                {"path": self.path, "headers": dict(self.headers), "event": json.loads(body)}
            )
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def test_http_sink_posts_to_the_endpoint(
    lineage_server: tuple[str, list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    validate_event: Validate,
) -> None:
    url, received = lineage_server
    monkeypatch.setenv("FL_TEST_LINEAGE_KEY", "s3cret")
    sink = make_sink(
        {
            "type": "http",
            "url": url,
            "endpoint": "api/v1/lineage",
            "api_key_env": "FL_TEST_LINEAGE_KEY",
            "compression": "gzip",
            "headers": {"X-Team": "fraud"},
        }
    )
    run = runs()[1]
    emit_run(sink, run, namespace="fraud-demo", datasets=rich_datasets(run), strict=True)
    assert [r["path"] for r in received] == ["/api/v1/lineage"] * 2
    assert received[0]["headers"]["Authorization"] == "Bearer s3cret"
    assert received[0]["headers"]["X-Team"] == "fraud"
    assert [r["event"]["eventType"] for r in received] == ["START", "COMPLETE"]
    for r in received:
        validate_event(r["event"])


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"type": "http"}, "needs a url"),
        ({"type": "http", "url": "http://x", "token": "t"}, r"unknown key\(s\) \['token'\]"),
        ({"type": "http", "url": "http://x", "api_key_env": "FL_TEST_UNSET_KEY"}, "is not set"),
        ({"type": "file", "log_file_path": "x"}, "unknown key"),
        ({"type": "console", "path": "x"}, "unknown key"),
        ({"type": "no_such_module.Transport"}, "could not be created by openlineage-python"),
    ],
)
def test_bad_transport_config(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_sink(config)


def test_disabled_and_passthrough_sinks(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(make_sink({"type": "none"}), NullSink)
    noop = make_sink({"type": "noop"})  # an openlineage-python transport we do not wrap
    assert isinstance(noop, OpenLineageSink) and noop.transport.kind == "noop"
    monkeypatch.setenv("OPENLINEAGE_DISABLED", "true")
    assert isinstance(make_sink({"type": "console"}), NullSink)


def test_emission_is_best_effort(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def emit(self, event: Any) -> None:
            raise ConnectionError("marquez is down")

    run = runs()[0]
    with caplog.at_level(logging.WARNING, logger="featureledger.lineage"):
        events = emit_run(Broken(), run)
    assert len(events) == 2
    assert "marquez is down" in caplog.text and run.id in caplog.text
    with pytest.raises(ConnectionError):
        emit_run(Broken(), run, strict=True)
    memory = MemorySink()
    emit_run(memory, run)
    assert [e.eventType.value for e in memory.events] == ["START", "COMPLETE"]


@pytest.mark.parametrize(
    "breakage",
    [
        lambda e: e.pop("producer"),
        lambda e: e["run"].update(runId="not-a-uuid"),
        lambda e: e.update(eventType="DONE"),
        lambda e: e.update(eventTime="yesterday"),
        lambda e: e["job"].pop("name"),
        lambda e: e["outputs"][0]["facets"]["version"].pop("datasetVersion"),
        lambda e: e["outputs"][0]["facets"]["schema"]["fields"][0].pop("name"),
        lambda e: e["outputs"][0]["facets"]["featureledger_dataset"].update(rows="many"),
        lambda e: e["outputs"][0]["facets"]["featureledger_dataset"].update(surprise=1),
        lambda e: e["run"]["facets"]["featureledger_run"].pop("_producer"),
        lambda e: e["run"]["facets"]["processing_engine"].update(
            _schemaURL="https://openlineage.io/spec/facets/9-9-9/ProcessingEngineRunFacet.json"
        ),
    ],
)
def test_the_validator_catches_broken_events(
    breakage: Callable[[dict[str, Any]], Any], validate_event: Validate
) -> None:
    run = runs()[1]
    event = event_dict(run_events(run, datasets=rich_datasets(run))[-1])
    validate_event(event)
    breakage(event)
    with pytest.raises(AssertionError):
        validate_event(event)
