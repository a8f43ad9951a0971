"""The package tree is the architecture: these tests keep it so.

- imports point downward only (DESIGN.md's layers);
- the store is composed of services, not mixins, and keeps no state in ``__dict__``;
- no module is over 800 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import featureledger
from featureledger import FeatureStore

SRC = Path(featureledger.__file__).parent

#: layer of each top-level package or module; a module may import from its own layer and
#: from lower ones only (higher number = higher layer)
LAYERS = {
    "errors": 0,
    "hashing": 0,
    "digest": 0,
    "_memory": 0,
    "definitions": 1,
    "config": 1,
    "registry": 2,
    "storage": 3,
    "offline": 3,
    "online": 3,
    "contracts": 4,
    "versioning": 4,
    "lineage": 4,
    "monitoring": 4,
    "transforms": 4,
    "llm": 4,
    "repo": 4,
    "store": 5,
    "demo": 6,
    "cli": 7,
    "server": 7,
    "ui": 7,
}
#: imports a lower layer may make of a higher one, each with its reason
ALLOWED_UPWARD: set[tuple[str, str]] = set()


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts)


def _top(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _all_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names]
    return out


def _imports(path: Path) -> list[str]:
    return [m for m in _all_imports(path) if m.startswith("featureledger.")]


def test_imports_point_downward_only() -> None:
    wrong = []
    for path in _modules():
        here = _top(path)
        if here not in LAYERS:
            continue
        for module in _imports(path):
            there = module.split(".")[1]
            upward = there in LAYERS and LAYERS[there] > LAYERS[here]
            if upward and (here, there) not in ALLOWED_UPWARD:
                wrong.append(f"{path.relative_to(SRC)} imports {module}")
    assert wrong == []


def test_every_package_has_a_layer() -> None:
    tops = {_top(p) for p in _modules()} - {"__init__", "__main__", "py.typed"}
    assert tops <= set(LAYERS), sorted(tops - set(LAYERS))


def test_the_store_is_a_thin_facade_without_mixins() -> None:
    assert FeatureStore.__mro__ == (FeatureStore, object)
    for path in (SRC / "store").glob("*.py"):
        text = path.read_text()
        assert "__dict__" not in text, path.name
        assert "Mixin" not in text, path.name


def test_no_module_is_over_800_lines() -> None:
    long = {
        str(p.relative_to(SRC)): n
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > 800
    }
    assert long == {}


def test_only_the_offline_engines_open_duckdb() -> None:
    # the engine port is the seam: everything else reaches DuckDB through OfflineEngine
    outside = [
        str(p.relative_to(SRC))
        for p in _modules()
        if _top(p) != "offline"
        and any(m == "duckdb" or m.startswith("duckdb.") for m in _all_imports(p))
    ]
    assert outside == []


def test_only_the_daft_engine_imports_daft_and_ray() -> None:
    # Daft and Ray are an optional extra: only the engine behind the port may load them
    daft_engine = SRC / "offline" / "daft"
    outside = [
        str(p.relative_to(SRC))
        for p in _modules()
        if daft_engine not in p.parents
        and any(m.split(".")[0] in ("daft", "ray") for m in _all_imports(p))
    ]
    assert outside == []
