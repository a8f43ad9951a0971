"""Versions and pipelines: diff, rollback, verify, pin, checkout, vacuum, run, backfill,
reproduce."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from featureledger.cli import console as out
from featureledger.cli._common import (
    TIME_FORMATS,
    RepoOpt,
    _store,
    _utc,
    app,
    handled,
)


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
    """Re-hash files and rows (a training set: rebuilt, and its code and environment
    compared); exit 1 if anything differs from what was recorded."""
    from featureledger.repo import load_definitions

    training = identity is not None and identity.startswith("training_dataset/")
    reports = _store(repo).verify(identity, definitions=load_definitions(repo) if training else ())
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
def unpin(
    pointer: Annotated[Path, typer.Argument(help="Pointer file written by `pin`.")],
    keep_file: Annotated[
        bool, typer.Option("--keep-file", help="Keep the pointer file; only release its pins.")
    ] = False,
    repo: RepoOpt = Path("."),
) -> None:
    """Release what a pointer file pins, so vacuum may delete those versions when old."""
    released = _store(repo).unpin(pointer, keep_file=keep_file)
    for p in released:
        out.ok(f"released feature_group/{p['group']}@v{p['major']}#{p['version']} ({p['pinned']})")
    if not keep_file:
        out.info(f"removed {released[0]['path']}")


@app.command()
@handled
def pins(
    group: Annotated[str | None, typer.Option(help="Only this group.")] = None,
    repo: RepoOpt = Path("."),
) -> None:
    """Pointer files that keep data versions from vacuum."""
    rows = [
        [
            f"feature_group/{p['group']}@v{p['major']}#{p['version']}",
            p["pinned"],
            p["path"],
            p["user"],
            f"{p['created_at']:%Y-%m-%d %H:%M:%S}",
        ]
        for p in _store(repo).pins(group)
    ]
    out.table("featureledger pins", ["version kept", "pinned", "pointer file", "by", "at"], rows)
    if not rows:
        out.info("no pins: `featureledger pin IDENTITY -o FILE` writes a pointer file")


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
    force: Annotated[
        bool, typer.Option("--force", help="Also delete versions pointer files pin (audited).")
    ] = False,
    repo: RepoOpt = Path("."),
) -> None:
    """Delete unreferenced files; never the latest version, nor any version a training set
    or a pointer file pins (unless --force)."""
    from datetime import timedelta

    unit = older_than[-1:]
    if unit not in ("d", "h") or not older_than[:-1].isdigit():
        out.fail(f"--older-than {older_than!r}: expected a number of days or hours, e.g. 7d")
        raise typer.Exit(2)
    amount = int(older_than[:-1])
    span = timedelta(days=amount) if unit == "d" else timedelta(hours=amount)
    result = _store(repo).vacuum(older_than=span, dry_run=not apply_, group=group, force=force)
    verb = "deleted" if apply_ else "would delete (dry run; add --apply)"
    for table, files in result.items():
        out.info(f"{table}: {verb} {len(files)} file(s)")
        for number, paths in sorted(result.pinned.get(table, {}).items()):
            state = "NOT kept (--force)" if force else "kept"
            out.info(f"  {table}#{number}: {state}, pinned by {', '.join(paths)}")


@app.command("run")
@handled
def run_pipeline(
    group: Annotated[str, typer.Argument(help="Feature group with a source and transform.")],
    start: Annotated[
        datetime, typer.Option(help="Window start (inclusive, UTC).", formats=TIME_FORMATS)
    ],
    end: Annotated[
        datetime, typer.Option(help="Window end (exclusive, UTC).", formats=TIME_FORMATS)
    ],
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
def backfill(
    group: Annotated[str, typer.Argument(help="Feature group name.")],
    from_version: Annotated[
        int, typer.Option("--from-version", help="Major version to read (its latest data).")
    ],
    to_version: Annotated[
        int | None,
        typer.Option("--to-version", help="Major version to fill (default: the latest)."),
    ] = None,
    recompute: Annotated[
        bool,
        typer.Option(
            "--recompute",
            help="Run the new version's pipeline over the old version's time span "
            "instead of copying rows.",
        ),
    ] = False,
    repo: RepoOpt = Path("."),
) -> None:
    """Fill a new major version from an older one, as one audited data version.

    Copies the rows (columns both versions have, cast to the new types; dropped columns
    dropped; added columns null) or, with --recompute, runs the pipeline. Safe to re-run:
    a backfill already done writes nothing.
    """
    from featureledger.definitions import FeatureGroup
    from featureledger.repo import load_definitions

    target: str | FeatureGroup = group
    if recompute:  # a Python transformation's function comes from the repository's files
        target = next(
            (
                d
                for d in load_definitions(repo)
                if isinstance(d, FeatureGroup)
                and d.name == group
                and (to_version is None or d.version in (None, to_version))
            ),
            group,
        )
    result = _store(repo).backfill(
        target, from_version=from_version, to_version=to_version, recompute=recompute
    )
    if not result.changed:
        out.ok(f"no change: {result.version.identity} already holds what {result.source} gives")
    else:
        out.ok(
            f"{result.version.identity}: {result.rows:,} rows from {result.source} "
            f"({result.method}), {result.version.rows:,} in all, {result.version.content}"
        )
    if result.dropped:
        out.info(f"dropped (not in the new version): {', '.join(result.dropped)}")
    if result.nulled:
        out.info(f"null (added by the new version): {', '.join(result.nulled)}")


@app.command()
@handled
def reproduce(
    identity: Annotated[
        str,
        typer.Argument(
            help="A training set, model, deployment, run/<id> or a pipeline's data version."
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    repo: RepoOpt = Path("."),
) -> None:
    """Recompute R = data x code x environment, factor by factor, with how to restore what
    differs; exit 1 unless R = 1 and a recomputed output matches."""
    from featureledger.repo import load_definitions

    report = _store(repo).reproduce(identity, definitions=load_definitions(repo))
    if as_json:
        out.as_json(report.to_dict())
    else:
        if len(report.covers) > 1:
            out.info("covers " + " <- ".join(report.covers))
        rows = []
        for factor in ("data", "code", "environment"):
            diffs = report.differences(factor)
            detail = "; ".join(f"{i}: {a} -> {b}" for i, a, b in diffs) or "unchanged"
            items = len(report.factors[factor])
            rows.append([factor, "1" if report.holds(factor) else "0", items, detail])
        out.table(f"reproduce {report.identity}", ["factor", "holds", "items", "differences"], rows)
        for factor in ("data", "code", "environment"):
            for hint in report.hints(factor):
                out.info(f"restore {factor}: {hint}")
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
def runs(
    state: Annotated[
        str | None,
        typer.Option(help="Only runs in this state: running, succeeded, failed or abandoned."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    repo: RepoOpt = Path("."),
) -> None:
    """Recorded runs and their states; runs whose process is gone are marked abandoned first."""
    found = _store(repo).runs(state)
    if as_json:
        out.as_json(
            [
                {
                    "id": r.id,
                    "kind": r.kind,
                    "state": r.status,
                    "user": r.user,
                    "host": r.host,
                    "pid": r.pid,
                    "started_at": r.started_at.isoformat(),
                    "ended_at": r.ended_at.isoformat() if r.ended_at else None,
                    "heartbeat_at": r.heartbeat_at.isoformat() if r.heartbeat_at else None,
                    "params": r.params,
                    "outputs": r.outputs,
                    "error": r.error,
                }
                for r in found
            ]
        )
        return
    out.table(
        "runs",
        ["id", "kind", "state", "owner", "started", "ended", "error"],
        [
            [
                r.id,
                r.kind,
                r.status,
                f"{r.host}:{r.pid}" if r.pid is not None else "",
                f"{r.started_at:%Y-%m-%d %H:%M:%S}",
                f"{r.ended_at:%Y-%m-%d %H:%M:%S}" if r.ended_at else "",
                r.error,
            ]
            for r in found
        ],
    )
