"""``featureledger ui``: the web UI (docs/ui.md) on its own port."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from featureledger.cli import console as out
from featureledger.cli._common import RepoOpt, _store, app, handled


@app.command()
@handled
def ui(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 6567,
    repo: RepoOpt = Path("."),
) -> None:
    """Serve the web UI: catalog, versions and diffs, lineage, models, monitors, audit log.

    Every page needs an API token (`featureledger token create --role reader`); the feature
    server (`featureledger serve`) serves the same UI under /ui."""
    try:
        import uvicorn

        from featureledger.ui import create_ui
    except ImportError as exc:
        out.fail(f"the UI needs extra packages ({exc}); pip install 'featureledger[server]'")
        raise typer.Exit(1) from None
    store = _store(repo)
    if not any(t.active for t in store.tokens()):
        out.fail(
            "no active API token exists, so nobody could sign in; create one with "
            "`featureledger token create --role reader --all-views`"
        )
        raise typer.Exit(1)
    out.info(f"web UI on http://{host}:{port}/ (sign in with an API token)")
    uvicorn.run(create_ui(store), host=host, port=port, log_level="info")
