"""Connection faults of an online store become `OnlineStoreUnavailable`.

`guard(store, name)` wraps any `OnlineStore`: every method called through it (read,
read_one, write, tables, delete_table and whatever a backend adds) translates the
faults that mean "cannot reach the store" -- Redis connection and timeout errors,
socket errors, SQLite's "unable to open", "disk I/O error" and "database is locked"
-- into one retryable project error naming the store. Other errors pass unchanged,
so a missing table still says what to materialize. Wrapping here, not inside each
backend, keeps one list of faults for every backend.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from featureledger.errors import OnlineStoreUnavailable

#: SQLite messages that mean the database cannot be used now, not that a query is wrong
_SQLITE_DOWN = ("unable to open", "disk i/o error", "database is locked", "readonly database")


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the store cannot be reached (as opposed to a bad request)."""
    if isinstance(exc, sqlite3.OperationalError):
        return any(m in str(exc).lower() for m in _SQLITE_DOWN)
    if isinstance(exc, OSError):  # refused or reset sockets, unreachable hosts
        return True
    module = type(exc).__module__
    if module.startswith("redis"):
        from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError

        return isinstance(exc, ConnectionError | TimeoutError | BusyLoadingError)
    return False


class GuardedOnlineStore:
    """An online store whose connection faults raise `OnlineStoreUnavailable`."""

    def __init__(self, store: Any, name: str) -> None:
        self._store = store
        self._name = name

    @property
    def wrapped(self) -> Any:
        """The backend itself."""
        return self._store

    def __repr__(self) -> str:
        return f"guard({self._store!r})"

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._store, attr)
        if not callable(value) or attr.startswith("__"):
            return value
        method: Callable[..., Any] = value
        name = self._name

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except Exception as exc:
                if is_unavailable(exc):
                    raise OnlineStoreUnavailable(name, attr, exc) from exc
                raise

        call.__name__ = attr
        self.__dict__[attr] = call  # later lookups skip __getattr__ (the read path is hot)
        return call


def guard(factory: Callable[[Any], Any], name: str, where: Any) -> Any:
    """``factory(where)`` with its connection faults translated, opening included (see the
    module docstring)."""
    try:
        store = factory(where)
    except Exception as exc:
        if is_unavailable(exc):
            raise OnlineStoreUnavailable(name, "open", exc) from exc
        raise
    return GuardedOnlineStore(store, name)
