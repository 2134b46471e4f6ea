"""Choosing a provider by name, with the configuration checks that come before any create."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config import SandboxProviderName, Settings
from .base import SandboxProvider, SandboxUnavailable
from .local import Launcher, LocalSandboxProvider

if TYPE_CHECKING:
    from .daytona import DaytonaOptions

DAYTONA_KEY_MISSING = "DAYTONA_API_KEY not configured"


def check_provider(name: SandboxProviderName, settings: Settings) -> None:
    """Raise SandboxUnavailable if `name` cannot be used with these settings."""
    if name == "daytona" and settings.daytona_api_key is None:
        raise SandboxUnavailable(
            f"{DAYTONA_KEY_MISSING}: add DAYTONA_API_KEY to your .env (or environment) "
            "and restart sandforge"
        )


def make_provider(
    name: SandboxProviderName, settings: Settings, launcher: Launcher
) -> SandboxProvider:
    check_provider(name, settings)
    if name == "daytona":
        from .daytona import DaytonaProvider  # the SDK takes seconds to import; only when used

        return DaytonaProvider(daytona_options(settings))
    return LocalSandboxProvider(
        settings.sandboxes_dir, launcher, min_free_disk_mb=settings.min_free_disk_mb
    )


def daytona_options(settings: Settings) -> DaytonaOptions:
    """The Daytona provider's options from Settings (DAYTONA_* and SANDFORGE_DAYTONA_*)."""
    from .daytona import DaytonaOptions  # the SDK takes seconds to import; only when used

    check_provider("daytona", settings)
    assert settings.daytona_api_key is not None  # check_provider refuses a missing key
    return DaytonaOptions(
        api_key=settings.daytona_api_key.get_secret_value(),
        api_url=settings.daytona_api_url,
        target=settings.daytona_target,
        image=settings.daytona_image,
        snapshot=settings.daytona_snapshot,
        project_dir=settings.daytona_project_dir.rstrip("/") or "/",
        create_timeout_s=settings.daytona_create_timeout_s,
        cleanup_grace_s=settings.daytona_cleanup_grace_s,
        system=settings.system_image,
    )
