"""The `sandforge` command: serve, generate, sandboxes, projects and the machine's set-up."""

from __future__ import annotations

import typer

from ._projects import export, gc, github, usage
from ._sandboxes import sandboxes_app
from ._serve import generate, serve
from ._setup import doctor, templates_app, ui_app

app = typer.Typer(
    help="Turn a prompt into a running web app, in a sandbox, with a live preview.",
    no_args_is_help=True,
)
for command in (serve, generate, export, usage, gc, github, doctor):
    app.command()(command)
app.add_typer(sandboxes_app, name="sandboxes")
app.add_typer(templates_app, name="templates")
app.add_typer(ui_app, name="ui")

__all__ = ["app"]
