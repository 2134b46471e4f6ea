"""Which sandbox (or stored project) a preview host names, and the cached route to it.

`{port}-{id}.{preview domain}`: a project id is the project's stable URL across
rebuilds; a sandbox id addresses one sandbox. The route of the last request is
kept (the proxy's fast path) until the sandbox or project changes.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from ...ids import kind_of
from ...projects.service import Projects
from ...sandbox import Sandbox, SandboxState
from ...sandbox.fleet import SandboxFleet
from ...store.records import ProjectRecord, ShareLinkRecord

_HOST = re.compile(r"^(?P<port>\d{1,5})-(?P<target>[a-z0-9][a-z0-9-]*)\.(?P<domain>[^:]+)(:\d+)?$")


@dataclass(frozen=True)
class PreviewHost:
    port: int
    target_id: str


def parse_preview_host(host: str, domain: str) -> PreviewHost | None:
    match = _HOST.match(host.lower())
    if match is None or match["domain"] != domain.lower():
        return None
    port = int(match["port"])
    if not 1 <= port <= 65535:
        return None
    return PreviewHost(port, match["target"])


@dataclass
class Route:
    """What a preview host leads to: a project (stable URL) or one sandbox, and access rules."""

    project: ProjectRecord | None
    sandbox: Sandbox | None
    token: str
    public: bool
    shares: list[ShareLinkRecord] = field(default_factory=list)
    """The project's share links; each opens the preview until it expires or is revoked."""

    def tokens(self) -> list[str]:
        now = time.time()
        return [self.token, *(link.token for link in self.shares if link.live(now))]

    @property
    def stored(self) -> bool:
        """The persistent flow: served from the store, no sandbox."""
        return self.project is not None and self.project.flow == "persistent"


class PreviewStopped(Exception):
    """A sandbox addressed by its own id is stopped; only a project's URL restarts it."""


class PreviewRoutes:
    def __init__(self, projects: Projects, fleet: SandboxFleet) -> None:
        self.projects = projects
        self.fleet = fleet
        self._routes: dict[str, Route] = {}
        fleet.on_change(self.forget)

    def forget(self, changed_id: str) -> None:
        """Drop routes to a sandbox or project that changed or went away."""
        self._routes.pop(changed_id, None)
        for key, route in list(self._routes.items()):
            if (route.sandbox is not None and route.sandbox.id == changed_id) or (
                route.project is not None and route.project.id == changed_id
            ):
                self._routes.pop(key, None)

    async def resolve(self, target_id: str) -> Route:
        """The route for a host's id; raises NotFound (project or sandbox) if there is none."""
        cached = self._routes.get(target_id)
        if cached is not None:
            return cached
        if kind_of(target_id) == "project":
            project = await self.projects.store.get_project(target_id)
            shares = await self.projects.store.share_links(project.id)
            route = Route(project, None, project.preview_token, project.public, shares)
        else:
            sandbox = await self.fleet.find(target_id)
            info = await sandbox.info()
            route = Route(None, sandbox, info.preview_token, info.public)
        return route

    async def serving(self, target_id: str, route: Route) -> Sandbox:
        """The sandbox to forward to, started (or rebuilt) first for a project's URL."""
        sandbox = route.sandbox
        running = sandbox is not None and (await sandbox.info()).state == SandboxState.STARTED
        if sandbox is None or not running:
            if route.project is None:
                self._routes.pop(target_id, None)
                raise PreviewStopped(target_id)
            sandbox = await self.projects.serving_sandbox(route.project.id)
            route.sandbox = sandbox
        self._routes[target_id] = route
        self.fleet.touch(sandbox.id)
        return sandbox

    def drop(self, target_id: str) -> None:
        self._routes.pop(target_id, None)
