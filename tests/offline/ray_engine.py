"""The Daft engine on a real local Ray cluster, for the conformance suite.

Daft fixes its runner once per process, so a test process that ran Daft natively cannot
also run it on Ray. The Ray variant therefore lives in a child process started once per
test session (per xdist worker): it starts a local Ray cluster (``ray.init(num_cpus=2)``,
its own short temp folder; Ray picks free ports), builds a real `DaftEngine` on it, and
executes each engine call it is sent. `RayEngine` forwards the calls over a pipe: Arrow
tables and the port's dataclasses pickle; readers come back as tables re-wrapped as
readers. Nothing about the engine is replaced: every query runs on the Ray cluster.
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


def _serve(
    conn: Connection,
    temp_dir: str,
    env: dict[str, str],
    storage: tuple[str, dict[str, Any]] | None,
) -> None:
    # its own process group, which Ray's node processes join: a forced stop ends them all
    os.setpgrp()
    # the cluster's environment: Ray's workers inherit it (their own credentials)
    os.environ.update(env)
    # before DuckDB loads: it recognizes Arrow datasets only if the module was imported
    import pyarrow.dataset  # noqa: F401
    import ray

    try:
        for attempt in range(ATTEMPTS):
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
            ray_address="local", storage=open_storage(*storage) if storage else None
        )
        assert engine.runner == "ray"
        conn.send(("ok", ray.get_runtime_context().gcs_address))
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
        ray.shutdown()


class RayEngine:
    """An `OfflineEngine` whose calls run in a `DaftEngine` on a local Ray cluster."""

    name = "daft"

    def __init__(
        self,
        *,
        env: dict[str, str] | None = None,
        storage: tuple[str, dict[str, Any]] | None = None,
    ) -> None:
        """``env``: variables set for the cluster's processes (the driver's and Ray's);
        ``storage``: (uri, options) of the engine's storage, opened in the child."""
        # short: Ray's socket paths under it must fit in 107 bytes
        self.temp_dir = tempfile.mkdtemp(prefix="flray-", dir="/tmp")
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child, self.temp_dir, env or {}, storage), daemon=True
        )
        self._process.start()
        if not self._conn.poll(START_TIMEOUT):
            self.stop()
            raise RuntimeError(f"the local Ray cluster did not start in {START_TIMEOUT} s")
        status, value = self._conn.recv()
        if status != "ok":
            self.stop()
            raise value
        self.address = value

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        self._conn.send((method, args, kwargs))
        if not self._conn.poll(CALL_TIMEOUT):
            self.stop(wait=0)
            raise TimeoutError(f"{method} did not return from the Ray cluster in {CALL_TIMEOUT} s")
        status, value = self._conn.recv()
        if status == "err":
            raise value
        if isinstance(value, tuple) and len(value) == 2 and value[0] == "reader":
            table: pa.Table = value[1]
            return pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
        return value

    def __getattr__(self, method: str) -> Any:
        if method.startswith("_"):
            raise AttributeError(method)
        return lambda *args, **kwargs: self._call(method, *args, **kwargs)

    def close(self) -> None:
        """The cluster stays up for the session; `stop` ends it."""

    def stop(self, wait: float = 60) -> None:
        """Ends the cluster: asked to shut down, within ``wait`` seconds, else killed with
        every process of its group (Ray's too)."""
        if self._process.is_alive() and wait > 0:
            with contextlib.suppress(OSError):
                self._conn.send(None)
            self._process.join(wait)
        if self._process.is_alive() and self._process.pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.join(10)
        shutil.rmtree(self.temp_dir, ignore_errors=True)
