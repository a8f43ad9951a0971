"""Runs: one execution of a job, recorded with its provenance and its owner (host, pid),
kept alive by a heartbeat, and emitted as OpenLineage events.

A run whose owner is gone (same host and its pid dead or reused, or a heartbeat older than
``runs.abandon_after_seconds`` on any host) is marked ``abandoned`` when runs are listed
or a new run starts (docs/reliability.md#runs-and-their-owners).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
import sys
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from featureledger.config import RepoConfig
from featureledger.registry import RegistryBackend, RunRecord
from featureledger.versioning.provenance import environment_hash, library_code_hash

HOST = socket.gethostname()
#: statuses a run can have; "running" until it finishes or is found abandoned
RUN_STATES = ("running", "succeeded", "failed", "abandoned")


def _boot_time() -> float | None:
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


_BOOT = _boot_time()
#: what `RunService._emit_lineage` imports (through featureledger.lineage)
_LINEAGE_MODULE = "featureledger.lineage.openlineage"


def _import_quietly(name: str) -> None:
    # a failed import is raised again where it matters, by `_emit_lineage`
    with contextlib.suppress(Exception):
        importlib.import_module(name)


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_alive(pid: int, since: datetime) -> bool:
    """Whether process ``pid`` of this host exists, is not a zombie and started no later than
    ``since`` (a later start means the pid was reused by another process)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by another user
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return True  # no /proc (not Linux): existence is all we can tell
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):  # killed, waiting for its parent: gone
        return False
    if _BOOT is not None:
        started = _BOOT + int(fields[19]) / _TICKS
        if started > since.timestamp() + 2:  # clock-tick rounding and skew
            return False
    return True


class Runs:
    """Starts and finishes runs; the one place that emits lineage events."""

    def __init__(self, *, registry: RegistryBackend, config: RepoConfig, repo: Path) -> None:
        self.registry = registry
        self.config = config
        self.repo = repo
        self._lineage_sink: Any = None
        self._warming = False
        #: runs this process started and has not finished: the heartbeat keeps them alive
        self._mine: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beater: threading.Thread | None = None

    def close(self) -> None:
        """Stop the heartbeat; close the lineage sink (an HTTP transport keeps a session)."""
        self._stop.set()
        beater, self._beater = self._beater, None
        if beater is not None:
            beater.join()
        self._stop = threading.Event()
        sink, self._lineage_sink = self._lineage_sink, None
        if sink is not None and hasattr(sink, "close"):
            sink.close()

    def _beat(self, stop: threading.Event) -> None:
        while not stop.wait(self.config.runs.heartbeat_seconds):
            with self._lock:
                ids = sorted(self._mine)
            if ids:
                # a missed beat is retried at the next tick; the thread must not die of it
                with contextlib.suppress(Exception):
                    self.registry.heartbeat(ids)

    def reap(self) -> list[str]:
        """Mark running runs whose owner is gone as abandoned; return their ids."""
        now = datetime.now(UTC)
        timeout = timedelta(seconds=self.config.runs.abandon_after_seconds)
        with self._lock:
            mine = set(self._mine)
        gone = []
        for run in self.registry.runs("running"):
            if run.id in mine:
                continue
            beat = run.heartbeat_at or run.started_at
            if (
                run.host == HOST
                and run.pid is not None
                and not process_alive(run.pid, run.started_at)
            ):
                why = f"its process {run.pid} on {run.host} is gone"
            elif now - beat > timeout:
                why = (
                    f"no heartbeat from {run.host or 'its process'} since "
                    f"{beat:%Y-%m-%d %H:%M:%S} UTC (runs.abandon_after_seconds is "
                    f"{timeout.total_seconds():g})"
                )
            else:
                continue
            gone += self.registry.abandon_runs([run.id], f"abandoned: {why}")
        return gone

    def listed(self, state: str | None = None) -> list[RunRecord]:
        """Runs, oldest first (those in ``state`` only), after reaping abandoned ones."""
        if state is not None and state not in RUN_STATES:
            from featureledger.errors import DataError

            raise DataError(f"runs: unknown state {state!r}; use one of {', '.join(RUN_STATES)}")
        self.reap()
        return self.registry.runs(state)

    def start(
        self,
        kind: str,
        user: str,
        params: dict[str, Any],
        inputs: list[str] | None = None,
        *,
        code_hash: str | None = None,
        env_hash: str | None = None,
    ) -> RunRecord:
        self.reap()
        now = datetime.now(UTC)
        run = RunRecord(
            id=str(uuid.uuid4()),
            kind=kind,
            status="running",
            user=user,
            started_at=now,
            params=params,
            inputs=inputs or [],
            code_hash=code_hash or library_code_hash(),
            env_hash=env_hash or environment_hash(),
            host=HOST,
            pid=os.getpid(),
            heartbeat_at=now,
        )
        self.registry.start_run(run)
        self._warm_lineage()
        with self._lock:
            self._mine.add(run.id)
            if self._beater is None:
                stop = self._stop
                self._beater = threading.Thread(
                    target=self._beat, args=(stop,), name="featureledger-heartbeat", daemon=True
                )
                self._beater.start()
        return run

    def finish(self, run_id: str, status: str, outputs: list[str], error: str = "") -> None:
        """Record how a run ended and emit it as OpenLineage events (best effort)."""
        self.registry.finish_run(run_id, status, outputs, error)
        with self._lock:
            self._mine.discard(run_id)
        self._emit_lineage(run_id)

    def _warm_lineage(self) -> None:
        """Import the OpenLineage client while the run works, on a thread of its own: a
        first import costs 0.3-0.4 s, which `finish` would otherwise add to the run."""
        if self._transport() is None or _LINEAGE_MODULE in sys.modules:
            return
        with self._lock:
            if self._warming:
                return
            self._warming = True
        threading.Thread(
            target=_import_quietly,
            args=(_LINEAGE_MODULE,),
            name="featureledger-lineage-import",
            daemon=True,
        ).start()

    def _transport(self) -> dict[str, Any] | None:
        """The configured ``lineage.transport`` (a file by default), None when ``none``."""
        transport = self.config.lineage.transport or {"type": "file"}
        return None if transport.get("type") == "none" else transport

    def _emit_lineage(self, run_id: str) -> None:
        transport = self._transport()
        if transport is None:
            return
        from featureledger.lineage import emit_run, make_sink
        from featureledger.lineage.facts import run_datasets

        if self._lineage_sink is None:
            self._lineage_sink = make_sink(transport, repo=self.repo)
        run = self.registry.run(run_id)
        if run is None:  # pragma: no cover - we just wrote it
            return
        datasets = run_datasets(self.registry, run)
        emit_run(
            self._lineage_sink,
            run,
            namespace=self.config.lineage.namespace or self.config.project,
            datasets=datasets,
        )
