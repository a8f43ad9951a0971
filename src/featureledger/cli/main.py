"""``featureledger``: the command line. Every command calls the `FeatureStore` facade.

The commands live in one module per topic; importing them here adds them to `app`, in the
order `featureledger --help` lists them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from featureledger.cli import (  # noqa: F401  (imported for their commands)
    contracts,
    data,
    evaluation,
    governance,
    llm,
    monitoring,
    predictions,
    serving,
    ui,
    versions,
)
from featureledger.cli._common import app, handled


@app.command()
@handled
def demo(
    path: Annotated[
        Path | None,
        typer.Argument(help="Folder for the demo repository (default: a new temporary folder)."),
    ] = None,
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh", help="Start over in a folder holding an earlier demo (removes its files)."
        ),
    ] = False,
) -> None:
    """Run the whole flow on the embedded default: define, ingest, version, train."""
    from featureledger.cli.demo import run_demo

    run_demo(path, fresh=fresh)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
