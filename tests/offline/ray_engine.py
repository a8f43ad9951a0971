"""The Daft engine in a child process, on a real local Ray cluster or on Daft's native
runner, for the conformance suite.

Daft fixes its runner once per process, so a test process that ran Daft natively cannot
also run it on Ray. Each variant therefore lives in a child process started once per test
session (per xdist worker): `RayEngine` starts a local Ray cluster there
(``ray.init(num_cpus=2)``, its own short temp folder; Ray picks free ports), `NativeEngine`
sets Daft's native runner; either builds a real `DaftEngine` and executes each engine call
it is sent. The calls are forwarded over a pipe: Arrow tables and the port's dataclasses
pickle; readers come back as tables re-wrapped as readers. Nothing about the engine is
replaced: every query runs in the child, on the chosen runner.

The native variant runs in a child too, not in the xdist worker: the suite once hung in
CI with native Daft in the same process as the tests' DuckDB and delta-rs (cause never
found); in a child every call has a timeout, after which the child and everything it
started are killed and the test fails instead of the run hanging.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import signal
import tempfile
import traceback
from multiprocessing.connection import Connection
from typing import Any

import pyarrow as pa

#: cluster starts tried, and seconds they may take in all, on a loaded 2-core machine
ATTEMPTS = 3
START_TIMEOUT = 400
#: seconds one engine call may take on the cluster before the child is killed (a hung
#: call must fail the test, not the CI run)
CALL_TIMEOUT = 300


def s3_dataset_stats(
    engine: Any, files: list[str], schema: pa.Schema, columns: list[Any], top_k: int
) -> Any:
    """`column_stats` of S3 Parquet files given as a pyarrow dataset, which is built in the
    child: its filesystem takes the credentials of the child's environment."""
    import pyarrow.dataset as pads

    from featureledger.offline.daft._frames import shipped_options
    from featureledger.offline.daft.source import s3_filesystem

    fs = s3_filesystem(shipped_options(engine.storage, ship_secrets=False))
    paths = [f.removeprefix("s3://") for f in files]
    dataset = pads.dataset(paths, schema=schema, filesystem=fs, format="parquet")
    return engine.column_stats(dataset, columns, top_k=top_k)


#: functions a test may run in the child (`ChildEngine.run`), given the engine first
HELPERS = {"s3_dataset_stats": s3_dataset_stats}
HELPER = "helper:"


def _serve(
    conn: Connection,
    temp_dir: str,
    env: dict[str, str],
    storage: tuple[str, dict[str, Any]] | None,
    on_ray: bool,
) -> None:
    # its own process group, which Ray's node processes join: a forced stop ends them all
    os.setpgrp()
    # the cluster's environment: Ray's workers inherit it (their own credentials)
    os.environ.update(env)
    # before DuckDB loads: it recognizes Arrow datasets only if the module was imported
    import pyarrow.dataset  # noqa: F401

    if on_ray:
        import ray
    try:
        for attempt in range(ATTEMPTS if on_ray else 0):
            try:
                ray.init(
                    num_cpus=2, include_dashboard=False, _temp_dir=temp_dir, log_to_driver=False
                )
                break
            except Exception:
                # Ray waits a fixed 30 s for its raylet to register, which a machine
                # shared by many test runs can miss; a fresh start usually makes it
                ray.shutdown()
                if attempt == ATTEMPTS - 1:
                    raise
        from featureledger.offline.daft import DaftEngine
        from featureledger.storage import open_storage

        engine = DaftEngine(
            ray_address="local" if on_ray else None,
            storage=open_storage(*storage) if storage else None,
        )
        assert engine.runner == ("ray" if on_ray else "native")
        conn.send(("ok", ray.get_runtime_context().gcs_address if on_ray else None))
    except BaseException as exc:  # the parent reports why the cluster did not start
        conn.send(("err", RuntimeError(f"starting Ray: {exc!r}\n{traceback.format_exc()}")))
        return
    try:
        while True:
            message = conn.recv()
            if message is None:
                break
            method, args, kwargs = message
            try:
                if method.startswith(HELPER):
                    result = HELPERS[method.removeprefix(HELPER)](engine, *args, **kwargs)
                else:
                    result = getattr(engine, method)(*args, **kwargs)
                if isinstance(result, pa.RecordBatchReader):
                    result = ("reader", result.read_all())
                conn.send(("ok", result))
            except Exception as exc:
                try:
                    conn.send(("err", exc))
                except Exception:  # an exception that does not pickle
                    conn.send(("err", RuntimeError(f"{type(exc).__name__}: {exc}")))
    finally:
        if on_ray:
            ray.shutdown()


class ChildEngine:
    """An `OfflineEngine` whose calls run in a `DaftEngine` in a child process."""

    name = "daft"
    #: whether the child runs Daft on a local Ray cluster (else Daft's native runner)
    on_ray = True

    def __init__(
        self,
        *,
        env: dict[str, str] | None = None,
        storage: tuple[str, dict[str, Any]] | None = None,
    ) -> None:
        """``env``: variables set for the child's processes (the driver's and Ray's);
        ``storage``: (uri, options) of the engine's storage, opened in the child."""
        # short: Ray's socket paths under it must fit in 107 bytes
        self.temp_dir = tempfile.mkdtemp(prefix="flray-", dir="/tmp")
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve,
            args=(child, self.temp_dir, env or {}, storage, self.on_ray),
            daemon=True,
        )
        self._process.start()
        if not self._conn.poll(START_TIMEOUT):
            self.stop()
            raise RuntimeError(f"the engine's child did not start in {START_TIMEOUT} s")
        status, value = self._conn.recv()
        if status != "ok":
            self.stop()
            raise value
        self.address = value

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        self._conn.send((method, args, kwargs))
        if not self._conn.poll(CALL_TIMEOUT):
            self.stop(wait=0)
            raise TimeoutError(f"{method} did not return from the child in {CALL_TIMEOUT} s")
        status, value = self._conn.recv()
        if status == "err":
            raise value
        if isinstance(value, tuple) and len(value) == 2 and value[0] == "reader":
            table: pa.Table = value[1]
            return pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
        return value

    def run(self, helper: str, *args: Any, **kwargs: Any) -> Any:
        """One of `HELPERS`, run in the child on its engine."""
        return self._call(HELPER + helper, *args, **kwargs)

    def __getattr__(self, method: str) -> Any:
        if method.startswith("_"):
            raise AttributeError(method)
        return lambda *args, **kwargs: self._call(method, *args, **kwargs)

    def close(self) -> None:
        """The child stays up for the session; `stop` ends it."""

    def stop(self, wait: float = 60) -> None:
        """Ends the child: asked to shut down, within ``wait`` seconds, else killed with
        every process of its group (Ray's too)."""
        if self._process.is_alive() and wait > 0:
            with contextlib.suppress(OSError):
                self._conn.send(None)
            self._process.join(wait)
        if self._process.is_alive() and self._process.pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.join(10)
        if self._process.is_alive():  # killed before it made its own process group
            self._process.kill()
            self._process.join(10)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


class RayEngine(ChildEngine):
    """`DaftEngine` on a local Ray cluster started in the child."""


class NativeEngine(ChildEngine):
    """`DaftEngine` on Daft's native runner in the child."""

    on_ray = False
