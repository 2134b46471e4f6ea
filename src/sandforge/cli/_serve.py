"""`sandforge serve` and `sandforge generate`: a server in this process."""

from __future__ import annotations

import asyncio
import secrets
from typing import Annotated, Any

import httpx
import typer
from pydantic import SecretStr

from ..config import Settings
from ..errors import SandforgeError
from ..events import PROGRESS_ORDER, Event, decode_sse
from ..server.app import SandforgeApp, create_app
from ..server.runner import SandforgeServer
from ._client import auth_headers, base_url, console, err_console, settings_for


def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default 8000).")] = None,
) -> None:
    """Start the server: the API, the pages and the preview proxy."""
    settings = settings_for(host, port)
    app = _app_or_exit(settings)
    console.print(
        f"sandforge on [bold]{base_url(settings)}/create-daytona[/]  (data in {settings.data_dir})"
    )
    SandforgeServer(app, settings.host, settings.port).run()


def _app_or_exit(settings: Settings) -> SandforgeApp:
    try:
        return create_app(settings)
    except SandforgeError as exc:
        err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False)
        raise typer.Exit(2) from None


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
    base = base_url(settings)
    view = ProgressView()
    final: Event | None = None
    with console.status("Generating...", spinner="dots"):
        async with (
            httpx.AsyncClient(
                base_url=base, timeout=None, headers=auth_headers(settings)
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
    raise typer.Exit(asyncio.run(_generate(settings_for(host, port), body, serve_after)))
