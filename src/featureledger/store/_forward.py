"""`forward`: a facade method that is exactly one service's method, declared in one line.

Most facade methods restate their service method's signature and call it. Where the two are
identical, ``canary = forward("deployments", DeploymentService.canary)`` says the same with
the signature and docstring kept in one place: type checkers and editors see the service
method's parameters (``Callable[P, R]``), and ``help()`` shows its docstring.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

P = ParamSpec("P")
R = TypeVar("R")


class forward(Generic[P, R]):
    """``store.NAME(...)`` calls ``store._svc.SERVICE.METHOD(...)``."""

    def __init__(self, service: str, method: Callable[Concatenate[Any, P], R]) -> None:
        self.service = service
        self.method = method.__name__
        self.__doc__ = method.__doc__
        self.__wrapped__ = method

    @overload
    def __get__(self, obj: None, owner: type) -> forward[P, R]: ...
    @overload
    def __get__(self, obj: object, owner: type) -> Callable[P, R]: ...
    def __get__(self, obj: object | None, owner: type) -> forward[P, R] | Callable[P, R]:
        if obj is None:
            return self
        bound: Callable[P, R] = getattr(getattr(obj._svc, self.service), self.method)  # type: ignore[attr-defined]
        return bound
