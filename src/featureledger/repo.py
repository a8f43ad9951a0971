"""Find the definitions declared in a repository's Python files."""

from __future__ import annotations

import dataclasses
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
    return [_attach_contract(root, obj) for obj in objects]


def contract_files(repo: Path) -> dict[str, Path]:
    """``contracts/<group>.yaml`` and ``<group>.contract.yaml`` files, by group name."""
    found: dict[str, Path] = {}
    for path in sorted(repo.rglob("*.yaml")):
        parts = path.relative_to(repo).parts
        if any(p.startswith(".") for p in parts):
            continue
        if path.name.endswith(".contract.yaml"):
            name = path.name.removesuffix(".contract.yaml")
        elif len(parts) >= 2 and parts[-2] == "contracts":
            name = path.stem
        else:
            continue
        if name in found:
            raise DefinitionError(
                f"two contract files for {name!r}: {found[name].relative_to(repo)} and "
                f"{path.relative_to(repo)}"
            )
        found[name] = path
    return found


def _attach_contract(repo: Path, obj: Definition) -> Definition:
    if not isinstance(obj, FeatureGroup):
        return obj
    path = contract_files(repo).get(obj.name)
    if path is None:
        return obj
    if obj.contract is not None:
        raise DefinitionError(
            f"feature group {obj.name!r} has a contract in Python and in "
            f"{path.relative_to(repo)}; keep one"
        )
    from featureledger.contracts import load_contract

    return dataclasses.replace(obj, contract=load_contract(path))
