"""Turn the framework's errors into one readable line and exit code 2, never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape

from sovereign_ai.errors import SovereignError

__all__ = ["friendly_errors"]


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Print a :class:`SovereignError` as ``error: ...`` on stderr and exit with status 2."""
    try:
        yield
    except SovereignError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(code=2) from None
