"""Who and what produced a run: user, code hash and environment hash."""

from __future__ import annotations

import functools
import getpass
import hashlib
import inspect
import os
import platform
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from featureledger.definitions.code import function_hash

#: the distributions whose versions decide what featureledger computes
ENV_PACKAGES = ("featureledger", "pyarrow", "deltalake", "duckdb", "numpy", "sqlalchemy")


def current_user() -> str:
    """``FEATURELEDGER_USER`` if set, else the login name."""
    explicit = os.environ.get("FEATURELEDGER_USER")
    if explicit:
        return explicit
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


@functools.cache
def environment() -> dict[str, str]:
    """Python version and the installed versions of `ENV_PACKAGES`."""
    env = {"python": platform.python_version()}
    for name in ENV_PACKAGES:
        try:
            env[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            env[name] = "absent"
    return env


def environment_hash(env: dict[str, str] | None = None) -> str:
    env = environment() if env is None else env
    text = "\n".join(f"{k}={v}" for k, v in sorted(env.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@functools.cache
def library_code_hash() -> str:
    """SHA-256 (16 hex digits) over featureledger's own source files, in path order."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


@functools.cache
def _packages_distributions() -> Mapping[str, list[str]]:
    """Import name -> distributions; scanning every installed package takes about a second,
    so once per process (like `environment`)."""
    return metadata.packages_distributions()


def pipeline_environment(imports: list[str]) -> dict[str, str]:
    """`environment` plus the installed versions of the distributions ``imports`` come from."""
    env = dict(environment())
    if not imports:
        return env
    mapping = _packages_distributions()
    for name in imports:
        for dist in mapping.get(name, []):
            try:
                env[dist.lower()] = metadata.version(dist)
            except metadata.PackageNotFoundError:  # pragma: no cover - mapping is from metadata
                env[dist.lower()] = "absent"
    return env


def function_location(fn: Callable[..., Any]) -> str:
    """Where a function was defined, ``path:qualname``, for a restore hint."""
    try:
        path = inspect.getsourcefile(fn) or "?"
    except TypeError:
        path = "?"
    return f"{path}:{getattr(fn, '__qualname__', repr(fn))}"


def code_provenance(items: Mapping[str, Callable[..., Any] | None]) -> dict[str, Any]:
    """The ``fn1:`` code hash, parts and location of each named function, and the packages
    they use: what a run records so `reproduce` can say which code changed and where it was.
    An item without a function (its code is not loaded) is left out."""
    code: dict[str, str] = {}
    parts: dict[str, dict[str, str]] = {}
    where: dict[str, str] = {}
    packages: set[str] = set()
    for name, fn in items.items():
        if fn is None:
            continue
        found = function_hash(fn)
        code[name] = found.value
        parts[name] = dict(found.parts)
        where[name] = function_location(fn)
        packages.update(found.packages)
    return {"code": code, "code_parts": parts, "code_where": where, "imports": sorted(packages)}
