"""The `sandforge` command: serve, generate, sandboxes."""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn
from urllib.parse import urlencode

import httpx
import typer
from pydantic import SecretStr
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from .config import Settings, get_settings
from .errors import SandforgeError
from .events import PROGRESS_ORDER, Event, decode_sse
from .ids import is_id
from .server.app import SandforgeApp, create_app
from .server.runner import SandforgeServer

app = typer.Typer(
    help="Turn a prompt into a running web app, in a sandbox, with a live preview.",
    no_args_is_help=True,
)
sandboxes_app = typer.Typer(
    help="List and manage sandboxes through a running server.", no_args_is_help=True
)
templates_app = typer.Typer(help="Project types and their package caches.", no_args_is_help=True)
app.add_typer(sandboxes_app, name="sandboxes")
app.add_typer(templates_app, name="templates")
ui_app = typer.Typer(help="The web UI's libraries, served locally.", no_args_is_help=True)
app.add_typer(ui_app, name="ui")
console = Console()
"""How long a stopping server lets requests in flight finish before it cuts them."""
err_console = Console(stderr=True)


def _settings(host: str | None, port: int | None) -> Settings:
    overrides: dict[str, Any] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    return get_settings().model_copy(update=overrides)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default 8000).")] = None,
) -> None:
    """Start the server: the API, the pages and the preview proxy."""
    settings = _settings(host, port)
    app = _app_or_exit(settings)
    console.print(
        f"sandforge on [bold]{_base_url(settings)}/create-daytona[/]  (data in {settings.data_dir})"
    )
    SandforgeServer(app, settings.host, settings.port).run()


def _app_or_exit(settings: Settings) -> SandforgeApp:
    try:
        return create_app(settings)
    except SandforgeError as exc:
        err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False)
        raise typer.Exit(2) from None


def _base_url(settings: Settings) -> str:
    """Where this machine reaches the server: loopback when it listens on every address."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}"


def _auth_headers(settings: Settings) -> dict[str, str]:
    """The CLI speaks to the API with the first of SANDFORGE_API_TOKENS, when there is one."""
    if not settings.api_tokens:
        return {}
    return {"authorization": f"Bearer {settings.api_tokens[0].get_secret_value()}"}


class ProgressView:
    """Prints each step of a run as it streams."""

    def __init__(self) -> None:
        self.in_message = False

    def show(self, event: Event) -> None:
        if event.type == "message":
            console.print(event.data.content, end="", style="cyan", markup=False, highlight=False)
            self.in_message = True
            return
        if self.in_message:
            console.print()
            self.in_message = False
        if event.type == "progress":
            step = PROGRESS_ORDER.index(event.data.status) + 1
            counter = f"[{step}/{len(PROGRESS_ORDER)}]"
            console.print(
                f"[bold]\\{counter} {event.data.status}[/] {event.data.message}",
                highlight=False,
                soft_wrap=True,
            )
        elif event.type == "tool":
            added = f" [green]+{event.data.linesAdded}[/]" if event.data.linesAdded else ""
            console.print(f"    {event.data.action:7} {event.data.file}{added}", highlight=False)
        elif event.type == "error":
            err_console.print(f"[bold red]error:[/] {event.data.message}", highlight=False)


async def _generate(settings: Settings, body: dict[str, Any], serve_after: bool) -> int:
    if settings.auth_required:
        # This process is the server's client too: it signs its own requests.
        own = SecretStr(secrets.token_urlsafe(24))
        settings = settings.model_copy(update={"api_tokens": [own, *settings.api_tokens]})
    server = SandforgeServer(_app_or_exit(settings), settings.host, settings.port)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            err_console.print(
                f"[red]Could not start the server on {settings.host}:{settings.port}[/]"
            )
            return 1
        await asyncio.sleep(0.02)
    base = _base_url(settings)
    view = ProgressView()
    final: Event | None = None
    with console.status("Generating...", spinner="dots"):
        async with (
            httpx.AsyncClient(
                base_url=base, timeout=None, headers=_auth_headers(settings)
            ) as client,
            client.stream("POST", "/api/agent/stream-daytona", json=body) as response,
        ):
            if response.status_code != 200:
                await response.aread()
                err_console.print(f"[bold red]error:[/] {response.json()['error']['message']}")
                server.stop()
                await serving
                return 1
            async for _, event in decode_sse(response.aiter_lines()):
                view.show(event)
                final = event
    if final is None or final.type != "complete":
        server.stop()
        await serving
        return 1
    token = f"?token={final.data.accessToken}" if final.data.accessToken else ""
    console.print(f"\n[bold green]Preview:[/] {final.data.previewUrl}{token}", soft_wrap=True)
    if not serve_after:
        server.stop()
    else:
        console.print("Serving the preview; press Ctrl-C to stop.")
    await serving
    return 0


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="What to build.")],
    project_type: Annotated[str, typer.Option("--type", help="Project type.")] = "web-app",
    agents: Annotated[
        list[str] | None, typer.Option("--agent", help="Persona (repeatable).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Project name.")] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port for the server and previews.")] = None,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Keep serving the preview.")
    ] = True,
) -> None:
    """Generate an app from a prompt and serve its preview until Ctrl-C."""
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": prompt}],
        "projectType": project_type,
        "agents": agents or ["frontend-dev"],
    }
    if name:
        body["projectName"] = name
    raise typer.Exit(asyncio.run(_generate(_settings(host, port), body, serve_after)))


HostOption = Annotated[
    str | None,
    typer.Option(help="The server's address (default: SANDFORGE_SERVER_URL, else 127.0.0.1)."),
]
PortOption = Annotated[
    int | None, typer.Option(help="The server's port (default: SANDFORGE_PORT, else 8000).")
]


def _client_settings(host: str | None, port: int | None) -> Settings:
    """A client command's settings: --host/--port win over SANDFORGE_SERVER_URL."""
    settings = _settings(host, port)
    if host is not None or port is not None:
        settings = settings.model_copy(update={"server_url": None})
    return settings


def _client_base(settings: Settings) -> str:
    return settings.server_url.rstrip("/") if settings.server_url else _base_url(settings)


def _no_server(settings: Settings) -> NoReturn:
    err_console.print(
        f"[red]No sandforge server at {_client_base(settings)}; start one with `sandforge "
        "serve`, or point at yours with --host/--port or SANDFORGE_SERVER_URL.[/]",
        highlight=False,
    )
    raise typer.Exit(1)


def _api(settings: Settings, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
    try:
        response = httpx.request(
            method,
            f"{_client_base(settings)}{path}",
            timeout=timeout,
            headers=_auth_headers(settings),
            json=body,
        )
    except httpx.ConnectError:
        _no_server(settings)
    if response.status_code >= 400:
        err_console.print(f"[red]{response.json()['error']['message']}[/]")
        raise typer.Exit(1)
    return response.json() if response.content else None


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
    settings = _client_settings(host, port)
    items = _api(settings, "GET", "/api/sandboxes")["sandboxes"]
    if as_json:
        sys.stdout.write(json.dumps(items, indent=2) + "\n")
        return
    projects = {
        p["id"]: p for p in _api(_client_settings(host, port), "GET", "/api/projects")["projects"]
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
    _api(_client_settings(host, port), "DELETE", f"/api/sandboxes/{sandbox_id}")
    console.print(f"deleted {sandbox_id}")


@sandboxes_app.command("stop")
def sandboxes_stop(sandbox_id: str, host: HostOption = None, port: PortOption = None) -> None:
    """Stop a sandbox; its files stay."""
    _api(_client_settings(host, port), "POST", f"/api/sandboxes/{sandbox_id}/stop")
    console.print(f"stopped {sandbox_id}")


@sandboxes_app.command("start")
def sandboxes_start(sandbox_id: str, host: HostOption = None, port: PortOption = None) -> None:
    """Start a stopped sandbox."""
    _api(_client_settings(host, port), "POST", f"/api/sandboxes/{sandbox_id}/start")
    console.print(f"started {sandbox_id}")


def _project_id(settings: Settings, project: str) -> str:
    """A project named by its id, or by its name when no id matches."""
    if is_id(project, "project"):
        return project
    named = [
        p["id"] for p in _api(settings, "GET", "/api/projects")["projects"] if p["name"] == project
    ]
    if len(named) != 1:
        what = "No project" if not named else f"{len(named)} projects"
        err_console.print(f"[red]{what} named {project!r}; give its id (pj...).[/]")
        raise typer.Exit(1)
    return str(named[0])


def _download(settings: Settings, path: str, target: Path) -> None:
    """Stream `path` into `target` with a progress bar; nothing is left behind on failure."""
    partial = target.with_name(target.name + ".part")
    with (
        httpx.stream(
            "GET", f"{_base_url(settings)}{path}", timeout=60, headers=_auth_headers(settings)
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


@app.command()
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
    settings = _settings(None, port)
    project_id = _project_id(settings, project)
    query = f"?version={version}" if version is not None else ""
    target = output or Path(f"{project_id}{f'-v{version}' if version else ''}.zip")
    try:
        _download(settings, f"/api/projects/{project_id}/export.zip{query}", target)
    except httpx.ConnectError:
        _no_server(settings)
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


@app.command()
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
    settings = _settings(None, port)
    if project is not None:
        project_id = _project_id(settings, project)
        data = _api(settings, "GET", f"/api/projects/{project_id}/usage")
        rows = [(run["runId"], {**run, "runs": 1}) for run in data["runs"]]
    else:
        query = f"?{urlencode({'since': since})}" if since else ""
        data = _api(settings, "GET", f"/api/usage{query}")
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


@app.command()
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
    deleted = _api(_settings(None, port), "POST", f"/api/gc{query}", timeout=300)
    for sandbox_id in deleted["deleted"]:
        console.print(f"deleted {sandbox_id}")
    console.print(f"{len(deleted['deleted'])} stopped sandbox(es) deleted")


@app.command()
def github(
    project: Annotated[str, typer.Argument(help="The project's id (pj...) or name.")],
    repo: Annotated[str, typer.Argument(help="owner/name, or name for your own account.")],
    public: Annotated[
        bool, typer.Option("--public", help="Create the repository public (default private).")
    ] = False,
    port: Annotated[int | None, typer.Option(help="Server port.")] = None,
) -> None:
    """Push a project's history to GitHub (one commit per version; GITHUB_TOKEN on the server)."""
    settings = _settings(None, port)
    project_id = _project_id(settings, project)
    with console.status(f"Pushing to {repo}..."):
        pushed = _api(
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


@app.command()
def doctor() -> None:
    """Check the configured model and sandbox provider; print what is missing and the fix."""
    from .doctor import print_report, run_checks

    raise typer.Exit(print_report(run_checks(get_settings()), console))


@templates_app.command("prepare")
def templates_prepare() -> None:
    """Build the sandbox image, then install each project type's packages with its npm and
    pip, once: sandboxes need no network for them."""
    from .templates.cache import prepare_all

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
    from .server.vendor import prepare

    root = get_settings().ui_vendor
    with console.status(f"Installing the web UI's libraries into {root}..."):
        installed = prepare(root)
    console.print(f"web UI libraries ready in {root}{'' if installed else ' (up to date)'}")


@templates_app.command("list")
def templates_list() -> None:
    """List the project types."""
    from .templates import TEMPLATES

    for template in TEMPLATES.values():
        console.print(f"{template.name:10} {template.label}")


if __name__ == "__main__":
    app()
