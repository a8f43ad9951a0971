"""A real uvicorn server in a thread for the server and UI tests (rule 3 of conftest.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn


def start_uvicorn(
    app: Any, free_port: Callable[[], int]
) -> tuple[uvicorn.Server, threading.Thread, str]:
    """uvicorn in a thread on a free loopback port, once it has bound that port itself."""
    for _attempt in range(5):
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        # ``started`` is set once uvicorn listens; a port another worker took since it was
        # free makes uvicorn exit its thread instead, and another port is tried
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if server.started:
            return server, thread, f"http://127.0.0.1:{port}"
        server.should_exit = True
        thread.join(10)
    raise RuntimeError("the test server did not start (5 ports tried)")
