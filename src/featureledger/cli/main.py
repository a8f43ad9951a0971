"""``featureledger``: the command line. Every command calls the `FeatureStore` facade.

Commands live in modules by topic; this one holds data, versions, contracts, lineage and
models, and imports the others (monitoring, serving) so they register on the same app.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from featureledger.cli import console as out
from featureledger.cli._common import (
    RepoOpt,
    _serving_store,
    _store,
    _utc,
    app,
    handled,
    model_app,
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
) -> None:
    """Create a repository: featureledger.yaml and the .featureledger/ state folder."""
    from featureledger.store import FeatureStore

    store = FeatureStore.init(path, project=project)
    out.ok(f"repository ready at {store.repo}")
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
        out.ok(
            f"{record.identity}: {record.rows_added:,} rows added, {record.rows_removed:,} "
            f"replaced, {record.rows:,} in all, {record.content}"
        )


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
    records = _store(repo).versions(group, major=version)
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
    as_of: Annotated[datetime | None, typer.Option(help="Time travel (UTC).")] = None,
    limit: Annotated[int, typer.Option(help="Rows to print.")] = 10,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write Parquet.")] = None,
    repo: RepoOpt = Path("."),
) -> None:
    """Print (or save) the rows of one data version."""
    import pyarrow.parquet as pq

    when = None if as_of is None else _utc(as_of)
    data = _store(repo).read(group, version=at, as_of=when)
    if output:
        pq.write_table(data, output)
        out.ok(f"{data.num_rows:,} rows written to {output}")
    else:
        out.arrow(data, limit=limit)


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
        datetime | None, typer.Option(help="Read versions current then (UTC).")
    ] = None,
    version: Annotated[int | None, typer.Option(help="View major version.")] = None,
    repo: RepoOpt = Path("."),
) -> None:
    """Build a point-in-time correct training set and record it."""
    pins: dict[str, int] = {}
    for item in pin or []:
        name, _, number = item.partition("=")
        if not number.isdigit():
            out.fail(f"--pin {item!r}: expected GROUP=N, e.g. --pin user_stats=3")
            raise typer.Exit(2)
        pins[name] = int(number)
    result = _serving_store(repo).training_data(
        view,
        entities,
        timestamp_column=timestamp_column,
        versions=pins or None,
        as_of=None if as_of is None else _utc(as_of),
        version=version,
        output=output,
    )
    rec = result.record
    out.ok(f"{rec.identity}: {rec.rows:,} rows x {len(rec.columns)} columns -> {output}")
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
    out.as_json(_store(repo).show(identity))


@app.command("list")
@handled
def list_(
    kind: Annotated[
        str, typer.Argument(help="entities, groups, views or training-sets")
    ] = "groups",
    repo: RepoOpt = Path("."),
) -> None:
    """List registered definitions (every version) or training sets."""
    store = _store(repo)
    kinds = {"entities": "entity", "groups": "feature_group", "views": "feature_view"}
    if kind in kinds:
        records = store.list_definitions(kinds[kind])
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
        for view in {r.name for r in store.list_definitions("feature_view")}:
            for rec in store.training_datasets(view):
                rows.append([rec.identity, rec.rows, rec.created_at, str(rec.content)])
        out.table("training datasets", ["identity", "rows", "created", "content hash"], rows)
    else:
        out.fail(f"unknown kind {kind!r}; use entities, groups, views or training-sets")
        raise typer.Exit(2)


@app.command()
@handled
def diff(
    group: Annotated[str, typer.Argument(help="Feature group name.")],
    old: Annotated[int, typer.Argument(help="Older data version.")],
    new: Annotated[int | None, typer.Argument(help="Newer data version (default latest).")] = None,
    version: Annotated[int | None, typer.Option(help="Definition major version.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    repo: RepoOpt = Path("."),
) -> None:
    """Schema, rows added/removed/changed and statistics between two data versions."""
    d = _store(repo).diff(group, old, new, major=version)
    if as_json:
        out.as_json(d.to_dict())
        return
    out.info(f"{d.old} -> {d.new}")
    if d.columns_added or d.columns_removed or d.columns_retyped:
        out.info(f"schema: +{d.columns_added} -{d.columns_removed} retyped {d.columns_retyped}")
    out.table(
        "rows",
        ["old", "new", "added", "removed", "changed", "unchanged"],
        [[d.rows_old, d.rows_new, d.added, d.removed, d.changed, d.unchanged]],
    )
    rows = []
    for name in sorted(set(d.stats_old) | set(d.stats_new)):
        a, b = d.stats_old.get(name), d.stats_new.get(name)
        rows.append(
            [
                name,
                d.changed_by_column.get(name, "-"),
                a and a.nulls,
                b and b.nulls,
                a and a.mean,
                b and b.mean,
                a and a.min,
                b and b.min,
                a and a.max,
                b and b.max,
            ]
        )
    out.table(
        "columns",
        [
            "column",
            "changed",
            "nulls old",
            "nulls new",
            "mean old",
            "mean new",
            "min old",
            "min new",
            "max old",
            "max new",
        ],
        rows,
    )


@app.command()
@handled
def rollback(
    group: Annotated[str, typer.Argument(help="Feature group name.")],
    to: Annotated[int, typer.Option("--to", help="Data version to restore.")],
    reason: Annotated[str, typer.Option(help="Why (recorded in the version and audit log).")] = "",
    version: Annotated[int | None, typer.Option(help="Definition major version.")] = None,
    repo: RepoOpt = Path("."),
) -> None:
    """Make a new data version whose content equals an older one."""
    record = _store(repo).rollback(group, to=to, reason=reason, major=version)
    out.ok(f"{record.identity}: content restored from #{to} ({record.content})")


@app.command("rollback-view")
@handled
def rollback_view(
    view: Annotated[str, typer.Argument(help="Feature view name.")],
    to: Annotated[str, typer.Option("--to", help="Version to restore, e.g. 1.0.0.")],
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit log).")] = "",
    repo: RepoOpt = Path("."),
) -> None:
    """Make an earlier definition of a feature view its newest version."""
    record = _store(repo).rollback_view(view, to=to, reason=reason)
    out.ok(f"{record.identity}: now {record.semver}, with the definition of {to}")


@app.command()
@handled
def verify(
    identity: Annotated[str | None, typer.Argument(help="Identity (default: every group).")] = None,
    repo: RepoOpt = Path("."),
) -> None:
    """Re-hash files and rows; exit 1 if anything differs from what was recorded."""
    reports = _store(repo).verify(identity)
    out.table(
        "verify",
        ["identity", "files", "recorded hash", "actual hash", "result"],
        [
            [
                r.identity,
                r.checked_files,
                r.expected_hash,
                r.actual_hash,
                "ok" if r.ok else "; ".join(r.problems),
            ]
            for r in reports
        ],
    )
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


@app.command()
@handled
def pin(
    identity: Annotated[str, typer.Argument(help="Data version or training dataset identity.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Pointer file (.fl.yaml).")],
    repo: RepoOpt = Path("."),
) -> None:
    """Write a pointer file to commit beside training code."""
    path = _store(repo).pin(identity, output)
    out.ok(f"wrote {path}")


@app.command()
@handled
def checkout(
    pointer: Annotated[Path, typer.Argument(help="Pointer file written by `pin`.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Parquet file to write.")],
    repo: RepoOpt = Path("."),
) -> None:
    """Materialize exactly the data a pointer file pins, verifying its hash."""
    report = _store(repo).checkout(pointer, output)
    out.ok(f"{report.identity} -> {output} ({report.actual_hash}, verified)")


@app.command()
@handled
def vacuum(
    older_than: Annotated[str, typer.Option(help="Retention, e.g. 7d or 48h.")] = "7d",
    apply_: Annotated[bool, typer.Option("--apply", help="Delete (default: dry run).")] = False,
    group: Annotated[str | None, typer.Option(help="Only this group.")] = None,
    repo: RepoOpt = Path("."),
) -> None:
    """Delete unreferenced files; never the latest version nor any pinned by a training set."""
    from datetime import timedelta

    unit = older_than[-1:]
    if unit not in ("d", "h") or not older_than[:-1].isdigit():
        out.fail(f"--older-than {older_than!r}: expected a number of days or hours, e.g. 7d")
        raise typer.Exit(2)
    amount = int(older_than[:-1])
    span = timedelta(days=amount) if unit == "d" else timedelta(hours=amount)
    result = _store(repo).vacuum(older_than=span, dry_run=not apply_, group=group)
    verb = "deleted" if apply_ else "would delete (dry run; add --apply)"
    for table, files in result.items():
        out.info(f"{table}: {verb} {len(files)} file(s)")


@app.command("run")
@handled
def run_pipeline(
    group: Annotated[str, typer.Argument(help="Feature group with a source and transform.")],
    start: Annotated[datetime, typer.Option(help="Window start (inclusive, UTC).")],
    end: Annotated[datetime, typer.Option(help="Window end (exclusive, UTC).")],
    repo: RepoOpt = Path("."),
) -> None:
    """Compute one window of a feature pipeline and upsert it (idempotent)."""
    from featureledger.definitions import FeatureGroup
    from featureledger.repo import load_definitions

    live = next(
        (d for d in load_definitions(repo) if isinstance(d, FeatureGroup) and d.name == group),
        None,
    )
    result = _store(repo).run_pipeline(live or group, start=_utc(start), end=_utc(end))
    out.ok(
        f"{result.version.identity}: {result.rows:,} rows computed from "
        f"{', '.join(result.inputs)} (run/{result.run_id})"
    )


@app.command()
@handled
def reproduce(
    identity: Annotated[str, typer.Argument(help="run/<id> or the data version a run wrote.")],
    repo: RepoOpt = Path("."),
) -> None:
    """Re-run a pipeline run from its recorded inputs; exit 1 unless R = 1."""
    from featureledger.repo import load_definitions

    report = _store(repo).reproduce(identity, definitions=load_definitions(repo))
    rows = []
    for factor in ("data", "code", "environment"):
        diffs = report.differences(factor)
        detail = "; ".join(f"{i}: {a} -> {b}" for i, a, b in diffs) or "unchanged"
        rows.append([factor, "1" if report.holds(factor) else "0", detail])
    out.table(f"reproduce {report.identity}", ["factor", "holds", "differences"], rows)
    if report.output_matches is not None:
        out.info(
            f"output: recorded {report.output_expected}, recomputed {report.output_actual}"
            f" -> {'identical' if report.output_matches else 'DIFFERENT'}"
        )
    elif report.output_note:
        out.info(f"output: {report.output_note}")
    out.info(f"R = {int(report.reproducible)}")
    if not report.reproducible or report.output_matches is False:
        raise typer.Exit(1)


@app.command()
@handled
def validation(
    group: Annotated[str, typer.Argument(help="Feature group name.")],
    at: Annotated[int | None, typer.Argument(help="Data version (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full reports.")] = False,
    repo: RepoOpt = Path("."),
) -> None:
    """Contract reports of a group's ingests: passed, warned, quarantined or rejected."""
    from featureledger.contracts import ValidationReport

    records = _store(repo).validations(group, version=at)
    if as_json:
        out.as_json([r.report | {"run": r.run_id, "status": r.status} for r in records])
        return
    out.table(
        f"validation {group}",
        ["run", "version", "status", "in", "published", "held", "failed rules"],
        [
            [
                r.run_id[:8],
                "-" if r.version is None else r.version,
                r.status,
                r.rows_in,
                r.rows_published,
                r.rows_quarantined,
                ", ".join(x["name"] for x in r.report["results"] if x["status"] == "failed"),
            ]
            for r in records
        ],
    )
    if records:
        out.info(str(ValidationReport.from_dict(records[-1].report)))


quarantine_app = typer.Typer(help="Rows held back by the quarantine policy.", no_args_is_help=True)
app.add_typer(quarantine_app, name="quarantine")


@quarantine_app.command("list")
@handled
def quarantine_list(
    group: Annotated[str, typer.Argument(help="Feature group name.")],
    run: Annotated[str | None, typer.Option(help="Only rows held by this run.")] = None,
    limit: Annotated[int, typer.Option(help="Rows to print.")] = 20,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o", "--output", help="Write the rows, as they were ingested, to Parquet for fixing."
        ),
    ] = None,
    repo: RepoOpt = Path("."),
) -> None:
    """Show (or export for fixing) quarantined rows with the rules they failed."""
    import pyarrow.parquet as pq

    from featureledger.store import QUARANTINE_AT, QUARANTINE_RUN

    rows = _store(repo).quarantined(group, run=run)
    if output is not None:
        keep = [
            c
            for c in rows.column_names
            if c not in (QUARANTINE_AT, QUARANTINE_RUN, "__fl_failed_rules")
        ]
        pq.write_table(rows.select(keep), output)
        out.ok(
            f"{rows.num_rows:,} rows written to {output}; fix them and `featureledger "
            f"ingest {group} {output}`, then `featureledger quarantine resolve {group}`"
        )
        return
    out.arrow(rows, title=f"quarantine of {group}", limit=limit)


@quarantine_app.command("resolve")
@handled
def quarantine_resolve(
    group: Annotated[str, typer.Argument(help="Feature group name.")],
    run: Annotated[str | None, typer.Option(help="Only rows held by this run.")] = None,
    reason: Annotated[str, typer.Option(help="Why (audit log).")] = "",
    repo: RepoOpt = Path("."),
) -> None:
    """Clear held rows once they were fixed and re-ingested (kept in the table's history)."""
    n = _store(repo).resolve_quarantine(group, run=run, reason=reason)
    out.ok(f"{n:,} quarantined row(s) resolved")


contract_app = typer.Typer(
    help="Data contracts: test, diff, ODCS export and import.", no_args_is_help=True
)
app.add_typer(contract_app, name="contract")


@contract_app.command("test")
@handled
def contract_test(
    group: Annotated[
        str | None, typer.Argument(help="Group (default: every group with a contract).")
    ] = None,
    repo: RepoOpt = Path("."),
) -> None:
    """Check the current data of each group against its contract; exit 1 on failure."""
    store = _store(repo)
    names = [group] if group else sorted({r.name for r in store.list_definitions("feature_group")})
    failed = False
    for name in names:
        if store.get_feature_group(name).contract is None:
            if group:
                out.fail(f"feature group {name!r} has no contract")
                raise typer.Exit(1)
            continue
        report = store.check_contract(name)
        (out.ok if report.ok else out.fail)(f"{name}: {report}")
        failed |= not report.ok
    if failed:
        raise typer.Exit(1)


@contract_app.command("diff")
@handled
def contract_diff(
    old: Annotated[Path, typer.Argument(help="Old contract YAML (featureledger or ODCS).")],
    new: Annotated[Path, typer.Argument(help="New contract YAML.")],
) -> None:
    """Classify the change between two contracts; exit 1 when it is breaking."""
    from featureledger.contracts import classify_contract_change, load_contract

    change = classify_contract_change(load_contract(old), load_contract(new))
    out.table(f"{change.level} change", ["reason"], [[r] for r in change.reasons] or [["none"]])
    if change.breaking:
        raise typer.Exit(1)


@contract_app.command("export")
@handled
def contract_export(
    group: Annotated[str, typer.Argument(help="Feature group whose contract to export.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="ODCS YAML file.")],
    repo: RepoOpt = Path("."),
) -> None:
    """Write a group's contract as Open Data Contract Standard YAML."""
    from featureledger.contracts import to_odcs

    contract = _store(repo).get_feature_group(group).contract
    if contract is None:
        out.fail(f"feature group {group!r} has no contract")
        raise typer.Exit(1)
    output.write_text(to_odcs(contract))
    out.ok(f"wrote {output}")


@contract_app.command("import")
@handled
def contract_import(
    source: Annotated[Path, typer.Argument(help="ODCS YAML file.")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="featureledger contract YAML to write.")
    ],
) -> None:
    """Convert an ODCS contract into featureledger's YAML form."""
    from featureledger.contracts import contract_to_yaml, load_contract

    output.write_text(contract_to_yaml(load_contract(source)))
    out.ok(f"wrote {output}")


@app.command()
@handled
def lineage(
    identity: Annotated[str, typer.Argument(help="Any identity, e.g. deployment/fraud.")],
    downstream: Annotated[
        bool,
        typer.Option(
            "--downstream/--upstream",
            help="What was made from it, or what it was made from (default).",
        ),
    ] = False,
    depth: Annotated[int | None, typer.Option(help="Hops to follow (default: all).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="text, json, dot or mermaid.")] = "text",
    repo: RepoOpt = Path("."),
) -> None:
    """Print the lineage graph around an identity."""
    text = _store(repo).lineage(
        identity, direction="downstream" if downstream else "upstream", depth=depth, format=fmt
    )
    out.console.print(text, markup=False, highlight=False, soft_wrap=True)


@app.command()
@handled
def impact(
    identity: Annotated[str, typer.Argument(help="e.g. feature_group/user_stats@v1#7")],
    fmt: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
    repo: RepoOpt = Path("."),
) -> None:
    """Which training sets, models and deployments are affected if this is bad."""
    out.console.print(
        _store(repo).impact_report(identity, format=fmt),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


deployment_app = typer.Typer(help="Deployment pointers and their history.", no_args_is_help=True)
app.add_typer(deployment_app, name="deployment")


@model_app.command("register")
@handled
def model_register(
    name: Annotated[str, typer.Argument(help="Model name.")],
    artifact: Annotated[Path, typer.Argument(help="Model file or folder.")],
    training_dataset: Annotated[str | None, typer.Option(help="Training dataset identity.")] = None,
    metric: Annotated[
        list[str] | None, typer.Option(help="NAME=VALUE; repeat a name for repeated evaluations.")
    ] = None,
    gate: Annotated[list[str] | None, typer.Option(help="e.g. 'auc>=0.9' or 'auc>+0.01'.")] = None,
    repo: RepoOpt = Path("."),
) -> None:
    """Register a model artifact; refused when a gate fails."""
    from featureledger.contracts.gates import parse_gate

    metrics: dict[str, list[float]] = {}
    for item in metric or []:
        key, _, value = item.partition("=")
        try:
            metrics.setdefault(key, []).append(float(value))
        except ValueError:
            out.fail(f"--metric {item!r}: expected NAME=NUMBER, e.g. auc=0.91")
            raise typer.Exit(2) from None
    try:
        gates = [parse_gate(g) for g in gate or []]
    except ValueError as exc:
        out.fail(str(exc))
        raise typer.Exit(2) from None
    record = _store(repo).register_model(
        name, artifact, training_dataset=training_dataset, metrics=metrics, gates=gates
    )
    out.ok(
        f"{record.identity}: artifact sha256 {record.artifact_hash[:16]}…, trained on "
        f"{record.training_dataset or 'unknown'}"
    )
    for g in record.gates:
        out.info(f"  gate {g['gate']}: passed ({g['detail']})")


@model_app.command("list")
@handled
def model_list(
    name: Annotated[str | None, typer.Argument(help="Model name.")] = None,
    repo: RepoOpt = Path("."),
) -> None:
    """List registered model versions."""
    out.table(
        "models",
        ["identity", "registered", "training dataset", "metrics", "artifact"],
        [
            [
                m.identity,
                m.created_at,
                m.training_dataset or "-",
                {k: round(v["mean"], 6) for k, v in m.metrics.get("summary", {}).items()},
                m.artifact_hash[:16],
            ]
            for m in _store(repo).models(name)
        ],
    )


@app.command()
@handled
def deploy(
    deployment: Annotated[str, typer.Argument(help="Deployment name.")],
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int | None, typer.Option(help="Model version (default latest).")] = None,
    reason: Annotated[str, typer.Option(help="Why.")] = "",
    repo: RepoOpt = Path("."),
) -> None:
    """Point a deployment at a model version."""
    record = _store(repo).deploy(deployment, model, version, reason=reason)
    out.ok(f"{record.identity} -> {record.model_identity}")


@deployment_app.command("rollback")
@handled
def deployment_rollback(
    deployment: Annotated[str, typer.Argument(help="Deployment name.")],
    reason: Annotated[str, typer.Option(help="Why.")] = "",
    repo: RepoOpt = Path("."),
) -> None:
    """Point a deployment back at the model it served before."""
    record = _store(repo).rollback_deployment(deployment, reason=reason)
    out.ok(f"{record.identity} -> {record.model_identity} (rolled back)")


@deployment_app.command("history")
@handled
def deployment_history(
    deployment: Annotated[str | None, typer.Argument(help="Deployment name.")] = None,
    repo: RepoOpt = Path("."),
) -> None:
    """Every move of every deployment pointer."""
    out.table(
        "deployments",
        ["deployment", "#", "model", "action", "reason", "by", "at (UTC)"],
        [
            [d.identity, d.seq, d.model_identity, d.action, d.reason, d.user, d.at]
            for d in _store(repo).deployments(deployment)
        ],
    )


audit_app = typer.Typer(help="The hash-chained audit trail.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("log")
@handled
def audit_log(
    identity: Annotated[str | None, typer.Option("--object", help="Identity prefix.")] = None,
    repo: RepoOpt = Path("."),
) -> None:
    """Print audit entries, oldest first."""
    entries = _store(repo).audit_log(identity)
    out.table(
        "audit",
        ["#", "at (UTC)", "user", "action", "object", "details"],
        [[e.seq, e.at, e.user, e.action, e.object, e.details] for e in entries],
    )


@audit_app.command("verify")
@handled
def audit_verify(repo: RepoOpt = Path(".")) -> None:
    """Check the hash chain; exit 1 when an entry was edited or deleted."""
    problems = _store(repo).audit_verify()
    if problems:
        for p in problems:
            out.fail(p)
        raise typer.Exit(1)
    out.ok("audit chain intact")


@app.command()
@handled
def demo(
    path: Annotated[
        Path | None,
        typer.Argument(help="Folder for the demo repository (default: a new temporary folder)."),
    ] = None,
) -> None:
    """Run the whole flow on the embedded default: define, ingest, version, train."""
    from featureledger.cli.demo import run_demo

    run_demo(path)


# Imported for their side effect: they add their commands to `app`.
from featureledger.cli import monitoring, serving  # noqa: E402, F401


def main() -> None:
    app()


if __name__ == "__main__":
    main()
