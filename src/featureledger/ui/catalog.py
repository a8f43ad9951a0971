"""Pages of the catalog: definitions, groups with their versions, views, training sets."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from starlette.responses import Response

from featureledger.definitions.identity import VersionId
from featureledger.lineage.privacy import PRIVATE, effective_classification
from featureledger.registry import DefinitionRecord
from featureledger.ui._render import MASK, BadInput, Ctx, page

KINDS = ("entity", "feature_group", "feature_view")
PAGE_SIZE = 100
#: quarantined rows shown on a group page (the CLI lists them all)
QUARANTINE_ROWS = 50


def latest(records: Iterable[DefinitionRecord]) -> dict[str, tuple[DefinitionRecord, int]]:
    """Each name's newest definition version and how many versions it has."""
    out: dict[str, tuple[DefinitionRecord, int]] = {}
    for r in records:
        seen = out.get(r.name)
        if seen is None:
            out[r.name] = (r, 1)
        else:
            best = max(seen[0], r, key=lambda d: (d.major, d.minor, d.patch))
            out[r.name] = (best, seen[1] + 1)
    return out


def labels(spec: Mapping[str, Any]) -> dict[str, list[str]]:
    """Classification -> column names, from a group spec (declared labels only)."""
    out: dict[str, list[str]] = {}
    for f in spec.get("features", []):
        label = f.get("classification", "internal")
        out.setdefault(label, []).append(f["name"])
    return out


def matches(query: str, kind: str, rec: DefinitionRecord) -> bool:
    if not query:
        return True
    spec = rec.spec
    words = [rec.name, kind, spec.get("owner", ""), spec.get("description", "")]
    words += [f"{k}={v}" for k, v in (spec.get("tags") or {}).items()]
    words += [f.get("name", "") for f in spec.get("features", [])]
    words += [f.get("classification", "") for f in spec.get("features", [])]
    words += list(spec.get("licenses") or [])
    words += [spec.get("purpose", "")]
    text = " ".join(str(w) for w in words).lower()
    return all(term in text for term in query.lower().split())


@page("/", nav="Catalog")
def catalog(ctx: Ctx) -> Response:
    query = ctx.arg("q").strip()
    kind = ctx.arg("kind")
    if kind and kind not in KINDS:
        raise BadInput(f"kind={kind!r} is not one of {', '.join(KINDS)}")
    start = max(ctx.int_arg("page", 1) or 1, 1)
    sections = []
    for k in KINDS:
        if kind and k != kind:
            continue
        rows = [
            (rec, n)
            for _, (rec, n) in sorted(latest(ctx.store.list_definitions(k)).items())
            if matches(query, k, rec)
        ]
        pages = max((len(rows) + PAGE_SIZE - 1) // PAGE_SIZE, 1)
        shown = rows[(start - 1) * PAGE_SIZE : start * PAGE_SIZE] if kind else rows[:PAGE_SIZE]
        sections.append({"kind": k, "rows": shown, "total": len(rows), "pages": pages})
    return ctx.render(
        "catalog.html", sections=sections, q=query, kind=kind, page=start, labels=labels
    )


@page("/entity/{name}")
def entity(ctx: Ctx) -> Response:
    name = ctx.request.path_params["name"]
    records = [d for d in ctx.store.list_definitions("entity") if d.name == name]
    if not records:
        ctx.store.get_entity(name)  # NotFoundError naming the known entities
    groups = [
        rec
        for rec, _ in latest(ctx.store.list_definitions("feature_group")).values()
        if any(e.get("name") == name for e in rec.spec.get("entities", []))
    ]
    return ctx.render("entity.html", name=name, records=records, groups=groups)


def stats_view(stats: Mapping[str, Any], hidden: set[str]) -> list[dict[str, Any]]:
    """Column statistics (`monitoring.stats.ColumnStats`, or the diff's summary) as the
    templates show them; values of ``hidden`` columns masked
    (their counts stay: how many values are missing is not a value)."""
    out = []
    for name, s in stats.items():
        row: dict[str, Any] = {"name": name, "s": s, "hidden": name in hidden}
        if name in hidden:
            row.update(min=MASK, max=MASK, mean=MASK, histogram=None, frequencies=None)
        else:
            row.update(
                min=s.min,
                max=s.max,
                mean=s.mean,
                histogram=getattr(s, "histogram", None),
                frequencies=sorted(
                    (getattr(s, "frequencies", None) or {}).items(), key=lambda kv: -kv[1]
                )[:10],
            )
        out.append(row)
    return out


def _major(ctx: Ctx, name: str) -> int:
    major = ctx.int_arg("major")
    if major is not None:
        return major
    return ctx.store.get_feature_group(name).version or 1


@page("/group/{name}")
def group(ctx: Ctx) -> Response:
    store = ctx.store
    name = ctx.request.path_params["name"]
    major = _major(ctx, name)
    fg = store.get_feature_group(name, major)  # NotFoundError naming the known groups
    definitions = [d for d in store.list_definitions("feature_group") if d.name == name]
    spec = next(
        (
            d.spec
            for d in sorted(definitions, key=lambda d: (d.major, d.minor, d.patch))
            if d.major == major
        ),
        {},
    )
    versions = store.versions(name, major=major)
    chosen = ctx.int_arg("version", versions[-1].version if versions else None)
    if chosen is not None and versions and chosen not in {v.version for v in versions}:
        raise BadInput(f"feature_group/{name}@v{major} has no data version #{chosen}")
    hidden = ctx.hidden_group_columns(name, major)
    stats: list[dict[str, Any]] = []
    if chosen is not None and versions:
        ident = str(VersionId("feature_group", name, major, chosen))
        stats = stats_view(store.stats(ident), hidden)
    validations = store.validations(name, major=major)
    quarantined = store.quarantined(name, major=major)
    q_rows = quarantined.slice(0, QUARANTINE_ROWS).to_pylist()
    for row in q_rows:
        for col in hidden & row.keys():
            row[col] = MASK
    classes = effective_classification(fg, store.get_feature_group)
    columns = [
        {
            "name": c.name,
            "dtype": str(c.dtype),
            "label": classes[c.name].classification,
            "why": classes[c.name].why(name, c.name)
            if classes[c.name].classification in PRIVATE
            else "",
            "description": c.description,
        }
        for c in fg.columns
    ]
    return ctx.render(
        "group.html",
        name=name,
        major=major,
        fg=fg,
        spec=spec,
        columns=columns,
        definitions=definitions,
        versions=list(reversed(versions)),
        chosen=chosen,
        stats=stats,
        validation=validations[-1] if validations else None,
        quarantined=q_rows,
        quarantined_total=quarantined.num_rows,
        quarantine_columns=quarantined.column_names,
    )


@page("/group/{name}/diff")
def diff(ctx: Ctx) -> Response:
    store = ctx.store
    name = ctx.request.path_params["name"]
    major = _major(ctx, name)
    old = ctx.int_arg("old")
    new = ctx.int_arg("new")
    if old is None:
        raise BadInput("choose the older version to compare (old=N)")
    d = store.diff(name, old, new, major=major)
    hidden = ctx.hidden_group_columns(name, major)
    examples = {
        kind: [{k: (MASK if k in hidden else v) for k, v in row.items()} for row in rows]
        for kind, rows in d.examples.items()
    }
    columns = sorted(set(d.stats_old) | set(d.stats_new))
    return ctx.render(
        "diff.html",
        name=name,
        major=major,
        d=d,
        examples=examples,
        columns=columns,
        old_stats=dict((r["name"], r) for r in stats_view(d.stats_old, hidden)),
        new_stats=dict((r["name"], r) for r in stats_view(d.stats_new, hidden)),
        versions=[v.version for v in store.versions(name, major=major)],
        old=old,
        new=new,
    )


@page("/view/{name}")
def view(ctx: Ctx) -> Response:
    store = ctx.store
    name = ctx.request.path_params["name"]
    major = ctx.int_arg("major")
    fv = store.get_feature_view(name, major)
    major = fv.version
    definitions = [d for d in store.list_definitions("feature_view") if d.name == name]
    return ctx.render(
        "view.html",
        name=name,
        major=major,
        fv=fv,
        definitions=definitions,
        private=store.private_columns(name),
        revealed=name in ctx.revealed_views(),
        training=list(reversed(store.training_datasets(name, major=major))),
    )


@page("/training/{view}/{number:int}")
def training(ctx: Ctx) -> Response:
    store = ctx.store
    view_name = ctx.request.path_params["view"]
    number = ctx.request.path_params["number"]
    major = ctx.int_arg("major")
    records = store.training_datasets(view_name, major=major)
    rec = next((r for r in records if r.number == number), None)
    if rec is None:
        raise BadInput(
            f"training_dataset/{view_name}/{number} does not exist; known: "
            f"{[str(r.identity) for r in records] or 'none'}"
        )
    stats = stats_view(store.stats(str(rec.identity)), ctx.hidden_view_columns(view_name))
    return ctx.render("training.html", rec=rec, stats=stats)


@page("/show")
def show(ctx: Ctx) -> Response:
    """Everything recorded about one identity (runs, sources, anything without its own page)."""
    identity = ctx.arg("id").strip()
    if not identity:
        raise BadInput("give an identity to show (id=...)")
    record = ctx.store.show(identity)
    return ctx.render("show.html", identity=identity, record=record)
