"""Runs: one execution of a job, recorded with its provenance and emitted as
OpenLineage events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from featureledger.config import RepoConfig
from featureledger.registry import RegistryBackend, RunRecord
from featureledger.versioning.provenance import environment_hash, library_code_hash


class Runs:
    """Starts and finishes runs; the one place that emits lineage events."""

    def __init__(self, *, registry: RegistryBackend, config: RepoConfig, repo: Path) -> None:
        self.registry = registry
        self.config = config
        self.repo = repo
        self._lineage_sink: Any = None

    def close(self) -> None:
        """Close the lineage sink (an HTTP transport keeps a session)."""
        sink, self._lineage_sink = self._lineage_sink, None
        if sink is not None and hasattr(sink, "close"):
            sink.close()

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
        run = RunRecord(
            id=str(uuid.uuid4()),
            kind=kind,
            status="running",
            user=user,
            started_at=datetime.now(UTC),
            params=params,
            inputs=inputs or [],
            code_hash=code_hash or library_code_hash(),
            env_hash=env_hash or environment_hash(),
        )
        self.registry.start_run(run)
        return run

    def finish(self, run_id: str, status: str, outputs: list[str], error: str = "") -> None:
        """Record how a run ended and emit it as OpenLineage events (best effort)."""
        self.registry.finish_run(run_id, status, outputs, error)
        self._emit_lineage(run_id)

    def _emit_lineage(self, run_id: str) -> None:
        transport = self.config.lineage.transport or {"type": "file"}
        if transport.get("type") == "none":
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
