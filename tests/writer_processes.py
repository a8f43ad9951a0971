"""Writer processes for the concurrency and crash tests (local tables and S3 tables alike):
one feature group, the rows every writer builds, and a child-process launcher whose script
builds its batches with the very same function."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from featureledger import Entity, FeatureGroup, Field

T0 = datetime(2024, 1, 1, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")
USER = Entity("user", join_keys=["user_id"])
STATS = FeatureGroup(
    "stats", USER, features=[Field("clicks", "int64"), Field("spend")], created_time="created"
)


def rows(users: list[int], hour: int, created_s: int, clicks: int) -> pa.Table:
    n = len(users)
    return pa.table(
        {
            "user_id": pa.array(users, pa.int64()),
            "event_timestamp": pa.array([T0 + timedelta(hours=hour)] * n, TS),
            "created": pa.array([T0 + timedelta(seconds=created_s)] * n, TS),
            "clicks": pa.array([clicks] * n, pa.int64()),
            "spend": pa.array([float(u) for u in users], pa.float64()),
        }
    )


# Child processes build their batches with this same function.
CHILD_PRELUDE = textwrap.dedent("""
    import json, os, signal, sys, time
    from datetime import UTC, datetime, timedelta
    import numpy as np
    import pyarrow as pa
    from featureledger import FeatureStore

    T0 = datetime(2024, 1, 1, tzinfo=UTC)
    TS = pa.timestamp("us", tz="UTC")

    def rows(users, hour, created_s, clicks):
        n = len(users)
        return pa.table({
            "user_id": pa.array(users, pa.int64()),
            "event_timestamp": pa.array([T0 + timedelta(hours=hour)] * n, TS),
            "created": pa.array([T0 + timedelta(seconds=created_s)] * n, TS),
            "clicks": pa.array([clicks] * n, pa.int64()),
            "spend": pa.array([float(u) for u in users], pa.float64()),
        })

    repo = sys.argv[1]
    store = FeatureStore(repo)
""")


def child(tmp_path: Path, name: str, body: str, *args: str) -> subprocess.Popen:
    script = tmp_path / f"{name}.py"
    script.write_text(CHILD_PRELUDE + textwrap.dedent(body))
    env = {**os.environ, "FEATURELEDGER_USER": name}
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
