"""Feature logs: served feature vectors appended to a Delta table off the request path."""

from __future__ import annotations

import atexit
import queue
import threading
import time
import uuid
from pathlib import Path

import pyarrow as pa

from featureledger.offline.delta import DeltaGroupTable

REQUEST_ID = "__fl_request_id"
REQUEST_TIME = "request_time"
VIEW_VERSION = "__fl_view"


class FeatureLogWriter:
    """Collects served rows in memory and appends them in batches from a background thread.

    A request only puts its table on a queue, so logging adds no I/O to its latency.
    Batches are written when ``max_rows`` are waiting or ``interval`` seconds passed, and on
    `flush` (also called at interpreter exit).
    """

    def __init__(self, path: Path, *, max_rows: int = 50_000, interval: float = 1.0) -> None:
        self.table = DeltaGroupTable(path)
        self.max_rows = max_rows
        self.interval = interval
        self._queue: queue.Queue[pa.Table | threading.Event] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="featureledger-log", daemon=True)
        self._thread.start()
        atexit.register(self.flush)
        self.errors: list[str] = []

    def log(self, rows: pa.Table) -> None:
        self._queue.put(rows)

    def flush(self, timeout: float = 30.0) -> None:
        """Block until everything logged so far is written."""
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def _run(self) -> None:
        pending: list[pa.Table] = []
        waiting = 0
        last = time.monotonic()
        while True:
            try:
                item = self._queue.get(timeout=self.interval)
            except queue.Empty:
                item = None
            if isinstance(item, pa.Table):
                pending.append(item)
                waiting += item.num_rows
            due = time.monotonic() - last >= self.interval
            if pending and (isinstance(item, threading.Event) or waiting >= self.max_rows or due):
                self._write(pending)
                pending, waiting, last = [], 0, time.monotonic()
            if isinstance(item, threading.Event):
                item.set()

    def _write(self, tables: list[pa.Table]) -> None:
        try:
            data = pa.concat_tables(tables, promote_options="permissive")
            data = data.cast(pa.schema([f.with_nullable(True) for f in data.schema]))
            run = f"log-{uuid.uuid4()}"
            with self.table.lock():
                if not self.table.exists():
                    self.table.create(data.schema, run)
                self.table.append(data, run, schema_mode="merge")
        except Exception as exc:  # logging must never break serving; keep the reason
            self.errors.append(f"{type(exc).__name__}: {exc}")
