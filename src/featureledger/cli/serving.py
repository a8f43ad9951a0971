"""Serving commands: materialization, online reads, API tokens and the HTTP server."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from featureledger.cli import console as out
from featureledger.cli._common import (
    TIME_FORMATS,
    RepoOpt,
    _serving_store,
    _store,
    _utc,
    app,
    handled,
)


def _materialize(
    names: list[str] | None,
    *,
    full: bool,
    start: datetime | None,
    end: datetime | None,
    repo: Path,
) -> None:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    tasks: dict[str, Any] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        console=out.console,
        transient=True,
        disable=not out.console.is_terminal,
    ) as bar:

        def progress(group: str, done: int, total: int) -> None:
            if group not in tasks:
                tasks[group] = bar.add_task(group, total=total or None)
            bar.update(tasks[group], completed=done)

        results = _store(repo).materialize(
            names or None,
            incremental=not full,
            start=None if start is None else _utc(start),
            end=None if end is None else _utc(end),
            progress=progress,
        )
    out.table(
        "materialized",
        ["group", "data version", "mode", "rows read", "values written"],
        [[m.group, m.version, m.mode, m.rows, m.changed] for m in results],
    )


NamesArg = Annotated[
    list[str] | None, typer.Argument(help="Groups or views (default: all online groups).")
]
StartOpt = Annotated[
    datetime | None,
    typer.Option(help="Only rows with event time at or after this (UTC).", formats=TIME_FORMATS),
]
EndOpt = Annotated[
    datetime | None,
    typer.Option(help="Only rows with event time at or before this (UTC).", formats=TIME_FORMATS),
]


@app.command()
@handled
def materialize(
    names: NamesArg = None,
    start: StartOpt = None,
    end: EndOpt = None,
    full: Annotated[
        bool,
        typer.Option("--full", help="Empty the online copy first, then write (a rebuild)."),
    ] = False,
    repo: RepoOpt = Path("."),
) -> None:
    """Write the latest value per entity of online groups into the online store.

    Without a window only the data versions committed since the last run are read
    (a full rebuild after an overwrite or rollback). With --start/--end the latest row per
    entity within the window is written; add --full to rebuild the store as of --end.
    """
    _materialize(names, full=full, start=start, end=end, repo=repo)


@app.command("materialize-incremental")
@handled
def materialize_incremental(names: NamesArg = None, repo: RepoOpt = Path(".")) -> None:
    """Write what was committed since the last materialization (the cron-friendly form)."""
    _materialize(names, full=False, start=None, end=None, repo=repo)


@app.command("get-online")
@handled
def get_online(
    view: Annotated[str, typer.Argument(help="Feature view name.")],
    entities: Annotated[str, typer.Argument(help='JSON entity rows, e.g. [{"user_id": 1}].')],
    repo: RepoOpt = Path("."),
) -> None:
    """Read features online for some entities (JSON out)."""
    import json

    try:
        rows = json.loads(entities)
    except json.JSONDecodeError as exc:
        out.fail(f"entity rows are not JSON: {exc}")
        raise typer.Exit(2) from None
    if isinstance(rows, dict):
        rows = [rows]
    out.as_json(_serving_store(repo).get_online_features(view, rows).to_arrow().to_pylist())


token_app = typer.Typer(help="API tokens of the feature server.", no_args_is_help=True)
app.add_typer(token_app, name="token")


@token_app.command("create")
@handled
def token_create(
    role: Annotated[str, typer.Option(help="reader, writer (also pushes) or admin.")],
    view: Annotated[
        list[str] | None,
        typer.Option("--view", help="A view it reads and pushes into (repeatable)."),
    ] = None,
    all_views: Annotated[
        bool,
        typer.Option(
            "--all-views", help="Read every view, present and future (instead of --view)."
        ),
    ] = False,
    purpose: Annotated[
        str,
        typer.Option(help="Why it reads data; pii/sensitive columns need the view's purpose."),
    ] = "",
    deployment: Annotated[
        list[str] | None,
        typer.Option("--deployment", help="A deployment it may call /predict on (repeatable)."),
    ] = None,
    repo: RepoOpt = Path("."),
) -> None:
    """Create an API token; it is printed once and only its hash is stored.

    A token reads only the views it is given: without --view or --all-views it reads
    nothing (an admin token still reaches the admin endpoints)."""
    store = _store(repo)
    secret = store.create_token(
        role, view or (), purpose, all_views=all_views, deployments=deployment or ()
    )
    record = store.check_token(secret)
    out.ok(
        f"token {record.id} ({role}, views: {_views(record.views)}"
        + (f", purpose: {record.purpose}" if record.purpose else "")
        + "); copy it now, it is not shown again:"
    )
    out.plain(secret)


def _views(views: list[str]) -> str:
    if views == ["*"]:
        return "all"
    return ", ".join("all" if v == "*" else v for v in views) or "none (reads nothing)"


@token_app.command("list")
@handled
def token_list(repo: RepoOpt = Path(".")) -> None:
    """List API tokens (never their secrets)."""
    out.table(
        "tokens",
        ["id", "role", "views", "purpose", "created (UTC)", "by", "revoked (UTC)"],
        [
            [
                t.id,
                t.role,
                _views(t.views),
                t.purpose or "-",
                t.created_at,
                t.created_by,
                t.revoked_at or "-",
            ]
            for t in _store(repo).tokens()
        ],
    )


@token_app.command("revoke")
@handled
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="Token id (see `token list`).")],
    repo: RepoOpt = Path("."),
) -> None:
    """Revoke an API token; a running server refuses it within 5 s (its token cache)."""
    record = _store(repo).revoke_token(token_id)
    out.ok(f"token {record.id} revoked; running servers refuse it within 5 s")


@app.command()
@handled
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 6566,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Serve without tokens (local use only).")
    ] = False,
    max_entities: Annotated[int, typer.Option(help="Entity rows allowed per request.")] = 1000,
    max_body_mb: Annotated[
        float, typer.Option(help="Largest request body accepted, in MiB (413 beyond).")
    ] = 16.0,
    repo: RepoOpt = Path("."),
) -> None:
    """Serve features over HTTP (FastAPI + uvicorn): /features, /push, /health, /metrics."""
    try:
        import uvicorn

        from featureledger.server import create_app
    except ImportError as exc:
        out.fail(f"the server needs extra packages ({exc}); pip install 'featureledger[server]'")
        raise typer.Exit(1) from None
    store = _serving_store(repo)
    if not insecure and not any(t.active for t in store.tokens()):
        out.fail(
            "no active API token exists, so no client could call the server; create one with "
            "`featureledger token create --role reader` (or writer/admin), or pass --insecure "
            "for local use without tokens"
        )
        raise typer.Exit(1)
    if insecure:
        out.info(f"serving WITHOUT access control on {host}:{port} (--insecure)")
    uvicorn.run(
        create_app(
            store,
            insecure=insecure,
            max_entities=max_entities,
            max_body_bytes=int(max_body_mb * (1 << 20)),
        ),
        host=host,
        port=port,
        log_level="info",
    )
