"""Commands on a project through a running server: export, usage, gc, github."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import httpx
import typer
from rich.progress import Progress
from rich.table import Table

from ..config import Settings
from ._client import (
    auth_headers,
    base_url,
    call_api,
    console,
    err_console,
    exit_no_server,
    resolve_project,
    settings_for,
)


def _download(settings: Settings, path: str, target: Path) -> None:
    """Stream `path` into `target` with a progress bar; nothing is left behind on failure."""
    partial = target.with_name(target.name + ".part")
    with (
        httpx.stream(
            "GET", f"{base_url(settings)}{path}", timeout=60, headers=auth_headers(settings)
        ) as response,
    ):
        if response.status_code >= 400:
            response.read()
            err_console.print(f"[red]{response.json()['error']['message']}[/]")
            raise typer.Exit(1)
        total = int(response.headers.get("content-length", 0)) or None
        with Progress(console=err_console) as progress, partial.open("wb") as out:
            task = progress.add_task(f"Downloading {target.name}", total=total)
            for chunk in response.iter_bytes():
                out.write(chunk)
                progress.advance(task, len(chunk))
    partial.replace(target)


def export(
    project: Annotated[str, typer.Argument(help="The project's id (pj...) or name.")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Where to write the zip.")
    ] = None,
    version: Annotated[
        int | None, typer.Option(help="Which version (default: the latest).", min=1)
    ] = None,
    port: Annotated[int | None, typer.Option(help="Server port.")] = None,
) -> None:
    """Download a project's files as a zip."""
    settings = settings_for(None, port)
    project_id = resolve_project(settings, project)
    query = f"?version={version}" if version is not None else ""
    target = output or Path(f"{project_id}{f'-v{version}' if version else ''}.zip")
    try:
        _download(settings, f"/api/projects/{project_id}/export.zip{query}", target)
    except httpx.ConnectError:
        exit_no_server(settings)
    console.print(f"wrote {target}")


def _usd(amount: float | None) -> str:
    if amount is None:
        return "unpriced"
    return f"${amount:.2f}" if amount >= 0.01 or amount == 0 else f"${amount:.4f}"


def _usage_row(table: Table, name: str, usage: dict[str, Any]) -> None:
    tokens = usage["inputTokens"] + usage["outputTokens"]
    table.add_row(
        name,
        str(usage.get("runs", "")),
        f"{tokens:,}",
        f"{usage['cacheReadTokens']:,}",
        _usd(usage["costUsd"]),
        f"{usage['sandboxWallSeconds']:.0f}",
        f"{usage['sandboxCpuSeconds']:.1f}",
        f"{usage['sandboxMemoryGbSeconds']:.1f}",
    )


def usage(
    project: Annotated[
        str | None, typer.Argument(help="A project's id or name: its runs, one by one.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only runs from then on (ISO 8601 time or Unix seconds).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    port: Annotated[int | None, typer.Option(help="Server port.")] = None,
) -> None:
    """What runs cost: tokens, model cost (USD) and sandbox time, per project or per run."""
    settings = settings_for(None, port)
    if project is not None:
        project_id = resolve_project(settings, project)
        data = call_api(settings, "GET", f"/api/projects/{project_id}/usage")
        rows = [(run["runId"], {**run, "runs": 1}) for run in data["runs"]]
    else:
        query = f"?{urlencode({'since': since})}" if since else ""
        data = call_api(settings, "GET", f"/api/usage{query}")
        rows = [(p["projectId"], p) for p in data["projects"]]
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    table = Table(
        "run" if project else "project",
        "runs",
        "tokens",
        "cached",
        "cost",
        "sandbox s",
        "CPU s",
        "GB·s",
    )
    for name, row in rows:
        _usage_row(table, name, row)
    _usage_row(table, "total", data["total"])
    console.print(table)
    budgets = [f"{k.removesuffix('Usd')} ${v:.2f}" for k, v in data["budgets"].items() if v]
    if budgets:
        console.print(f"budgets: {', '.join(budgets)}", highlight=False)


def gc(
    days: Annotated[
        float | None,
        typer.Option(
            help="Delete sandboxes stopped this many days (default SANDFORGE_IDLE_DELETE_DAYS; "
            "0: every stopped one).",
            min=0,
        ),
    ] = None,
    port: Annotated[int | None, typer.Option(help="Server port.")] = None,
) -> None:
    """Delete stopped sandboxes now; their projects' files stay, and rebuild on demand."""
    query = f"?{urlencode({'stoppedForDays': days})}" if days is not None else ""
    deleted = call_api(settings_for(None, port), "POST", f"/api/gc{query}", timeout=300)
    for sandbox_id in deleted["deleted"]:
        console.print(f"deleted {sandbox_id}")
    console.print(f"{len(deleted['deleted'])} stopped sandbox(es) deleted")


def github(
    project: Annotated[str, typer.Argument(help="The project's id (pj...) or name.")],
    repo: Annotated[str, typer.Argument(help="owner/name, or name for your own account.")],
    public: Annotated[
        bool, typer.Option("--public", help="Create the repository public (default private).")
    ] = False,
    port: Annotated[int | None, typer.Option(help="Server port.")] = None,
) -> None:
    """Push a project's history to GitHub (one commit per version; GITHUB_TOKEN on the server)."""
    settings = settings_for(None, port)
    project_id = resolve_project(settings, project)
    with console.status(f"Pushing to {repo}..."):
        pushed = call_api(
            settings,
            "POST",
            f"/api/projects/{project_id}/github",
            {"repo": repo, "private": not public},
            timeout=600,
        )
    what = "created and pushed" if pushed["created"] else "pushed"
    versions = pushed["pushedVersions"]
    added = f"versions {', '.join(map(str, versions))}" if versions else "nothing new"
    console.print(f"{what} {pushed['repo']}: {added} (head {pushed['commit'][:12]})")
    if pushed["url"]:
        console.print(pushed["url"], highlight=False)
