"""Settings: the only place configuration is read (environment variables and `.env`)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SandboxProviderName = Literal["local", "daytona"]


def default_data_dir() -> Path:
    """`$XDG_DATA_HOME/sandforge`, which is `~/.local/share/sandforge` on most machines."""
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "sandforge"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SANDFORGE_", env_file=".env", extra="ignore", populate_by_name=True
    )

    data_dir: Path = Field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    port: int = 8000
    preview_domain: str = "localhost"
    preview_scheme: Literal["http", "https"] = "http"

    model: str | None = None
    anthropic_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("ANTHROPIC_API_KEY", "SANDFORGE_ANTHROPIC_API_KEY")
    )

    sandbox_provider: SandboxProviderName = Field(
        default="local", validation_alias=AliasChoices("SANDFORGE_SANDBOX", "sandbox_provider")
    )
    keep_on_error: bool = False
    allow_unisolated: bool = False

    daytona_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("DAYTONA_API_KEY", "daytona_api_key")
    )
    daytona_api_url: str = Field(
        default="https://app.daytona.io/api",
        validation_alias=AliasChoices("DAYTONA_API_URL", "daytona_api_url"),
    )
    daytona_target: str | None = Field(
        default=None, validation_alias=AliasChoices("DAYTONA_TARGET", "daytona_target")
    )

    max_prompt_chars: int = 20_000
    max_messages: int = 200
    dev_server_ready_timeout_s: float = 60.0

    @property
    def sandboxes_dir(self) -> Path:
        return self.data_dir / "sandboxes"

    @property
    def control_socket(self) -> Path:
        return self.data_dir / "sandboxd.sock"

    def preview_url(self, sandbox_id: str, port: int) -> str:
        return f"{self.preview_scheme}://{port}-{sandbox_id}.{self.preview_domain}:{self.port}/"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
