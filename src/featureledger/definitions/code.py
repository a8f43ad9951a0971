"""Per-function code hashes (``fn1:``): what a transform computes, not where its file lives.

`function_hash(fn)` digests the function's normalized source -- its AST with docstrings,
comments, formatting, line numbers and its own name left out -- together with the hashes of
the module-level names it references, recursively: helper functions and classes of the
user's code (by their own normalized source and references), constants (by value), library
modules and functions (by their dotted name; their versions are the environment's business).
The module the function lives in, its import path and every definition it does not reach
are not part of the hash, so adding a view to ``features.py`` changes nothing, and the CLI
(which imports ``features.py`` under a generated module name) and Python agree.

Each reached name also keeps its own hash in `CodeHash.parts`, so a change report can name
what changed: the function's body (``"(body)"``), a helper (``"_scale"``) or a constant.
docs/versioning.md lists what counts.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import hashlib
import inspect
import sys
import sysconfig
import textwrap
import types
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

CODE_HASH_VERSION = "fn1"
BODY = "(body)"
_CONSTANTS = (int, float, complex, str, bytes, bool, type(None))


@dataclass(frozen=True)
class CodeHash:
    """A function's ``fn1:`` hash, the hash of each name it reaches, and the packages it uses."""

    value: str
    parts: Mapping[str, str]
    packages: tuple[str, ...]


def function_hash(fn: Callable[..., Any]) -> CodeHash:
    """The ``fn1:`` code hash of ``fn`` (see the module docstring).

    Computed once per function object: editing the code means importing it again, which
    makes new function objects.
    """
    try:
        return _MEMO[fn]
    except (KeyError, TypeError):
        pass
    walk = _Walk()
    total = walk.function(inspect.unwrap(fn), top=True)
    found = CodeHash(
        f"{CODE_HASH_VERSION}:{total[:16]}",
        dict(sorted(walk.parts.items())),
        tuple(sorted(walk.packages)),
    )
    with contextlib.suppress(TypeError):  # not weakly referenceable: not kept
        _MEMO[fn] = found
    return found


_MEMO: weakref.WeakKeyDictionary[Any, CodeHash] = weakref.WeakKeyDictionary()


def legacy_source_hash(fn: Callable[..., Any]) -> str:
    """The hash recorded before ``fn1``: the function's raw source text, as written."""
    return hashlib.sha256(inspect.getsource(fn).encode()).hexdigest()[:16]


def _sha(*texts: str) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")
    return h.hexdigest()


class _Walk:
    def __init__(self) -> None:
        self.parts: dict[str, str] = {}
        self.packages: set[str] = set()
        self._done: dict[int, str] = {}
        self._busy: set[int] = set()

    def _part(self, name: str, digest: str) -> None:
        key, n = name, 2
        while self.parts.get(key, digest) != digest:  # two different objects, one name
            key, n = f"{name}#{n}", n + 1
        self.parts[key] = digest[:16]

    def function(self, fn: Any, *, top: bool = False) -> str:
        if id(fn) in self._done:
            return self._done[id(fn)]
        if id(fn) in self._busy:  # mutual recursion: the cycle is hashed once, by name
            return _sha("cycle", fn.__qualname__)
        self._busy.add(id(fn))
        tree = _function_ast(fn)
        own = _sha(ast.dump(tree, include_attributes=False))
        self._part(BODY if top else fn.__qualname__, own)
        refs = [f"{name}={self.value(name, value)}" for name, value in _references(fn, tree)]
        total = _sha(own, *sorted(refs))
        self._busy.discard(id(fn))
        self._done[id(fn)] = total
        return total

    def value(self, name: str, value: Any) -> str:
        """The hash of one referenced name's value (recording its part or its package)."""
        if isinstance(value, types.ModuleType):
            if _is_library(value.__name__):
                self.packages.add(value.__name__.split(".")[0])
                return _sha("module", value.__name__)
            return _sha("module", "user")  # what is used of it is walked attribute by attribute
        if isinstance(value, types.FunctionType | type) and not _is_library(value.__module__):
            if isinstance(value, types.FunctionType):
                return self.function(value)
            digest = _sha("class", ast.dump(_normalized(value), include_attributes=False))
            self._part(value.__qualname__, digest)
            return digest
        if callable(value) and getattr(value, "__module__", None) and hasattr(value, "__name__"):
            module = value.__module__
            self.packages.add(module.split(".")[0])
            return _sha("library", module, getattr(value, "__qualname__", value.__name__))
        digest = _sha("value", _stable_repr(value))
        self._part(name, digest)
        return digest


def _function_ast(fn: Any) -> ast.AST:
    """The function's definition (or lambda) with docstrings and its own name left out."""
    try:
        source = textwrap.dedent(inspect.getsource(fn))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        # a lambda inside a larger expression does not parse alone; nor does code typed at
        # a prompt. The code object's own structure (minus positions) stands in for it.
        return ast.Constant(_code_fingerprint(fn.__code__))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == fn.__name__:
            break
    else:
        lambdas = [n for n in ast.walk(tree) if isinstance(n, ast.Lambda)]
        if len(lambdas) != 1:
            return ast.Constant(_code_fingerprint(fn.__code__))
        node = lambdas[0]
    node = _StripDocstrings().visit(node)
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        node.name = "_"
    return node


def _normalized(cls: type) -> ast.AST:
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return ast.Constant(cls.__qualname__)
    return _StripDocstrings().visit(tree)


class _StripDocstrings(ast.NodeTransformer):
    def _strip(self, node: Any) -> Any:
        self.generic_visit(node)
        body = node.body
        first = body[0].value if body and isinstance(body[0], ast.Expr) else None
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            node.body = body[1:] or [ast.Pass()]
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = visit_Module = _strip


def _code_fingerprint(code: types.CodeType) -> str:
    consts = [
        _code_fingerprint(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts
    ]
    return _sha(code.co_code.hex(), repr(code.co_names), repr(code.co_varnames), *consts)


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def _references(fn: Any, tree: ast.AST) -> list[tuple[str, Any]]:
    """The module-level names (and closure cells) ``fn`` reads, with their values; attributes
    of the user's own modules (``helpers.scale``) count as names of their own."""
    scope = fn.__globals__
    out: dict[str, Any] = {}
    if isinstance(tree, ast.Constant):  # no source: the code object's names stand in
        read = _code_names(fn.__code__)
    else:  # names read in the source; attribute names (``pc.multiply``) are not among them
        read = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    for name in sorted(read):
        if name in scope and not (
            hasattr(builtins, name) and scope[name] is getattr(builtins, name)
        ):
            out[name] = scope[name]
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=True):
        try:
            out[name] = cell.cell_contents
        except ValueError:  # an empty cell: not bound yet
            continue
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and isinstance(out.get(node.value.id), types.ModuleType)
            and not _is_library(out[node.value.id].__name__)
            and hasattr(out[node.value.id], node.attr)
        ):
            out[f"{node.value.id}.{node.attr}"] = getattr(out[node.value.id], node.attr)
    return sorted(out.items(), key=lambda kv: kv[0])


def _stable_repr(value: Any, depth: int = 0) -> str:
    if isinstance(value, _CONSTANTS):
        return f"{type(value).__name__}:{value!r}"
    if depth < 8 and isinstance(value, tuple | list):
        return (
            f"{type(value).__name__}[" + ",".join(_stable_repr(v, depth + 1) for v in value) + "]"
        )
    if depth < 8 and isinstance(value, set | frozenset):
        return "set{" + ",".join(sorted(_stable_repr(v, depth + 1) for v in value)) + "}"
    if depth < 8 and isinstance(value, dict):
        items = sorted(
            f"{_stable_repr(k, depth + 1)}:{_stable_repr(v, depth + 1)}" for k, v in value.items()
        )
        return "dict{" + ",".join(items) + "}"
    text = repr(value)
    if " at 0x" in text:  # an address changes every run: only the type can be told
        return f"object:{type(value).__module__}.{type(value).__qualname__}"
    return f"{type(value).__module__}.{type(value).__qualname__}:{text}"


@cache
def _library_roots() -> tuple[Path, ...]:
    paths = sysconfig.get_paths()
    return tuple(
        Path(paths[k]).resolve()
        for k in ("stdlib", "platstdlib", "purelib", "platlib")
        if k in paths
    )


@cache
def _is_library(module_name: str) -> bool:
    """Installed packages, the standard library and featureledger itself: hashed by name."""
    top = module_name.split(".")[0]
    if top in ("featureledger", "builtins") or top in sys.builtin_module_names:
        return True
    module = sys.modules.get(module_name) or sys.modules.get(top)
    file = getattr(module, "__file__", None)
    if file is None:
        return module is not None and not hasattr(module, "__path__")
    path = Path(file).resolve()
    return any(path.is_relative_to(root) for root in _library_roots())
