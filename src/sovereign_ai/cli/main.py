"""``sovereign``: the command line of the Sovereign AI Framework.

Commands are thin: they read files and flags, build the library's objects, and render results.
"""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from sovereign_ai.cli.audit import audit_app
from sovereign_ai.cli.coordinator import coordinator_app
from sovereign_ai.cli.demo import demo
from sovereign_ai.cli.export import export
from sovereign_ai.cli.he import he_app
from sovereign_ai.cli.node import node_app
from sovereign_ai.cli.privacy import privacy_app
from sovereign_ai.cli.provision import provision_app
from sovereign_ai.cli.registry import registry_app
from sovereign_ai.cli.serve import serve
from sovereign_ai.cli.simulate import simulate

__all__ = ["app"]

app = typer.Typer(
    name="sovereign",
    help=(
        "Train models together without moving data. Each site (node) keeps its rows; only model "
        "updates leave, and only what the site allows."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command(name="simulate")(simulate)
app.command(name="demo")(demo)
app.add_typer(provision_app, name="provision")
app.add_typer(coordinator_app, name="coordinator")
app.add_typer(node_app, name="node")
app.add_typer(privacy_app, name="privacy")
app.add_typer(audit_app, name="audit")
app.add_typer(registry_app, name="registry")
app.command(name="serve")(serve)
app.command(name="export")(export)
app.add_typer(he_app, name="he")


@app.callback()
def _configure(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show info-level logs.")] = False,
) -> None:
    if not verbose:  # gRPC's C core would print its own lines for errors we already explain
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
        force=True,
    )
