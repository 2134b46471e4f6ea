"""`sandforge sandboxes`: list and manage sandboxes through a running server."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from ._client import HostOption, PortOption, call_api, client_settings, console

sandboxes_app = typer.Typer(
    help="List and manage sandboxes through a running server.", no_args_is_help=True
)


def human_age(seconds: float) -> str:
    """`42s`, `5m 03s`, `2h 10m`, `3d 4h`."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


@sandboxes_app.command("list")
def sandboxes_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    host: HostOption = None,
    port: PortOption = None,
) -> None:
    """List sandboxes, each with its project's stable preview URL (it survives rebuilds)."""
    settings = client_settings(host, port)
    items = call_api(settings, "GET", "/api/sandboxes")["sandboxes"]
    if as_json:
        sys.stdout.write(json.dumps(items, indent=2) + "\n")
        return
    projects = {
        p["id"]: p
        for p in call_api(client_settings(host, port), "GET", "/api/projects")["projects"]
    }
    rows = [("ID", "PROVIDER", "STATE", "AGE", "PREVIEW")]
    for s in items:
        project = projects.get(s["projectId"] or "")
        url = project["previewUrl"] if project else s["previewUrl"]
        rows.append((s["id"], s["provider"], s["state"], human_age(s["ageSeconds"]), url))
    # Plain columns, never cut: a URL is only useful whole.
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        sys.stdout.write("  ".join([*cells, row[4]]) + "\n")


@sandboxes_app.command("delete")
def sandboxes_delete(sandbox_id: str, host: HostOption = None, port: PortOption = None) -> None:
    """Delete a sandbox and its files."""
    call_api(client_settings(host, port), "DELETE", f"/api/sandboxes/{sandbox_id}")
    console.print(f"deleted {sandbox_id}")


@sandboxes_app.command("stop")
def sandboxes_stop(sandbox_id: str, host: HostOption = None, port: PortOption = None) -> None:
    """Stop a sandbox; its files stay."""
    call_api(client_settings(host, port), "POST", f"/api/sandboxes/{sandbox_id}/stop")
    console.print(f"stopped {sandbox_id}")


@sandboxes_app.command("start")
def sandboxes_start(sandbox_id: str, host: HostOption = None, port: PortOption = None) -> None:
    """Start a stopped sandbox."""
    call_api(client_settings(host, port), "POST", f"/api/sandboxes/{sandbox_id}/start")
    console.print(f"started {sandbox_id}")
