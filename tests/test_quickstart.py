"""docs/quickstart.md runs as written: its shell blocks in a new folder, its Python blocks in
the repository they made, and its `features.py` is the file `init --example` writes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import featureledger
from featureledger import FeatureStore

DOC = Path(__file__).resolve().parents[1] / "docs" / "quickstart.md"
SHIPPED = Path(featureledger.__file__).parent / "demo" / "example" / "features.py"

pytestmark = pytest.mark.subprocess


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_the_features_py_shown_is_the_one_init_example_writes() -> None:
    shown = [b for b in blocks("python") if "FeatureGroup(" in b]
    assert len(shown) == 1
    assert shown[0] == SHIPPED.read_text()


def test_the_quickstart_runs_as_written(tmp_path: Path) -> None:
    src = str(Path(featureledger.__file__).resolve().parents[1])
    bin_dir = str(Path(sys.executable).parent)  # where the `featureledger` script is
    env = {
        **os.environ,
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
    }
    script = "set -euo pipefail\n" + "\n".join(blocks("sh"))
    shell = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert shell.returncode == 0, shell.stdout[-3000:] + shell.stderr[-3000:]
    assert "feature_group/user_txn_stats@v1#2: 0 rows added, 818 changed" in shell.stdout
    assert "training_dataset/fraud@v1/2" in shell.stdout

    repo = tmp_path / "fraud-repo"
    code = "\n".join(b for b in blocks("python") if "FeatureGroup(" not in b)
    py = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, env=env, capture_output=True, text=True, timeout=600
    )
    assert py.returncode == 0, py.stdout[-3000:] + py.stderr[-3000:]

    store = FeatureStore(repo)
    # the Python ingest added a version; the Python join recorded a third training set
    assert [v.version for v in store.versions("user_txn_stats")][-1] == 3
    sets = store.training_datasets("fraud")
    assert [t.rows for t in sets] == [5000, 5000, 5000]
    assert sets[1].pins["user_txn_stats"]["version"] == 1  # --pin user_txn_stats=1
    store.close()


def test_init_example_never_overwrites(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from featureledger.cli.main import app

    target = tmp_path / "mine"
    target.mkdir()
    (target / "features.py").write_text("# mine\n")
    result = CliRunner().invoke(app, ["init", str(target), "--example"])
    assert result.exit_code == 1
    assert "features.py" in result.output and "never overwrites" in result.output
    assert (target / "features.py").read_text() == "# mine\n"
    assert not (target / "featureledger.yaml").exists()  # refused before anything was made
