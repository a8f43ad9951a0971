"""Runs record their owner and a heartbeat; dead runs are found abandoned; `featureledger runs`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from featureledger import Entity, FeatureGroup, FeatureStore, Field
from featureledger.cli.main import app
from featureledger.config import RepoConfig
from featureledger.errors import ConfigError, DataError
from featureledger.registry import RunRecord
from featureledger.store._runs import HOST

USER = Entity("user", join_keys=["user_id"])
STATS = FeatureGroup("stats", USER, features=[Field("clicks", "int64")])


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _running(run_id: str, **owner: object) -> RunRecord:
    started = owner.pop("started_at", datetime.now(UTC))
    return RunRecord(run_id, "materialize", "running", "ana", started, **owner)  # type: ignore[arg-type]


def test_a_run_records_its_owner_and_heartbeat(store: FeatureStore) -> None:
    store.apply([USER, STATS])
    store.ingest("stats", {"user_id": [1], "event_timestamp": [datetime.now(UTC)], "clicks": [2]})
    run = store.runs()[-1]
    assert run.status == "succeeded"
    assert run.host == HOST and run.pid == os.getpid()
    assert run.heartbeat_at is not None and run.heartbeat_at >= run.started_at


def test_runs_whose_process_is_gone_are_abandoned_when_listed(store: FeatureStore) -> None:
    reg = store.registry
    long_ago = datetime.now(UTC) - timedelta(days=2)
    reg.start_run(_running("dead", host=HOST, pid=_dead_pid(), heartbeat_at=datetime.now(UTC)))
    reg.start_run(_running("alive", host=HOST, pid=os.getppid(), heartbeat_at=datetime.now(UTC)))
    # another host: only the heartbeat can tell
    reg.start_run(_running("silent", host="elsewhere", pid=1, heartbeat_at=long_ago))
    reg.start_run(_running("beating", host="elsewhere", pid=1, heartbeat_at=datetime.now(UTC)))
    reg.start_run(_running("legacy", started_at=long_ago))  # before migration 0003
    # a pid reused by a process that started after the run did
    reg.start_run(_running("reused", host=HOST, pid=os.getpid(), started_at=long_ago))
    assert {r.id for r in store.runs("running")} == {"alive", "beating"}
    abandoned = {r.id: r for r in store.runs("abandoned")}
    assert set(abandoned) == {"dead", "silent", "legacy", "reused"}
    assert "is gone" in abandoned["dead"].error
    assert "no heartbeat" in abandoned["silent"].error
    assert all(r.ended_at is not None for r in abandoned.values())
    with pytest.raises(DataError, match="unknown state"):
        store.runs("stuck")


def test_a_new_run_abandons_dead_ones_first(store: FeatureStore) -> None:
    store.registry.start_run(_running("dead", host=HOST, pid=_dead_pid()))
    store.apply([USER, STATS])
    store.ingest("stats", {"user_id": [1], "event_timestamp": [datetime.now(UTC)], "clicks": [2]})
    dead = store.registry.run("dead")
    assert dead is not None and dead.status == "abandoned"


def test_the_heartbeat_keeps_a_long_run_alive(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    FeatureStore.init(repo).close()
    config = repo / "featureledger.yaml"
    data = yaml.safe_load(config.read_text())
    data["runs"] = {"heartbeat_seconds": 0.05, "abandon_after_seconds": 30}
    config.write_text(yaml.safe_dump(data))
    with FeatureStore(repo) as store:
        run = store._svc.runs.start("materialize", "ana", {})
        first = run.heartbeat_at
        assert first is not None
        import time

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            beat = store.registry.run(run.id)
            assert beat is not None and beat.heartbeat_at is not None
            if beat.heartbeat_at > first:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the heartbeat never moved")
        store._svc.runs.finish(run.id, "succeeded", [])


def test_runs_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="heartbeat_seconds"):
        RepoConfig.from_dict({"runs": {"heartbeat_seconds": 0}})
    with pytest.raises(ConfigError, match="longer than"):
        RepoConfig.from_dict({"runs": {"heartbeat_seconds": 60, "abandon_after_seconds": 30}})


def test_cli_lists_runs_with_states(store: FeatureStore) -> None:
    store.registry.start_run(_running("dead", host=HOST, pid=_dead_pid()))
    runner = CliRunner()
    got = runner.invoke(app, ["runs", "--json", "--repo", str(store.repo)])
    assert got.exit_code == 0, got.output
    rows = json.loads(got.output)
    assert [(r["id"], r["state"]) for r in rows] == [("dead", "abandoned")]
    assert rows[0]["host"] == HOST
    got = runner.invoke(app, ["runs", "--state", "running", "--repo", str(store.repo)])
    assert got.exit_code == 0 and "dead" not in got.output
    got = runner.invoke(app, ["runs", "--state", "abandoned", "--repo", str(store.repo)])
    assert got.exit_code == 0 and "abandoned" in got.output
    got = runner.invoke(app, ["runs", "--state", "nope", "--repo", str(store.repo)])
    assert got.exit_code == 1 and "unknown state" in got.output
