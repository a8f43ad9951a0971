"""Name rules shared by every definition: names become paths, table names and SQL columns."""

from __future__ import annotations

import re

from featureledger.errors import InvalidNameError

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
