"""Name rules shared by every definition: names become paths, table names and SQL columns."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from featureledger.errors import DefinitionError, InvalidNameError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def check_name(what: str, name: object) -> str:
    """Return ``name`` if it is a safe identifier, else raise `InvalidNameError`."""
    if not isinstance(name, str):
        raise InvalidNameError(what, name, "it is not a string")
    if not name:
        raise InvalidNameError(what, name, "it is empty")
    if not _NAME.fullmatch(name):
        bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c == "_"))})
        if bad:
            rule = (
                f"it contains {''.join(bad)!r} (path separators, quotes and SQL syntax are unsafe)"
            )
        elif len(name) > 128:
            rule = "it is longer than 128 characters"
        else:
            rule = "it starts with a digit"
        raise InvalidNameError(what, name, rule)
    return name


def as_items(what: str, value: object, *, single: tuple[type, ...] = (str,)) -> tuple[Any, ...]:
    """``value`` as a tuple of items; one ``single`` item (a name) counts as one, never as
    the sequence of its characters. Anything not iterable raises `DefinitionError`."""
    if isinstance(value, single):
        return (value,)
    if value is None or isinstance(value, bytes | Mapping) or not isinstance(value, Iterable):
        raise DefinitionError(f"{what} must be a list, got {value!r} ({type(value).__name__})")
    return tuple(value)


def as_mapping(what: str, value: object) -> dict[str, Any]:
    """``value`` as a plain dict, or `DefinitionError` when it is not a mapping."""
    if not isinstance(value, Mapping):
        raise DefinitionError(
            f"{what} must be a mapping of names to values, got {value!r} ({type(value).__name__})"
        )
    return dict(value)
