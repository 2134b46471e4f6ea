"""Setting up a machine: `sandforge doctor`, `templates` and `ui`."""

from __future__ import annotations

import typer

from ..config import get_settings
from ._client import console

templates_app = typer.Typer(help="Project types and their package caches.", no_args_is_help=True)
ui_app = typer.Typer(help="The web UI's libraries, served locally.", no_args_is_help=True)


def doctor() -> None:
    """Check the configured model and sandbox provider; print what is missing and the fix."""
    from ..doctor import print_report, run_checks

    raise typer.Exit(print_report(run_checks(get_settings()), console))


@templates_app.command("prepare")
def templates_prepare() -> None:
    """Build the sandbox image, then install each project type's packages with its npm and
    pip, once: sandboxes need no network for them."""
    from ..templates.cache import prepare_all

    settings = get_settings()
    rootfs, root = settings.rootfs, settings.template_cache
    with console.status(f"Building the sandbox image in {rootfs.directory} (a few minutes)..."):
        built = rootfs.build()
    console.print(f"sandbox image ready in {rootfs.directory}{'' if built else ' (up to date)'}")
    with console.status(f"Installing template packages into {root}..."):
        installed = prepare_all(root, rootfs)
    done = f" (installed: {', '.join(installed)})" if installed else " (up to date)"
    console.print(f"templates ready in {root}{done}")


@ui_app.command("prepare")
def ui_prepare() -> None:
    """Install the web UI's libraries (CodeMirror, marked, DOMPurify) from npm, once."""
    from ..server.vendor import prepare

    root = get_settings().ui_vendor
    with console.status(f"Installing the web UI's libraries into {root}..."):
        installed = prepare(root)
    console.print(f"web UI libraries ready in {root}{'' if installed else ' (up to date)'}")


@templates_app.command("list")
def templates_list() -> None:
    """List the project types."""
    from ..templates import TEMPLATES

    for template in TEMPLATES.values():
        console.print(f"{template.name:10} {template.label}")
