"""Per-function code hashes (fn1): a transform's hash follows what it computes -- its body,
the helpers it calls, the constants it reads -- and nothing else in its file."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featureledger import FeatureStore
from featureledger.definitions import FeatureGroup, PythonTransform
from featureledger.definitions.code import BODY, function_hash
from featureledger.repo import load_definitions

T0 = datetime(2025, 2, 1, tzinfo=UTC)
DAY = timedelta(days=1)

FEATURES = '''
from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc

from featureledger import Entity, FeatureGroup, FeatureView, Field
from featureledger.definitions import FileSource, PythonTransform

SCALE = 2.0


def _scaled(values):
    """Multiply by the scale."""
    return pc.multiply(values, SCALE)


def spend_x2(source, start, end):
    # keys and times pass through; spend is scaled
    return source.select(["user_id", "event_timestamp"]).append_column(
        "spend2", _scaled(source.column("spend"))
    )


user = Entity("user", join_keys=["user_id"])
doubled = FeatureGroup(
    "doubled",
    user,
    features=[Field("spend2", "float64")],
    source=FileSource("raw.parquet"),
    transform=PythonTransform(spend_x2),
)
'''


def load(path: Path, name: str | None = None) -> ModuleType:
    """Import ``path`` as a fresh module (a new name each time, as after an edit)."""
    name = name or f"m_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


def hash_of(tmp_path: Path, text: str, fn: str = "spend_x2"):
    path = tmp_path / f"f_{uuid.uuid4().hex}.py"
    path.write_text(textwrap.dedent(text))
    return function_hash(getattr(load(path), fn))


def test_comments_docstrings_formatting_and_unrelated_code_do_not_count(tmp_path: Path) -> None:
    base = hash_of(tmp_path, FEATURES)
    assert base.value.startswith("fn1:") and len(base.value) == 4 + 16
    assert set(base.parts) == {BODY, "_scaled", "SCALE"}
    assert base.packages == ("pyarrow",)
    edits = [
        FEATURES.replace("# keys and times pass through; spend is scaled", "# reworded"),
        FEATURES.replace('"""Multiply by the scale."""', '"""Scale it (reworded)."""'),
        FEATURES.replace(
            '"spend2", _scaled(source.column("spend"))',
            "'spend2',\n        _scaled(source.column('spend')),",
        ),
        # another transform and another view in the same file
        FEATURES + "\n\ndef other(source, start, end):\n    return source\n\n"
        "view = FeatureView('v', [doubled])\nUNUSED = 42\n",
        # an unrelated import
        "import json\n" + FEATURES,
    ]
    for text in edits:
        assert hash_of(tmp_path, text) == base, text


def test_an_edit_to_the_function_a_helper_or_a_constant_changes_it_and_is_named(
    tmp_path: Path,
) -> None:
    base = hash_of(tmp_path, FEATURES)
    cases = {
        "SCALE": FEATURES.replace("SCALE = 2.0", "SCALE = 3.0"),
        "_scaled": FEATURES.replace("pc.multiply(values, SCALE)", "pc.add(values, SCALE)"),
        BODY: FEATURES.replace('["user_id", "event_timestamp"]', '["event_timestamp", "user_id"]'),
    }
    for part, text in cases.items():
        edited = hash_of(tmp_path, text)
        assert edited.value != base.value, part
        assert [k for k in base.parts if base.parts[k] != edited.parts[k]] == [part]


def test_helpers_in_another_module_of_the_repository_count(tmp_path: Path) -> None:
    (tmp_path / "helpers_a.py").write_text("def half(x):\n    return x / 2\n")
    text = FEATURES.replace(
        "def _scaled(values):", "import helpers_a\n\n\ndef _scaled(values):"
    ).replace("pc.multiply(values, SCALE)", "helpers_a.half(pc.multiply(values, SCALE))")
    before = hash_of(tmp_path, text)
    assert "half" in before.parts
    sys.modules.pop("helpers_a")
    (tmp_path / "helpers_a.py").write_text("def half(x):\n    return x * 0.5\n")
    after = hash_of(tmp_path, text)
    sys.modules.pop("helpers_a")
    assert after.value != before.value
    assert [k for k in before.parts if before.parts[k] != after.parts[k]] == ["half"]


def test_independent_of_module_name_and_import_path(tmp_path: Path) -> None:
    (tmp_path / "features.py").write_text(FEATURES)
    [cli_group] = [d for d in load_definitions(tmp_path) if isinstance(d, FeatureGroup)]
    python_group = load(tmp_path / "features.py", "features").doubled
    assert cli_group.transform.function.__module__ != python_group.transform.function.__module__
    assert cli_group.to_dict() == python_group.to_dict()
    assert python_group.transform.name == "spend_x2"


def test_recorded_hashes_read_back_and_old_records_stay_readable(tmp_path: Path) -> None:
    (tmp_path / "features.py").write_text(FEATURES)
    group = load(tmp_path / "features.py").doubled
    data = group.transform.to_dict()
    assert "module_hash" not in data and set(data["code_parts"]) == {BODY, "_scaled", "SCALE"}
    back = FeatureGroup.from_dict(group.to_dict()).transform
    assert isinstance(back, PythonTransform) and back.function is None
    assert back.code_hash == group.transform.code_hash and back.code_parts == data["code_parts"]
    # a transform recorded before fn1 keeps its whole-source hashes
    old = PythonTransform(None, name="features.spend_x2", recorded_code_hash="0123456789abcdef")
    assert old.code_hash == old.legacy_code_hash == "0123456789abcdef"
    assert old.code_parts == {}


# -- through the store and the CLI -----------------------------------------------------------
@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    FeatureStore.init(root)
    pq.write_table(
        pa.table(
            {
                "user_id": [1, 2, 1],
                "event_timestamp": [T0, T0 + DAY, T0 + 2 * DAY],
                "spend": [1.0, 2.0, 3.0],
            }
        ),
        root / "raw.parquet",
    )
    (root / "features.py").write_text(FEATURES)
    return root


def cli_definitions(repo: Path) -> list:
    return load_definitions(repo)


def group_in(defs: list) -> FeatureGroup:
    return next(d for d in defs if isinstance(d, FeatureGroup))


def test_unrelated_edit_changes_nothing_in_plan_or_reproduce(repo: Path) -> None:
    store = FeatureStore(repo)
    defs = cli_definitions(repo)
    store.apply(defs)
    run = store.run_pipeline(group_in(defs), start=T0, end=T0 + 3 * DAY)
    assert store.registry.run(run.run_id).code_hash.startswith("fn1:")

    # a new view and a new function in features.py: nothing to apply, R = 1
    (repo / "features.py").write_text(
        FEATURES + "\n\ndef other(source, start, end):\n    return source\n\n"
        "view = FeatureView('v', [doubled])\n"
    )
    defs = cli_definitions(repo)
    plan = store.plan(defs)
    assert [i.identity for i in plan.changes] == ["feature_view/v@v1"], plan.items
    report = store.reproduce(f"run/{run.run_id}", definitions=defs)
    assert report.reproducible and report.output_matches

    # the same file imported from Python (another module name) is the same definition
    python_defs = [load(repo / "features.py", "features").doubled]
    assert store.plan(python_defs).changes == []


def test_editing_a_helper_changes_the_hash_and_the_reports_name_it(repo: Path) -> None:
    store = FeatureStore(repo)
    defs = cli_definitions(repo)
    store.apply(defs)
    run = store.run_pipeline(group_in(defs), start=T0, end=T0 + 3 * DAY)
    (repo / "features.py").write_text(FEATURES.replace("SCALE)", "SCALE + 1)"))
    defs = cli_definitions(repo)
    [item] = store.plan(defs).changes
    assert item.identity.startswith("feature_group/doubled") and item.level == "minor"
    assert any("pipeline transformation changed: '_scaled'" in r for r in item.reasons), item

    report = store.reproduce(f"run/{run.run_id}", definitions=defs)
    assert not report.holds("code") and report.holds("data") and report.holds("environment")
    named = [item for item, _, _ in report.differences("code")]
    assert named == ["transformation", "transformation: _scaled"]
