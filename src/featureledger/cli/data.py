"""Repository, definitions and data: init, plan, apply, ingest, compact, versions, read,
training-data, show, list."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from featureledger.cli import console as out
from featureledger.cli._common import (
    TIME_FORMATS,
    RepoOpt,
    _read,
    _serving_store,
    _store,
    _utc,
    app,
    handled,
)


def _plan_rows(plan: Any) -> list[list[str]]:
    return [
        [i.identity, i.action, i.before or "-", i.after or "-", "; ".join(i.reasons) or "-"]
        for i in plan.items
    ]


@app.command()
@handled
def init(
    path: Annotated[Path, typer.Argument(help="Folder to create the repository in.")] = Path("."),
    project: Annotated[str | None, typer.Option(help="Project name.")] = None,
    example: Annotated[
        bool,
        typer.Option("--example", help="Also write the quickstart's features.py and data files."),
    ] = False,
) -> None:
    """Create a repository: featureledger.yaml and the .featureledger/ state folder."""
    from featureledger.store import FeatureStore

    if example:
        from featureledger.demo.example import FILES, write_example

        # checked before the repository exists, so a refusal leaves nothing behind
        clash = [name for name in FILES if (path / name).exists()]
        if clash:
            out.fail(f"{path} already has {', '.join(clash)}; --example never overwrites files")
            raise typer.Exit(1)
    store = FeatureStore.init(path, project=project)
    out.ok(f"repository ready at {store.repo}")
    if example:
        write_example(store.repo)
        out.table(None, ["file", "holds"], [[name, what] for name, what in FILES.items()])
        out.info("Next: `featureledger plan`, then `featureledger apply` (docs/quickstart.md).")
        return
    out.info(
        "Declare Entity, FeatureGroup and FeatureView objects in .py files there, then run "
        "`featureledger apply`."
    )


@app.command()
@handled
def plan(repo: RepoOpt = Path(".")) -> None:
    """Show what `apply` would change, changing nothing."""
    from featureledger.repo import load_definitions

    result = _store(repo).plan(load_definitions(repo))
    out.table("plan", ["identity", "action", "from", "to", "why"], _plan_rows(result))
    if result.refused:
        out.fail("breaking changes would be refused; set version=N+1 on those definitions")
        raise typer.Exit(1)


@app.command()
@handled
def apply(repo: RepoOpt = Path(".")) -> None:
    """Register the definitions in the repository's Python files."""
    from featureledger.repo import load_definitions

    result = _store(repo).apply(load_definitions(repo))
    out.table("applied", ["identity", "action", "from", "to", "why"], _plan_rows(result))


@app.command()
@handled
def ingest(
    group: Annotated[str, typer.Argument(help="Feature group name.")],
    file: Annotated[Path, typer.Argument(help="Parquet or CSV file (or Parquet folder).")],
    mode: Annotated[str, typer.Option(help="upsert, append or overwrite.")] = "upsert",
    version: Annotated[int | None, typer.Option(help="Definition major version.")] = None,
    note: Annotated[str, typer.Option(help="Why this write happened.")] = "",
    repo: RepoOpt = Path("."),
) -> None:
    """Write a file into a feature group as one new data version."""
    store = _store(repo)
    before = store.versions(group, major=version)[-1].version
    record = store.ingest(group, file, mode=mode, version=version, note=note)
    if record.version == before:
        out.ok(f"no change: the data is already stored in {record.identity}")
    else:
        out.ok(f"{record.identity}: {change_summary(record, mode)}, {record.content}")


def change_summary(record: Any, mode: str) -> str:
    """What a write changed, in the words `diff` uses (rows keyed by entity and event time).

    An upsert writes the rows whose key is new (added) or whose values differ (changed: the
    stored row is removed and the new one written); rows equal to the stored ones are not
    written at all. An overwrite replaces the whole table, so only `diff` can tell which of
    its rows are new, changed or gone.
    """
    if mode == "overwrite":
        return (
            f"table replaced: {record.rows_removed:,} rows removed, {record.rows_added:,} "
            f"written, {record.rows:,} in all (`featureledger diff` counts them by key)"
        )
    added = record.rows_added - record.rows_removed
    return f"{added:,} rows added, {record.rows_removed:,} changed, {record.rows:,} in all"


@app.command()
@handled
def compact(
    group: Annotated[str, typer.Argument(help="Feature group name.")],
    version: Annotated[int | None, typer.Option(help="Definition major version.")] = None,
    repo: RepoOpt = Path("."),
) -> None:
    """Rewrite a group's many small files into few key-sorted ones (same content hash)."""
    record = _store(repo).compact(group, version=version)
    out.ok(f"{record.identity}: {record.note or 'nothing to compact'} ({record.content})")


def _versions_rows(records: list[Any]) -> list[list[Any]]:
    return [
        [
            r.version,
            r.created_at,
            r.operation,
            r.rows,
            r.rows_added,
            r.rows_removed,
            r.content.digest[:12],
            (r.run_id or "-")[:8],
            r.note,
        ]
        for r in records
    ]


@app.command()
@handled
def versions(
    group: Annotated[str, typer.Argument(help="Feature group name.")],
    version: Annotated[int | None, typer.Option(help="Definition major version.")] = None,
    repo: RepoOpt = Path("."),
) -> None:
    """List a group's data versions: number, time, rows, hash, operation, run."""
    records = _read(repo, "versions", group, major=version)
    title = str(records[-1].identity.without_data()) if records else group
    out.table(
        title,
        ["#", "committed (UTC)", "operation", "rows", "+", "-", "content hash", "run", "note"],
        _versions_rows(records),
    )


@app.command()
@handled
def read(
    group: Annotated[str, typer.Argument(help="Feature group name.")],
    at: Annotated[int | None, typer.Option("--at", help="Data version number.")] = None,
    as_of: Annotated[
        datetime | None, typer.Option(help="Time travel (UTC).", formats=TIME_FORMATS)
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows to print.")] = 10,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write Parquet.")] = None,
    version: Annotated[
        int | None, typer.Option(help="Definition major version (default: the latest).")
    ] = None,
    repo: RepoOpt = Path("."),
) -> None:
    """Print (or save) the rows of one data version."""
    import pyarrow.parquet as pq

    when = None if as_of is None else _utc(as_of)
    data = _store(repo).read(group, version=at, as_of=when, major=version)
    if output:
        pq.write_table(data, output)
        out.ok(f"{data.num_rows:,} rows written to {output}")
    else:
        out.arrow(data, limit=limit)


def parse_key(text: str) -> Any:
    """``k1=v1,k2=v2`` as a mapping; a bare value (a one-column key) as itself."""
    if "=" not in text:
        return text
    key: dict[str, str] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"{part!r}: expected COLUMN=VALUE, e.g. user_id=7")
        key[name.strip()] = value
    return key


@app.command()
@handled
def history(
    group: Annotated[str, typer.Argument(help="Feature group name.")],
    key: Annotated[str, typer.Argument(help="The key: VALUE, or k1=v1,k2=v2 when composite.")],
    at: Annotated[int | None, typer.Option("--version", help="Data version number.")] = None,
    major: Annotated[int | None, typer.Option(help="Definition major version.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    limit: Annotated[int, typer.Option(help="Rows to print.")] = 50,
    repo: RepoOpt = Path("."),
) -> None:
    """A key's rows with the interval [valid_from, valid_to) each was current (SCD type 2)."""
    data = _store(repo).history(group, parse_key(key), version=at, major=major)
    if as_json:
        out.as_json(
            [
                {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}
                for row in data.to_pylist()
            ]
        )
    elif not data.num_rows:
        out.info(f"no rows for {key} in {group}")
    else:
        out.arrow(data, title=f"{group} {key}", limit=limit)


@app.command("training-data")
@handled
def training_data(
    view: Annotated[str, typer.Argument(help="Feature view name.")],
    entities: Annotated[Path, typer.Argument(help="Entity frame (Parquet or CSV).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Parquet file to write.")],
    timestamp_column: Annotated[str, typer.Option(help="Time column of the entity frame.")] = (
        "event_timestamp"
    ),
    pin: Annotated[list[str] | None, typer.Option(help="GROUP=N to read data version N.")] = None,
    as_of: Annotated[
        datetime | None,
        typer.Option(help="Read versions current then (UTC).", formats=TIME_FORMATS),
    ] = None,
    version: Annotated[int | None, typer.Option(help="View major version.")] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Refuse when an input group has no rows, or none at the entity times.",
        ),
    ] = False,
    split: Annotated[
        str | None,
        typer.Option(
            help="Record parts, e.g. 'time:0.7,0.15,0.15', 'time:0.8,0.2,gap=2d', "
            "'random:0.8,0.2,seed=1', 'stratified:0.8,0.2', 'group:0.8,0.2,by=user_id'."
        ),
    ] = None,
    label: Annotated[str | None, typer.Option(help="The label column.")] = None,
    helper: Annotated[
        list[str] | None,
        typer.Option(help="A column kept but not fed to the model (repeat), e.g. region."),
    ] = None,
    repo: RepoOpt = Path("."),
) -> None:
    """Build a point-in-time correct training set and record it.

    Warns when an input group has no rows, or entity times fall before its first event
    time (or after its last plus the TTL); --strict refuses instead.
    """

    pins: dict[str, int] = {}
    for item in pin or []:
        name, _, number = item.partition("=")
        if not number.isdigit():
            out.fail(f"--pin {item!r}: expected GROUP=N, e.g. --pin user_stats=3")
            raise typer.Exit(2)
        pins[name] = int(number)
    # coverage warnings are printed as they occur (`handled`)
    result = _serving_store(repo).training_data(
        view,
        entities,
        timestamp_column=timestamp_column,
        versions=pins or None,
        as_of=None if as_of is None else _utc(as_of),
        version=version,
        output=output,
        strict=strict,
        split=split,
        label=label,
        helpers=helper or (),
    )
    rec = result.record
    out.ok(f"{rec.identity}: {rec.rows:,} rows x {len(rec.columns)} columns -> {output}")
    if result.parts:
        about = rec.params["split"]
        out.table(
            f"split {about['spec']['kind']}, gap {about['gap_seconds']:g} s, "
            f"{about['unassigned']:,} row(s) in no part",
            ["part", "rows", "content hash"],
            [[f"{rec.identity}:{n}", p["rows"], p["content"]] for n, p in about["parts"].items()],
        )
    out.table(
        None,
        ["input", "data version", "content hash"],
        [[g, p["identity"], p["content"]] for g, p in rec.pins.items()],
    )
    out.info(f"entity frame {rec.entity_hash}   result {rec.content}")


@app.command()
@handled
def show(
    identity: Annotated[str, typer.Argument(help="e.g. feature_group/user_stats@v1#3")],
    repo: RepoOpt = Path("."),
) -> None:
    """Print everything recorded about an identity."""
    out.as_json(_read(repo, "show", identity))


@app.command("list")
@handled
def list_(
    kind: Annotated[
        str, typer.Argument(help="entities, groups, views or training-sets")
    ] = "groups",
    repo: RepoOpt = Path("."),
) -> None:
    """List registered definitions (every version) or training sets."""
    kinds = {"entities": "entity", "groups": "feature_group", "views": "feature_view"}
    if kind in kinds:
        records = _read(repo, "list_definitions", kinds[kind])
        out.table(
            kind,
            ["identity", "version", "registered", "by", "changes"],
            [
                [r.identity, r.semver, r.created_at, r.created_by, "; ".join(r.reasons)]
                for r in records
            ],
        )
    elif kind in ("training-sets", "training-datasets"):
        rows = []
        for view in sorted({r.name for r in _read(repo, "list_definitions", "feature_view")}):
            for rec in _read(repo, "training_datasets", view):
                rows.append([rec.identity, rec.rows, rec.created_at, str(rec.content)])
        out.table("training datasets", ["identity", "rows", "created", "content hash"], rows)
    else:
        out.fail(f"unknown kind {kind!r}; use entities, groups, views or training-sets")
        raise typer.Exit(2)
