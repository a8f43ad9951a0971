"""What every page shares: the page registry, the request context, templates, links to
identities and the masking of private values.

A page is one function decorated with `page`; it receives a `Ctx` and returns
``ctx.render(template, **values)``. Adding a page is adding a function and a template
(docs/ui.md, "Adding a page")."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from featureledger.definitions.identity import VersionId
from featureledger.errors import FeatureLedgerError
from featureledger.lineage.privacy import PRIVATE, effective_classification
from featureledger.ui.auth import Viewer

if TYPE_CHECKING:
    from featureledger.store import FeatureStore

MASK = "•••• private"


@dataclass(frozen=True)
class Page:
    path: str
    handler: Callable[[Ctx], Response]
    methods: tuple[str, ...] = ("GET",)
    #: label in the navigation bar (None: reached through links only)
    nav: str | None = None


PAGES: list[Page] = []


def page(
    path: str, *, nav: str | None = None, methods: Sequence[str] = ("GET",)
) -> Callable[[Callable[[Ctx], Response]], Callable[[Ctx], Response]]:
    """Register a page at ``path`` (Starlette path syntax, e.g. ``/group/{name}``)."""

    def register(fn: Callable[[Ctx], Response]) -> Callable[[Ctx], Response]:
        PAGES.append(Page(path, fn, tuple(methods), nav))
        return fn

    return register


@dataclass
class Ctx:
    """One request to a page: who asks, the store, and how to render."""

    request: Request
    store: FeatureStore
    viewer: Viewer
    env: Environment
    form: Mapping[str, str] = field(default_factory=dict)
    _revealed: set[str] | None = None

    @property
    def root(self) -> str:
        return str(self.request.scope.get("root_path", ""))

    def arg(self, name: str, default: str = "") -> str:
        return self.request.query_params.get(name, default)

    def int_arg(self, name: str, default: int | None = None) -> int | None:
        raw = self.arg(name)
        if not raw:
            return default
        try:
            return int(raw)
        except ValueError:
            raise BadInput(f"query parameter {name}={raw!r} is not a whole number") from None

    def render(self, template: str, *, status: int = 200, **values: Any) -> HTMLResponse:
        html = self.env.get_template(template).render(
            root=self.root,
            viewer=self.viewer,
            nav=[(p.nav, p.path) for p in PAGES if p.nav],
            here=self.request.url.path,
            **values,
        )
        return HTMLResponse(html, status_code=status)

    # -- private values ---------------------------------------------------------------------
    def revealed_views(self) -> set[str]:
        """Views whose private columns this caller may see: the same rule as serving (the
        view is in the token's list and the token's purpose is the view's or beneath it)."""
        cached = self._revealed
        if cached is None:
            names = {d.name for d in self.store.list_definitions("feature_view")}
            cached = {v for v in names if self.store.may_see_private(self.viewer.record, v)}
            self._revealed = cached
        return cached

    def hidden_group_columns(self, group: str, major: int | None = None) -> set[str]:
        """Private columns of ``group`` this caller may not see values of: all of them,
        except those a view revealed to it (`revealed_views`) selects."""
        fg = self.store.get_feature_group(group, major)
        labels = effective_classification(fg, self.store.get_feature_group)
        private = {c for c, label in labels.items() if label.classification in PRIVATE}
        if not private:
            return private
        for view in self.revealed_views():
            fv = self.store.get_feature_view(view)
            for src in fv.sources:
                if src.group == group and (major is None or src.major == fg.version):
                    private -= set(src.features)
        return private

    def hidden_view_columns(self, view: str) -> set[str]:
        if view in self.revealed_views():
            return set()
        return set(self.store.private_columns(view))


class BadInput(FeatureLedgerError):
    """A page was asked for something malformed (a bad query parameter)."""


# -- links to identities -------------------------------------------------------------------------
def href(root: str, identity: str) -> str:
    """The page of an identity (the generic record page for runs, sources and the rest)."""
    try:
        v = VersionId.parse(identity)
    except FeatureLedgerError:
        return f"{root}/show?{urlencode({'id': identity})}"
    name = quote(v.name)
    if v.kind == "entity":
        return f"{root}/entity/{name}"
    if v.kind == "feature_group":
        query = {} if v.major is None else {"major": v.major}
        if v.data is not None:
            query["version"] = v.data
        return f"{root}/group/{name}" + (f"?{urlencode(query)}" if query else "")
    if v.kind == "feature_view":
        return f"{root}/view/{name}" + ("" if v.major is None else f"?major={v.major}")
    if v.kind == "training_dataset" and v.number is not None:
        return f"{root}/training/{name}/{v.number}" + (
            "" if v.major is None else f"?major={v.major}"
        )
    if v.kind == "model":
        return f"{root}/model/{name}"
    if v.kind == "deployment":
        return f"{root}/deployments#{name}"
    return f"{root}/show?{urlencode({'id': identity})}"


def when(value: datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return value.strftime("%Y-%m-%d %H:%M:%S") + ("Z" if value.utcoffset() is not None else "")


def num(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def bars(counts: Iterable[int], *, width: int = 240, height: int = 60) -> list[dict[str, float]]:
    """Rectangles of a bar chart drawn as SVG by the templates (no script, no inline style)."""
    values = list(counts)
    top = max(values, default=0) or 1
    step = width / max(len(values), 1)
    out = []
    for i, c in enumerate(values):
        h = height * c / top
        out.append({"x": i * step, "y": height - h, "w": max(step - 1, 1), "h": h, "count": c})
    return out


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("featureledger.ui", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(href=href, bars=bars, MASK=MASK)
    env.filters.update(when=when, num=num, pretty=pretty)
    return env
