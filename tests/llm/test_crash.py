"""kill -9 during index builds: the served version stays readable, the next build repairs."""

from __future__ import annotations

import os
import random
import select
import subprocess
import sys
import time
from pathlib import Path

from featureledger import FeatureStore
from featureledger.hashing import artifact_sha256

HERE = Path(__file__).parent


def test_builds_killed_at_random_points_leave_every_recorded_version_whole(
    kb: FeatureStore,
) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parents[1] / "src"), *sys.path])}
    rnd = random.Random(7)
    for _ in range(2):  # each child pays a full import; two kills keep the test cheap
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "build_process.py"), str(kb.repo)],
            stdout=subprocess.PIPE,
            env=env,
        )
        try:
            assert proc.stdout is not None
            # never wait unbounded on the child: it builds forever until killed
            ready, _, _ = select.select([proc.stdout], [], [], 120)
            assert ready and proc.stdout.readline().strip() == b"ready"
            time.sleep(rnd.uniform(0.2, 2.0))
        finally:
            proc.kill()  # SIGKILL: the crash under test, and the clean-up if an assert failed
            proc.wait(timeout=30)
            if proc.stdout is not None:
                proc.stdout.close()
    with FeatureStore(kb.repo) as store:
        served = store.llm.current_index("kb")
        assert store.llm.search("kb", "kitten purr", k=3, trace=False).index == f"index/kb/{served}"
        root = store.repo / ".featureledger" / "llm" / "indexes" / "kb"
        for record in store.llm.index_versions("kb"):
            for name, digest in record.body["files"].items():
                assert artifact_sha256(root / record.body["folder"] / name) == digest
        store.llm.build_index("kb", "docs")
        # the next build removed the folders of the killed ones
        assert list(root.glob(".tmp-*")) == []
