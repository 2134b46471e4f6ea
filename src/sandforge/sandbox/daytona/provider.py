"""The Daytona provider: creates, finds and lists sandforge's sandboxes in an organization."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import secrets
import time
from collections.abc import Awaitable, Callable

from daytona import (
    AsyncDaytona,
    CreateSandboxFromImageParams,
    CreateSandboxFromSnapshotParams,
    DaytonaAuthenticationError,
    DaytonaConfig,
    DaytonaError,
    DaytonaForbiddenError,
    DaytonaNotFoundError,
    DaytonaTimeoutError,
    Image,
    ListSandboxesQuery,
    Resources,
)

from ...config import SandboxProviderName
from ...templates import TEMPLATES
from ..base import (
    SandboxError,
    SandboxInfo,
    SandboxNotFound,
    SandboxSpec,
)
from .errors import daytona_errors, translate
from .images import template_image
from .sandbox import (
    GONE_STATES,
    INTERNAL_LABELS,
    LABEL_CREATE,
    LABEL_PREVIEW,
    DaytonaOptions,
    DaytonaSandbox,
    check_env,
    sandbox_info,
    state_value,
)

log = logging.getLogger(__name__)

REAP_POLL_S = 0.5
_SANDBOX_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class DaytonaProvider:
    name: SandboxProviderName = "daytona"

    def __init__(self, options: DaytonaOptions) -> None:
        self.options = options
        self._daytona: AsyncDaytona | None = None

    def _client(self) -> AsyncDaytona:
        # Made on first use, inside the event loop the SDK's HTTP session binds to.
        if self._daytona is None:
            self._daytona = AsyncDaytona(
                DaytonaConfig(
                    api_key=self.options.api_key,
                    api_url=self.options.api_url,
                    target=self.options.target,
                )
            )
        return self._daytona

    async def aclose(self) -> None:
        if self._daytona is not None:
            daytona, self._daytona = self._daytona, None
            close: Callable[[], Awaitable[None]] = daytona.close  # the SDK leaves it unannotated
            await close()

    def _image(self, spec: SandboxSpec) -> str | Image | None:
        """The spec's image, else the configured one, else the project type's declarative
        image (built once by Daytona, then reused), unless a snapshot was chosen."""
        if spec.image or spec.snapshot:
            return spec.image
        if self.options.image or self.options.snapshot:
            return self.options.image
        template = TEMPLATES.get(spec.stack or "")
        return (
            template_image(template, self.options.project_dir, self.options.system)
            if template
            else None
        )

    def _params(
        self, spec: SandboxSpec, labels: dict[str, str]
    ) -> CreateSandboxFromImageParams | CreateSandboxFromSnapshotParams:
        # Daytona counts the intervals in minutes, as the spec does. Stop and archive cannot
        # be negative (0 turns auto-stop off); a negative auto-delete turns it off.
        auto_stop = max(0, spec.auto_stop_minutes)
        auto_archive = max(0, spec.auto_archive_minutes)
        image = self._image(spec)
        if image:
            return CreateSandboxFromImageParams(
                image=image,
                resources=Resources(
                    cpu=max(1, round(spec.cpu_weight / 100)),
                    memory=max(1, math.ceil(spec.memory_mb / 1024)),
                    disk=max(1, math.ceil(spec.disk_mb / 1024)),
                ),
                labels=labels,
                env_vars=dict(spec.env),
                public=spec.public,
                auto_stop_interval=auto_stop,
                auto_archive_interval=auto_archive,
                auto_delete_interval=spec.auto_delete_minutes,
                network_block_all=spec.network == "none",
            )
        # A snapshot fixes its own resources; the SDK sends none with it.
        return CreateSandboxFromSnapshotParams(
            snapshot=spec.snapshot or self.options.snapshot,
            labels=labels,
            env_vars=dict(spec.env),
            public=spec.public,
            auto_stop_interval=auto_stop,
            auto_archive_interval=auto_archive,
            auto_delete_interval=spec.auto_delete_minutes,
            network_block_all=spec.network == "none",
        )

    async def create(self, spec: SandboxSpec) -> DaytonaSandbox:
        for key in spec.labels:
            if key in INTERNAL_LABELS:
                raise SandboxError(f"the label {key!r} is reserved for sandforge")
        check_env(spec.env)
        nonce = secrets.token_hex(12)
        labels = {
            **spec.labels,
            LABEL_CREATE: nonce,
            LABEL_PREVIEW: secrets.token_urlsafe(24),
        }
        params = self._params(spec, labels)
        daytona = self._client()
        timeout = self.options.create_timeout_s
        try:
            if isinstance(params, CreateSandboxFromImageParams):
                raw = await daytona.create(params, timeout=timeout)
            else:
                raw = await daytona.create(params, timeout=timeout)
        except DaytonaTimeoutError as exc:
            await self._reap(nonce, exc.sandbox_id, self.options.cleanup_grace_s)
            raise SandboxError(
                f"Daytona did not create the sandbox within {timeout:g}s "
                "(SANDFORGE_DAYTONA_CREATE_TIMEOUT_S); anything it started was deleted. "
                "Try again, or raise the timeout."
            ) from exc
        except DaytonaError as exc:
            if not isinstance(exc, DaytonaAuthenticationError | DaytonaForbiddenError):
                await self._reap(nonce, None, 0)  # e.g. created, then entered an error state
            raise translate(exc, "create a sandbox") from exc
        sandbox = DaytonaSandbox(raw, self.options, spec)
        try:
            with daytona_errors("create the project dir", raw.id):
                await raw.fs.create_folder(self.options.project_dir, "755")
        except BaseException:
            with contextlib.suppress(Exception):
                await sandbox.delete()
            raise
        return sandbox

    async def _reap(self, nonce: str, known_id: str | None, grace_s: float) -> None:
        """Delete what a failed create left behind, watching for it up to `grace_s` seconds.

        A create whose request timed out may still finish on Daytona's side, so the sandbox
        is looked for by its create nonce until it shows up or the grace period ends.
        """
        daytona = self._client()
        deadline = time.monotonic() + grace_s
        query = ListSandboxesQuery(labels={LABEL_CREATE: nonce})
        while True:
            found = False
            try:
                if known_id is not None:
                    found = True
                    with contextlib.suppress(DaytonaNotFoundError):
                        await (await daytona.get(known_id)).delete()
                async for raw in daytona.list(query):
                    found = True
                    if state_value(raw) not in GONE_STATES:
                        await raw.delete()
            except DaytonaError:
                log.warning("could not clean up after a failed Daytona create", exc_info=True)
            if found:
                return
            if time.monotonic() >= deadline:
                if grace_s > 0:
                    log.warning(
                        "a timed-out Daytona create (label %s=%s) left nothing to delete "
                        "within %gs",
                        LABEL_CREATE,
                        nonce,
                        grace_s,
                    )
                return
            await asyncio.sleep(REAP_POLL_S)

    async def get(self, sandbox_id: str) -> DaytonaSandbox:
        if not _SANDBOX_ID.match(sandbox_id):
            raise SandboxNotFound(f"no sandbox {sandbox_id!r}")
        with daytona_errors("look up the sandbox", sandbox_id):
            raw = await self._client().get(sandbox_id)
        if state_value(raw) in GONE_STATES:
            raise SandboxNotFound(f"Daytona sandbox {sandbox_id!r} has been deleted")
        return DaytonaSandbox(raw, self.options, SandboxSpec())

    async def list(self, labels: dict[str, str] | None = None) -> list[SandboxInfo]:
        """sandforge's Daytona sandboxes, filtered by `labels`. Others in the org are left out."""
        query = ListSandboxesQuery(labels=dict(labels) if labels else None)
        infos: list[SandboxInfo] = []
        with daytona_errors("list sandboxes"):
            async for raw in self._client().list(query):
                if LABEL_PREVIEW in (raw.labels or {}) and state_value(raw) not in GONE_STATES:
                    infos.append(sandbox_info(raw))
        return sorted(infos, key=lambda i: i.created_at)
