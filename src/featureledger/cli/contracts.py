"""Contracts: validation reports, the quarantine and contract test/diff/export/import."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from featureledger.cli import console as out
from featureledger.cli._common import (
    RepoOpt,
    _store,
    app,
    handled,
)


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
    lenient: Annotated[
        bool,
        typer.Option(
            "--lenient", help="Import what featureledger can enforce and list what was dropped."
        ),
    ] = False,
    schema_object: Annotated[
        str | None,
        typer.Option("--object", help="The schema object to import when the file has several."),
    ] = None,
) -> None:
    """Convert an ODCS contract into featureledger's YAML form."""
    from featureledger.contracts import contract_to_yaml, read_contract

    result = read_contract(source, lenient=lenient, object=schema_object)
    contract, dropped = result.contract, result.dropped
    output.write_text(contract_to_yaml(contract))
    for item in dropped:
        out.info(f"dropped: {item}")
    out.ok(f"wrote {output}" + (f" ({len(dropped)} item(s) dropped)" if dropped else ""))
