"""What the server holds for its lifetime: settings, store, sandbox launcher, providers, runs."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict

from ..config import SandboxProviderName, Settings
from ..runs.devserver import ensure_serving, project_spec, rebuild
from ..runs.supervisor import Supervisor
from ..sandbox import (
    Sandbox,
    SandboxError,
    SandboxNotFound,
    SandboxProvider,
    SandboxState,
    SandboxUnavailable,
)
from ..sandbox.local import BwrapLauncher, ControlServer, check_isolation
from ..sandbox.providers import check_provider, make_provider
from ..store.records import ProjectRecord
from ..store.repo import Store
from ..templates import get_template

PROVIDER_NAMES: tuple[SandboxProviderName, ...] = ("local", "daytona")


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.launcher = BwrapLauncher(allow_unisolated=settings.allow_unisolated)
        self.control = ControlServer(self.launcher, settings.control_socket, settings.sandboxes_dir)
        self._providers: dict[str, SandboxProvider] = {}
        self._project_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.isolated = True
        self.isolation_problem = ""
        self._store: Store | None = None
        self._last_used: dict[str, float] = {}
        self._idle_reaper: asyncio.Task[None] | None = None
        self.preview_routes: dict[str, tuple[ProjectRecord | None, Sandbox]] = {}
        """Preview host id → what served it last; the proxy's fast path. Dropped on change."""
        self._supervisor: Supervisor | None = None

    @property
    def store(self) -> Store:
        assert self._store is not None, "Services.start() has not run"
        return self._store

    @property
    def supervisor(self) -> Supervisor:
        assert self._supervisor is not None, "Services.start() has not run"
        return self._supervisor

    async def start(self) -> None:
        self.settings.sandboxes_dir.mkdir(parents=True, exist_ok=True)
        isolation = await asyncio.to_thread(check_isolation)
        self.isolated = isolation.available
        self.isolation_problem = isolation.problem
        await self.launcher.recover(self.settings.sandboxes_dir)
        self._store = await Store.open(self.settings.database_url, self.settings.data_dir)
        self._supervisor = Supervisor(
            self.settings,
            self._store,
            isolated=self.isolated,
            isolation_problem=isolation.problem,
            on_sandbox_used=self.touch,
        )
        await self._supervisor.interrupt_orphans()
        self._supervisor.warm_up()
        if self.settings.idle_stop_minutes > 0:
            self._idle_reaper = asyncio.create_task(self._stop_idle_sandboxes())
        await self.control.start()

    async def close(self) -> None:
        if self._idle_reaper is not None:
            self._idle_reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._idle_reaper
        if self._supervisor is not None:
            await self._supervisor.close()
        await self.control.close()
        await self.launcher.close()
        for provider in self._providers.values():
            await provider.aclose()
        if self._store is not None:
            await self._store.close()

    def provider(self, name: str | None = None) -> SandboxProvider:
        resolved = self.check_provider(name)
        if resolved not in self._providers:
            self._providers[resolved] = make_provider(resolved, self.settings, self.launcher)
        return self._providers[resolved]

    def check_provider(self, name: str | None) -> SandboxProviderName:
        resolved = name or self.settings.sandbox_provider
        for known in PROVIDER_NAMES:
            if known == resolved:
                check_provider(known, self.settings)
                return known
        raise SandboxUnavailable(
            f"unknown sandbox provider {resolved!r}; choose one of {', '.join(PROVIDER_NAMES)}"
        )

    def configured_providers(self) -> list[SandboxProvider]:
        providers = []
        for name in PROVIDER_NAMES:
            with contextlib.suppress(SandboxUnavailable):
                providers.append(self.provider(name))
        return providers

    def forget_preview(self, *target_ids: str | None) -> None:
        """Drop cached preview routes after a sandbox or project changed or went away."""
        for target_id in target_ids:
            if target_id is not None:
                self.preview_routes.pop(target_id, None)
        for key, (project, sandbox) in list(self.preview_routes.items()):
            if sandbox.id in target_ids or (project is not None and project.id in target_ids):
                self.preview_routes.pop(key, None)

    async def find_sandbox(self, sandbox_id: str) -> Sandbox:
        for provider in self.configured_providers():
            with contextlib.suppress(SandboxNotFound):
                return await provider.get(sandbox_id)
        raise SandboxNotFound(f"no sandbox {sandbox_id!r}; it may have been deleted")

    async def serving_sandbox(self, project: ProjectRecord) -> Sandbox:
        """The project's sandbox with its dev server up: started, or rebuilt from stored files."""
        async with self._project_locks[project.id]:
            project = await self.store.get_project(project.id)
            provider = self.provider(project.provider)
            sandbox: Sandbox | None = None
            if project.sandbox_id:
                # Touched first, so the idle stop does not take back what this starts.
                self.touch(project.sandbox_id)
                with contextlib.suppress(SandboxNotFound):
                    sandbox = await provider.get(project.sandbox_id)
            if sandbox is not None and self.run_in_flight(project.id):
                return sandbox
            template = get_template(project.project_type)
            if sandbox is None:
                files = await self.store.files(project.id)
                if not files:
                    raise SandboxError(f"project {project.id} has no stored files to rebuild from")
                labels = {"sandforge": "1", "project": project.id}
                sandbox = await rebuild(
                    provider, project_spec(template, self.settings, labels), files
                )
                self.touch(sandbox.id)
                await self.store.set_project_sandbox(project.id, sandbox.id)
                await self.store.record_sandbox(sandbox.id, provider.name, project.id, "started")
            await ensure_serving(sandbox, template, self.settings.dev_server_ready_timeout_s)
            return sandbox

    def touch(self, sandbox_id: str) -> None:
        """Note that a sandbox was just used (a preview request), for the idle stop."""
        self._last_used[sandbox_id] = time.time()

    async def _stop_idle_sandboxes(self) -> None:
        """Stop local sandboxes idle for `idle_stop_minutes`; Daytona has its own auto-stop."""
        idle_after = self.settings.idle_stop_minutes * 60
        while True:
            await asyncio.sleep(min(60.0, max(idle_after / 4, 0.05)))
            busy = {run.sandbox_id for run in self.supervisor.runs.values() if not run.done}
            provider = self.provider("local")
            for info in await provider.list():
                if info.state != SandboxState.STARTED or info.id in busy:
                    continue
                if not self._idle(info.id, info.created_at, idle_after):
                    continue
                # Under the project's lock, so a preview starting it meanwhile wins.
                async with self._project_locks[info.labels.get("project", info.id)]:
                    if not self._idle(info.id, info.created_at, idle_after):
                        continue
                    self.forget_preview(info.id)
                    with contextlib.suppress(SandboxError):
                        await (await provider.get(info.id)).stop()

    def _idle(self, sandbox_id: str, created_at: float, idle_after: float) -> bool:
        return time.time() - max(self._last_used.get(sandbox_id, 0.0), created_at) >= idle_after

    def run_in_flight(self, project_id: str) -> bool:
        return any(
            run.job.project_id == project_id and not run.done
            for run in self.supervisor.runs.values()
        )
