"""Find the definitions declared in a repository's Python files."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

from featureledger.config import STATE_DIR
from featureledger.definitions import Definition, Entity, FeatureGroup, FeatureView
from featureledger.errors import DefinitionError

_SKIP_DIRS = {STATE_DIR, "__pycache__", "tests", "node_modules", "site-packages"}


def definition_files(repo: Path) -> list[Path]:
    """Python files of ``repo`` that may declare definitions (hidden and venv folders skipped)."""
    found = []
    for path in sorted(repo.rglob("*.py")):
        parts = path.relative_to(repo).parts
        if any(p in _SKIP_DIRS or p.startswith(".") or p.startswith("venv") for p in parts[:-1]):
            continue
        if path.name.startswith(("test_", "_")) and path.name != "__init__.py":
            continue
        found.append(path)
    return found


def load_definitions(repo: str | Path) -> list[Definition]:
    """Import each definition file and collect the module-level definitions, in file order."""
    root = Path(repo).resolve()
    objects: list[Definition] = []
    seen: dict[tuple[str, str], tuple[Definition, Path]] = {}
    for path in definition_files(root):
        name = "featureledger_repo_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        sys.path.insert(0, str(root))
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise DefinitionError(
                f"{path.relative_to(root)} failed to import: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            sys.path.remove(str(root))
        for value in vars(module).values():
            if not isinstance(value, Entity | FeatureGroup | FeatureView):
                continue
            key = (type(value).__name__, value.name)
            if key in seen:
                other, where = seen[key]
                if other == value:
                    continue
                raise DefinitionError(
                    f"{key[0]} {value.name!r} is defined differently in "
                    f"{where.relative_to(root)} and {path.relative_to(root)}"
                )
            seen[key] = (value, path)
            objects.append(value)
    return objects
