"""The ``notimpl`` marker does what the suite relies on: a declared gap is a strict xfail
for the named engine only, a fixed gap fails the run, and a wrong exception still fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent

CONFTEST = f"""
import sys
sys.path.insert(0, {str(HERE)!r})
import notimpl
import pytest

def pytest_configure(config):
    notimpl.register(config)

def pytest_collection_modifyitems(items):
    notimpl.mark_gaps(items, ["good", "gap"])

@pytest.fixture(params=["good", "gap"])
def engine(request):
    return request.param
"""

TESTS = """
import pytest

@pytest.mark.notimpl(["gap"], raises=NotImplementedError)
def test_declared_gap(engine):
    if engine == "gap":
        raise NotImplementedError

@pytest.mark.notimpl(["gap"], raises=NotImplementedError)
def test_gap_that_was_fixed(engine):
    pass

@pytest.mark.notimpl(["gap"], raises=NotImplementedError)
def test_gap_failing_otherwise(engine):
    if engine == "gap":
        raise KeyError("a different failure is still a failure")
"""


def test_notimpl_is_a_strict_xfail_for_the_named_engine(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_gaps.py").write_text(TESTS)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rA",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "--strict-markers",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    out = done.stdout
    assert "PASSED test_gaps.py::test_declared_gap[good]" in out
    assert "XFAIL test_gaps.py::test_declared_gap[gap]" in out
    assert "PASSED test_gaps.py::test_gap_that_was_fixed[good]" in out
    assert "FAILED test_gaps.py::test_gap_that_was_fixed[gap]" in out  # strict: XPASS fails
    assert "FAILED test_gaps.py::test_gap_failing_otherwise[gap]" in out
    assert done.returncode == 1, out


def test_naming_an_unknown_engine_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_typo.py").write_text(
        "import pytest\n\n@pytest.mark.notimpl(['daff'], raises=ValueError)\n"
        "def test_x(engine):\n    pass\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode != 0
    assert "notimpl names unknown engine(s) ['daff']" in done.stdout + done.stderr
