"""How the CLI reaches a server: its settings, its address and its API, with errors said plainly."""

from __future__ import annotations

from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console

from ..config import Settings, get_settings
from ..ids import is_id

console = Console()
err_console = Console(stderr=True)


def settings_for(host: str | None, port: int | None) -> Settings:
    overrides: dict[str, Any] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    return get_settings().model_copy(update=overrides)


def base_url(settings: Settings) -> str:
    """Where this machine reaches the server: loopback when it listens on every address."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}"


def auth_headers(settings: Settings) -> dict[str, str]:
    """The CLI speaks to the API with the first of SANDFORGE_API_TOKENS, when there is one."""
    if not settings.api_tokens:
        return {}
    return {"authorization": f"Bearer {settings.api_tokens[0].get_secret_value()}"}


HostOption = Annotated[
    str | None,
    typer.Option(help="The server's address (default: SANDFORGE_SERVER_URL, else 127.0.0.1)."),
]
PortOption = Annotated[
    int | None, typer.Option(help="The server's port (default: SANDFORGE_PORT, else 8000).")
]


def client_settings(host: str | None, port: int | None) -> Settings:
    """A client command's settings: --host/--port win over SANDFORGE_SERVER_URL."""
    settings = settings_for(host, port)
    if host is not None or port is not None:
        settings = settings.model_copy(update={"server_url": None})
    return settings


def _client_base(settings: Settings) -> str:
    return settings.server_url.rstrip("/") if settings.server_url else base_url(settings)


def exit_no_server(settings: Settings) -> NoReturn:
    err_console.print(
        f"[red]No sandforge server at {_client_base(settings)}; start one with `sandforge "
        "serve`, or point at yours with --host/--port or SANDFORGE_SERVER_URL.[/]",
        highlight=False,
    )
    raise typer.Exit(1)


def call_api(
    settings: Settings, method: str, path: str, body: Any = None, timeout: float = 30
) -> Any:
    try:
        response = httpx.request(
            method,
            f"{_client_base(settings)}{path}",
            timeout=timeout,
            headers=auth_headers(settings),
            json=body,
        )
    except httpx.ConnectError:
        exit_no_server(settings)
    if response.status_code >= 400:
        err_console.print(f"[red]{response.json()['error']['message']}[/]")
        raise typer.Exit(1)
    return response.json() if response.content else None


def resolve_project(settings: Settings, project: str) -> str:
    """A project named by its id, or by its name when no id matches."""
    if is_id(project, "project"):
        return project
    named = [
        p["id"]
        for p in call_api(settings, "GET", "/api/projects")["projects"]
        if p["name"] == project
    ]
    if len(named) != 1:
        what = "No project" if not named else f"{len(named)} projects"
        err_console.print(f"[red]{what} named {project!r}; give its id (pj...).[/]")
        raise typer.Exit(1)
    return str(named[0])
