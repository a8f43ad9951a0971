"""The one place the CLI prints: Rich tables, values and errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    import pyarrow as pa

# piped output (CI logs, files) gets a fixed wide layout instead of Rich's 80 columns
_WIDTH = None if sys.stdout.isatty() else 150
console = Console(highlight=False, width=_WIDTH)
errors = Console(stderr=True, highlight=False, width=_WIDTH)


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    out = Table(title=title, title_justify="left", show_lines=False)
    for col in columns:
        out.add_column(col, overflow="fold")
    for row in rows:
        out.add_row(*(v if v == _NULL else escape(v) for v in map(fmt, row)))
    console.print(out)


def arrow(data: pa.Table, title: str | None = None, limit: int = 10) -> None:
    """Print the first ``limit`` rows of an Arrow table."""
    head = data.slice(0, limit)
    table(title, head.column_names, [list(r.values()) for r in head.to_pylist()])
    if data.num_rows > limit:
        console.print(f"[dim]… {data.num_rows - limit:,} more rows ({data.num_rows:,} in all)[/]")


_NULL = "[dim]null[/]"


def fmt(value: Any) -> str:
    if value is None:
        return _NULL
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S") + ("Z" if value.utcoffset() is not None else "")
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def step(text: str) -> None:
    console.print(f"\n[bold cyan]▸ {text}[/]")


def info(text: str, *, markup: bool = False) -> None:
    console.print(text if markup else escape(text), soft_wrap=True)


def plain(text: str) -> None:
    """Print text exactly as given, on one line (a secret, a value to copy)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def ok(text: str) -> None:
    console.print(f"[green]✓[/] {escape(text)}", soft_wrap=True)


def warn(text: str) -> None:
    errors.print(f"[bold yellow]warning:[/] {escape(text)}", soft_wrap=True)


def fail(text: str) -> None:
    # soft wrap: messages stay one line, so they can be grepped and copied whole
    errors.print(f"[bold red]error:[/] {escape(text)}", soft_wrap=True)


def as_json(value: Any) -> None:
    console.print_json(json.dumps(value, default=str))
