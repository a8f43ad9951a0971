"""Model validation: ``featureledger evaluate MODEL TRAINING_SET``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from featureledger.cli import console as out
from featureledger.cli._common import RepoOpt, _store, app, handled


@app.command()
@handled
def evaluate(
    model: Annotated[
        str,
        typer.Argument(
            help="A registered model (model/NAME/N, a pickled artifact) or a Parquet/CSV "
            "file of predictions, one per row of the split in its order."
        ),
    ],
    training_set: Annotated[
        str, typer.Argument(help="Training dataset identity, e.g. training_dataset/fraud@v1/3.")
    ],
    split: Annotated[str, typer.Option(help="The part to score; 'all' for every row.")] = "test",
    slice_: Annotated[
        list[str] | None,
        typer.Option("--slice", help="A helper column to report per value (repeat)."),
    ] = None,
    gate: Annotated[
        list[str] | None,
        typer.Option(help="e.g. 'auc>=0.8', 'slice:auc_gap<=0.05', 'slice:max_mae<=3'."),
    ] = None,
    label: Annotated[str | None, typer.Option(help="Label column (default: recorded).")] = None,
    task: Annotated[
        str | None, typer.Option(help="classification or regression (default: guessed).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    repo: RepoOpt = Path("."),
) -> None:
    """Score a model on a split of a training set, whole and per slice; exit 1 when a
    gate fails."""
    from featureledger.contracts.gates import parse_gate

    try:
        gates = [parse_gate(g) for g in gate or []]
    except ValueError as exc:
        out.fail(str(exc))
        raise typer.Exit(2) from None
    if task not in (None, "classification", "regression"):
        out.fail(f"--task {task!r}: use classification or regression")
        raise typer.Exit(2)
    scored: object = model
    if not model.startswith("model/"):
        path = Path(model)
        if not path.is_file():
            out.fail(f"{model} is neither model/NAME/N nor a predictions file")
            raise typer.Exit(2)
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        scored = pacsv.read_csv(path) if path.suffix == ".csv" else pq.read_table(path)
    result = _store(repo).evaluate(
        scored,
        training_set,
        split=None if split == "all" else split,
        label=label,
        slices=slice_ or (),
        task=task,
    )
    checked = result.check(gates)
    if as_json:
        out.as_json({**result.to_dict(), "gates": [g.to_dict() for g in checked]})
    else:
        names = [k for k, v in result.metrics.items() if v is not None]
        out.table(
            f"{result.model} on {result.training_set} ({result.rows:,} rows, {result.task})",
            ["rows", "slice", *names],
            [
                [result.rows, "all", *(result.metrics[k] for k in names)],
                *([s.rows, s.name, *(s.metrics.get(k) for k in names)] for s in result.slices),
            ],
        )
        for g in checked:
            (out.ok if g.passed else out.fail)(f"gate {g.gate}: {g.detail}")
    if not all(g.passed for g in checked):
        raise typer.Exit(1)
