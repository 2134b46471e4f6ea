"""Choosing a provider by name, with the configuration checks that come before any create."""

from __future__ import annotations

from ..config import SandboxProviderName, Settings
from .base import SandboxProvider, SandboxUnavailable
from .local import Launcher, LocalSandboxProvider

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
        from .daytona import DaytonaProvider

        return DaytonaProvider.from_settings(settings)
    return LocalSandboxProvider(settings.sandboxes_dir, launcher)


async def close_provider(provider: SandboxProvider) -> None:
    """Release a provider's clients (Daytona holds an HTTP session); local has none."""
    aclose = getattr(provider, "aclose", None)
    if aclose is not None:
        await aclose()
