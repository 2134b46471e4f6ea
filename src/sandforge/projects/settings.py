"""A project's own settings: its sandbox's resources and egress, and its app's environment.

Environment values are encrypted at rest and never shown back (the API lists names). They
go to the app's processes (the dev server) only: never into the model's prompts, nor into
the commands the model runs, whose environment is the sandbox's clean one.
"""

from __future__ import annotations

import asyncio
import re

from pydantic import BaseModel, ConfigDict, Field

from ..config import Settings
from ..errors import InvalidRequest
from ..store.project_settings import ProjectSettingsStore
from ..store.repo import Store
from .app_secrets import AppSecrets
from .serving import SandboxResources

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
RESERVED_NAMES = frozenset({"PATH", "HOME", "LANG", "PWD", "SHELL", "USER"})
MAX_ENV_VARS = 100
MAX_ENV_VALUE_CHARS = 32_768


class InvalidEnv(InvalidRequest):
    code = "invalid_env"


class SettingsUpdate(BaseModel):
    """Changes to a project's settings; what is left out stays as it is."""

    model_config = ConfigDict(extra="forbid", strict=True)

    sandbox: SandboxResources | None = None
    """Replaces the sandbox settings; the sandbox is rebuilt from the stored files with them."""
    env: dict[str, str | None] | None = Field(default=None, max_length=MAX_ENV_VARS)
    """Sets each variable (null removes it); the dev server restarts with them."""


def check_env(env: dict[str, str | None]) -> None:
    for name, value in env.items():
        if not ENV_NAME.match(name) or name in RESERVED_NAMES or name.startswith("SANDFORGE_"):
            raise InvalidEnv(
                f"{name!r} cannot be an app variable: use letters, digits and underscores, "
                f"not starting with a digit or SANDFORGE_, and none of {sorted(RESERVED_NAMES)}."
            )
        if value is not None and (len(value) > MAX_ENV_VALUE_CHARS or "\x00" in value):
            raise InvalidEnv(
                f"The value of {name} is too long or holds a NUL (at most "
                f"{MAX_ENV_VALUE_CHARS} characters)."
            )


class ProjectConfig:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.stored = ProjectSettingsStore(store)
        self._secrets: AppSecrets | None = None

    async def _cipher(self) -> AppSecrets:
        if self._secrets is None:
            self._secrets = await asyncio.to_thread(AppSecrets, self.settings.secrets_key_file)
        return self._secrets

    async def resources(self, project_id: str) -> SandboxResources:
        return SandboxResources.model_validate(await self.stored.sandbox(project_id))

    async def env_names(self, project_id: str) -> list[str]:
        return list(await self.stored.env(project_id))

    async def app_env(self, project_id: str) -> dict[str, str]:
        encrypted = await self.stored.env(project_id)
        if not encrypted:
            return {}
        cipher = await self._cipher()
        return {name: cipher.decrypt(token) for name, token in encrypted.items()}

    async def update(self, project_id: str, update: SettingsUpdate) -> tuple[bool, bool]:
        """Store the changes; whether the resources and whether the environment changed."""
        resources_changed = False
        if update.sandbox is not None:
            before = await self.resources(project_id)
            resources_changed = before != update.sandbox
            await self.stored.set_sandbox(project_id, update.sandbox.model_dump(exclude_none=True))
        if not update.env:
            return resources_changed, False
        check_env(update.env)
        cipher = await self._cipher()
        await self.stored.update_env(
            project_id,
            {k: cipher.encrypt(v) if v is not None else None for k, v in update.env.items()},
        )
        return resources_changed, True
