"""The server's sandboxes: the local launcher and its control socket, one client per provider.

It is the only owner of the bwrap launcher (sandboxes die with the process that
launched them, so that must be the server) and of the providers' clients. It knows
which sandbox was used when, for the idle stop, and tells listeners when a sandbox
stops or goes away, so caches of routes to it are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from ..config import SandboxProviderName, Settings
from .base import (
    Sandbox,
    SandboxError,
    SandboxInfo,
    SandboxNotFound,
    SandboxProvider,
    SandboxState,
    SandboxUnavailable,
)
from .local import BwrapLauncher, ControlServer, check_isolation
from .local.registry import registry_bridge
from .providers import check_provider, make_provider

log = logging.getLogger(__name__)

PROVIDER_NAMES: tuple[SandboxProviderName, ...] = ("local", "daytona")

ChangeListener = Callable[[str], None]


class SandboxFleet:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.launcher = BwrapLauncher(
            allow_unisolated=settings.allow_unisolated,
            registry=registry_bridge(settings),
            rootfs=settings.rootfs,
        )
        self.control = ControlServer(self.launcher, settings.control_socket, settings.sandboxes_dir)
        self.isolation_problem = ""
        """Why local sandboxes run without full isolation here; empty when they do not."""
        self._providers: dict[SandboxProviderName, SandboxProvider] = {}
        self._last_used: dict[str, float] = {}
        self._listeners: list[ChangeListener] = []

    @property
    def isolated(self) -> bool:
        return not self.isolation_problem

    async def start(self) -> None:
        self.settings.sandboxes_dir.mkdir(parents=True, exist_ok=True)
        isolation = await asyncio.to_thread(check_isolation)
        self.isolation_problem = "" if isolation.available else isolation.problem
        await self.launcher.recover(self.settings.sandboxes_dir)
        if self.launcher.registry is not None and isolation.available:
            # Now rather than at the first launch, which would wait for it.
            await self.launcher.registry.start()
        await self.control.start()

    async def aclose(self) -> None:
        await self.control.close()
        await self.launcher.close()
        for provider in self._providers.values():
            await provider.aclose()
        self._providers.clear()

    # -- providers -----------------------------------------------------------------------------

    def check_provider(self, name: str | None) -> SandboxProviderName:
        """The provider `name` (or the default) stands for, if it can be used here."""
        resolved = name or self.settings.sandbox_provider
        for known in PROVIDER_NAMES:
            if known == resolved:
                check_provider(known, self.settings)
                return known
        raise SandboxUnavailable(
            f"unknown sandbox provider {resolved!r}; choose one of {', '.join(PROVIDER_NAMES)}"
        )

    def provider(self, name: str | None = None) -> SandboxProvider:
        resolved = self.check_provider(name)
        if resolved not in self._providers:
            self._providers[resolved] = make_provider(resolved, self.settings, self.launcher)
        return self._providers[resolved]

    def add_provider(self, provider: SandboxProvider) -> None:
        """Serve `provider`'s name with it (tests plug in an in-memory provider this way)."""
        self._providers[provider.name] = provider

    def configured(self) -> list[SandboxProvider]:
        providers = []
        for name in PROVIDER_NAMES:
            with contextlib.suppress(SandboxUnavailable):
                providers.append(self.provider(name))
        return providers

    # -- sandboxes -----------------------------------------------------------------------------

    async def find(self, sandbox_id: str) -> Sandbox:
        for provider in self.configured():
            with contextlib.suppress(SandboxNotFound):
                return await provider.get(sandbox_id)
        raise SandboxNotFound(f"no sandbox {sandbox_id!r}; it may have been deleted")

    async def running(self) -> list[SandboxInfo]:
        """Sandboxes running across the providers that answer (one that cannot list, say for
        a bad key, reports that on its own requests, not here)."""
        running: list[SandboxInfo] = []
        for provider in self.configured():
            try:
                infos = await provider.list()
            except SandboxError as exc:
                log.warning("could not count %s sandboxes: %s", provider.name, exc)
                continue
            running += [info for info in infos if info.state == SandboxState.STARTED]
        return running

    async def list(self) -> list[SandboxInfo]:
        infos: list[SandboxInfo] = []
        for provider in self.configured():
            infos += await provider.list()
        return infos

    async def stop(self, sandbox: Sandbox) -> None:
        self.changed(sandbox.id)
        await sandbox.stop()

    async def delete(self, sandbox: Sandbox) -> None:
        self.changed(sandbox.id)
        await sandbox.delete()
        self._last_used.pop(sandbox.id, None)

    # -- use and change ------------------------------------------------------------------------

    def touch(self, sandbox_id: str) -> None:
        """Note that a sandbox was just used (a run ended, a preview request), for the idle stop."""
        self._last_used[sandbox_id] = time.time()

    def idle_for(self, info: SandboxInfo) -> float:
        return time.time() - max(self._last_used.get(info.id, 0.0), info.created_at)

    def on_change(self, listener: ChangeListener) -> None:
        """Call `listener(id)` when a sandbox or project stops being what it was."""
        self._listeners.append(listener)

    def changed(self, *target_ids: str | None) -> None:
        for target_id in target_ids:
            if target_id is not None:
                for listener in self._listeners:
                    listener(target_id)
