"""What every command module shares: the Typer app, error handling and store loading."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from featureledger.cli import console as out
from featureledger.errors import CoverageWarning, FeatureLedgerError, SplitGapWarning

app = typer.Typer(
    name="featureledger",
    help="A feature store that keeps the books: versioned, contract-checked features.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # plain help: Typer's Rich help formatter imports Markdown, Pygments and attrs, which is
    # most of what `featureledger --help` would cost
    rich_markup_mode=None,
)

F = TypeVar("F", bound=Callable[..., Any])
RepoOpt = Annotated[
    Path, typer.Option("--repo", "-r", help="Repository folder (holds featureledger.yaml).")
]


model_app = typer.Typer(help="Registered models.", no_args_is_help=True)
app.add_typer(model_app, name="model")

#: stores opened by the running command, closed when it ends
_opened: list[Any] = []


def handled(func: F) -> F:
    """Print featureledger errors plainly and exit 1 instead of showing a traceback, and
    its warnings as warnings; close the stores the command opened (so statistics of its
    writes are stored)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                # featureledger's warnings are messages for the user, printed as such (not
                # as Python's "file:line: Category: ..."), every time they occur
                warnings.simplefilter("always", CoverageWarning)
                warnings.simplefilter("always", SplitGapWarning)
                shown = warnings.showwarning

                def show(message: Any, category: type[Warning], *rest: Any, **kw: Any) -> None:
                    if issubclass(category, CoverageWarning | SplitGapWarning):
                        out.warn(str(message))
                    else:
                        shown(message, category, *rest, **kw)

                warnings.showwarning = show
                return func(*args, **kwargs)
        except FeatureLedgerError as exc:
            out.fail(str(exc))
            raise typer.Exit(1) from exc
        finally:
            while _opened:
                _opened.pop().close()

    return wrapper  # type: ignore[return-value]


def _store(repo: Path) -> Any:
    from featureledger.store import FeatureStore

    store = FeatureStore(repo)
    _opened.append(store)
    return store


def _read(repo: Path, method: str, *args: Any, **kwargs: Any) -> Any:
    """``store.method(*args, **kwargs)`` for a read-only command, answered by the light catalog when
    it can (the registry file read with the standard library: no SQLAlchemy, PyArrow or
    store to import) and by the store otherwise. Both give the same answer."""
    from featureledger.store._light import LightCatalog

    light = LightCatalog.open(repo)
    if light is not None:
        try:
            answer = getattr(light, method)(*args, **kwargs)
        finally:
            light.close()
        if answer is not None:
            return answer
    return getattr(_store(repo), method)(*args, **kwargs)


def _serving_store(repo: Path) -> Any:
    """A store that also knows the repository's functions (on-demand transforms)."""
    from featureledger.repo import load_definitions

    store = _store(repo)
    store.use_definitions(load_definitions(repo))
    return store


#: what a time option accepts: a date, a time, and either with a zone offset or ``Z``
#: (without one the time is UTC, see `_utc`)
TIME_FORMATS = [
    f"%Y-%m-%d{sep}%H:%M:%S{frac}{zone}"
    for sep in ("T", " ")
    for frac in ("", ".%f")
    for zone in ("", "%z")
] + ["%Y-%m-%d"]


def _utc(value: datetime) -> datetime:
    """Times typed on the command line without a zone are UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
