"""A store turns numpy's huge-page advice off, unless the user chose with numpy's variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

#: prints numpy's huge-page advice as it is after a store opened (True: on)
PROBE = """
import sys
from numpy._core.multiarray import _set_madvise_hugepage
from featureledger import FeatureStore
FeatureStore.init(sys.argv[1])
before = _set_madvise_hugepage(True)
print("on" if before else "off")
"""


def _advice_after_open(repo: Path, env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    if env_value is not None:
        env["NUMPY_MADVISE_HUGEPAGE"] = env_value
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(repo)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip()


@pytest.mark.skipif(sys.platform != "linux", reason="numpy advises huge pages on Linux only")
def test_store_turns_hugepage_advice_off_unless_the_user_chose(tmp_path: Path) -> None:
    assert _advice_after_open(tmp_path / "a", None) == "off"
    # the user's choice stands, either way
    assert _advice_after_open(tmp_path / "b", "1") == "on"
    assert _advice_after_open(tmp_path / "c", "0") == "off"
