"""What the server holds for its lifetime: settings, the sandbox launcher, providers, runs."""

from __future__ import annotations

import asyncio
import contextlib

from ..config import SandboxProviderName, Settings
from ..runs.supervisor import Supervisor
from ..sandbox import Sandbox, SandboxNotFound, SandboxProvider, SandboxUnavailable
from ..sandbox.local import BwrapLauncher, ControlServer, check_isolation
from ..sandbox.providers import check_provider, make_provider

PROVIDER_NAMES: tuple[SandboxProviderName, ...] = ("local", "daytona")


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.launcher = BwrapLauncher(allow_unisolated=settings.allow_unisolated)
        self.control = ControlServer(self.launcher, settings.control_socket, settings.sandboxes_dir)
        self._providers: dict[str, SandboxProvider] = {}
        self.isolated = True
        self.supervisor = Supervisor(settings)

    async def start(self) -> None:
        self.settings.sandboxes_dir.mkdir(parents=True, exist_ok=True)
        self.isolated = (await asyncio.to_thread(check_isolation)).available
        self.supervisor.isolated = self.isolated
        await self.control.start()

    async def close(self) -> None:
        await self.supervisor.close()
        await self.control.close()
        await self.launcher.close()

    def provider(self, name: SandboxProviderName | None = None) -> SandboxProvider:
        name = name or self.settings.sandbox_provider
        if name not in self._providers:
            self._providers[name] = make_provider(name, self.settings, self.launcher)
        return self._providers[name]

    def check_provider(self, name: SandboxProviderName | None) -> SandboxProviderName:
        resolved = name or self.settings.sandbox_provider
        check_provider(resolved, self.settings)
        return resolved

    def configured_providers(self) -> list[SandboxProvider]:
        providers = []
        for name in PROVIDER_NAMES:
            with contextlib.suppress(SandboxUnavailable):
                providers.append(self.provider(name))
        return providers

    async def find_sandbox(self, sandbox_id: str) -> Sandbox:
        for provider in self.configured_providers():
            with contextlib.suppress(SandboxNotFound):
                return await provider.get(sandbox_id)
        raise SandboxNotFound(f"no sandbox {sandbox_id!r}; it may have been deleted")
