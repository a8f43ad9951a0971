"""The engine conformance suite's set-up: every test runs once per engine in `ENGINES`.

Known gaps are declared on the test, as ibis does (`notimpl.py`)::

    @pytest.mark.notimpl(["daft"], raises=NotImplementedError, reason="SQL transforms")

For the named engines the test becomes a strict xfail with that exception: it must fail
that way, and once the gap is closed it passes, which fails the run until the mark goes.

Inputs are real Delta snapshots written by the project's own writer
(`versioning.writer.write_batch`) with the engine under test, not hand-made Parquet files.

The Daft engine runs twice: on Daft's native runner (``daft``) and on a local Ray cluster
(``daft@ray``), each in a child process started once per test session and worker
(`ray_engine.py`: Daft's runner is fixed per process, and a call that hangs is timed out
and its child killed rather than hanging the run). A ``notimpl`` mark naming ``daft``
covers both.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest

from featureledger.config import RepoConfig
from featureledger.definitions import FeatureGroup
from featureledger.hashing import ContentHash
from featureledger.offline import ENGINES, DeltaGroupTable, OfflineEngine, create_engine
from featureledger.versioning.writer import write_batch

from . import notimpl

ENGINE_NAMES = sorted(ENGINES)
#: engines as the suite runs them: every engine, and Daft once more on Ray
VARIANTS = [*ENGINE_NAMES, "daft@ray"]


def pytest_configure(config: pytest.Config) -> None:
    notimpl.register(config)


#: engines that ignore ``pit_join``'s ``strategy`` (DuckDB's plans): one run of each test
#: parametrized by it, with "auto", checks them; the other strategies would repeat it
NO_STRATEGIES = {"daft", "daft@ray"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    notimpl.mark_gaps(items, ENGINES)
    repeats = [item for item in items if _repeats(item)]
    if repeats:
        config.hook.pytest_deselected(items=repeats)
        items[:] = [item for item in items if not _repeats(item)]


def _repeats(item: pytest.Item) -> bool:
    params = getattr(getattr(item, "callspec", None), "params", {})
    return params.get("engine") in NO_STRATEGIES and params.get("strategy", "auto") != "auto"


@pytest.fixture(scope="session", params=VARIANTS)
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OfflineEngine]:
    """Each engine of `ENGINES`, made from a default config as a store would make it (Daft's
    in a child process, on its native runner), and the Daft engine on a local Ray cluster;
    one per engine and test session (per xdist worker), stopped at the end."""
    if request.param in ("daft", "daft@ray"):
        from .ray_engine import NativeEngine, RayEngine

        child = RayEngine() if request.param == "daft@ray" else NativeEngine()
        try:
            yield child  # type: ignore[misc]
        finally:
            child.stop()
        return
    repo = tmp_path_factory.mktemp(f"engine-{request.param}")
    config = RepoConfig()
    config.offline.engine = request.param
    made = create_engine(config, repo)
    assert made.name == request.param
    yield made
    made.close()


@dataclass(frozen=True)
class Snapshot:
    """A written Delta version: its files and schema, as the store hands them to engines."""

    table: DeltaGroupTable
    version: int
    files: list[str]
    schema: pa.Schema

    @property
    def pair(self) -> tuple[Sequence[str], pa.Schema]:
        return self.files, self.schema


def write_group(
    engine: OfflineEngine,
    root: Path,
    group: FeatureGroup,
    batches: Sequence[pa.Table],
    *,
    mode: str = "upsert",
) -> list[Snapshot]:
    """Create ``group``'s table under ``root`` and commit each batch with the project's
    writer (one data version each); the snapshots, first the empty one, last the newest."""
    table = DeltaGroupTable(root / f"{group.name}-{uuid.uuid4().hex[:8]}")
    version = table.create(group.arrow_schema, "create")
    schema = group.arrow_schema

    def snap(v: int) -> Snapshot:
        return Snapshot(table, v, table.files(v), schema)

    out = [snap(version)]
    for i, batch in enumerate(batches):
        if batch.num_rows == 0:
            continue  # the writer is given rows only (its file pruning needs a time range)
        done = write_batch(
            table,
            engine,
            group,
            batch.cast(schema),
            mode,  # type: ignore[arg-type]
            parent_version=version,
            parent_content=ContentHash(),
            run_id=f"run-{i}",
            where=f"{group.name} batch {i}",
        )
        if done.version is not None:
            version = done.version
        out.append(snap(version))
    return out
