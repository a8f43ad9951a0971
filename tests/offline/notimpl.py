"""The ``notimpl`` marker (ibis' model): known gaps of an engine declared on the test.

``@pytest.mark.notimpl(["daft"], raises=NotImplementedError, reason="...")`` turns the test
into a strict xfail expecting ``raises`` for the named engines, so a gap that gets fixed
fails the run until its mark is removed. Tests get the engine from a fixture parametrized
as ``engine`` (a variant ``name@where`` counts as ``name``); naming an engine that is not
known is an error, so marks cannot go stale.
"""

from __future__ import annotations

from collections.abc import Collection

import pytest

DOC = (
    "notimpl(engines, raises, reason): the named offline engines do not implement what the "
    "test checks; it runs as a strict xfail expecting `raises` for them"
)


def register(config: pytest.Config) -> None:
    config.addinivalue_line("markers", DOC)


def mark_gaps(items: list[pytest.Item], known: Collection[str]) -> None:
    """Add a strict xfail to each item whose engine a ``notimpl`` mark names."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        engine = callspec.params.get("engine") if callspec is not None else None
        if isinstance(engine, str):
            engine = engine.partition("@")[0]  # "daft@ray": the daft engine on Ray
        for mark in item.iter_markers("notimpl"):
            engines = list(mark.args[0] if mark.args else mark.kwargs["engines"])
            unknown = sorted(set(engines) - set(known))
            if unknown:
                raise pytest.UsageError(
                    f"{item.nodeid}: notimpl names unknown engine(s) {unknown}; "
                    f"known: {sorted(known)}"
                )
            if engine in engines:
                item.add_marker(
                    pytest.mark.xfail(
                        raises=mark.kwargs.get("raises"),
                        reason=f"{engine}: {mark.kwargs.get('reason', 'not implemented')}",
                        strict=True,
                    )
                )
