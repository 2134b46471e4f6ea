"""The rendered check: load a preview in a contained, warm Chromium and report what it shows.

A dev server that answers 200 can still show a blank page, throw in its script, miss
its own assets, or not be the app at all. `Renderer.check` records all of that (see
`RenderReport.problems()`), plus a screenshot.

Safety (paste-ready for the README)
-----------------------------------
The rendered check runs the generated app's JavaScript, so its browser is contained
like a sandbox:

- **Not root, sandboxed twice.** Chromium runs inside bubblewrap as a dedicated
  unprivileged uid (`setpriv`: no capabilities, no groups, no_new_privs) with new user,
  pid, ipc, uts, cgroup and network namespaces, an empty environment, a read-only /usr
  and a private /tmp. Chromium's own sandbox stays on (it nests its user namespaces
  inside ours); where the kernel refuses that, ours still holds it.
- **It can reach only the preview being checked.** Its network namespace has loopback
  only: no route to the host's 127.0.0.1, the sandforge API, the LAN or the internet,
  and so no way around the proxy for WebRTC, DNS or QUIC. Its one way out is a unix
  socket per browser context (a small forwarder inside the namespace relays to it),
  reachable only by the render uid and root, to a filtering HTTP proxy in the sandforge
  server. Every check gets a fresh context whose proxy admits exactly one host, that
  check's `<port>-<id>.<preview domain>`, and nothing once the check is over; the server's
  renderer checks preview hosts only. The proxy parses every request (inside CONNECT
  tunnels too) and checks both its target and its Host header before it forwards it to
  the sandforge server, so other previews, the API and everything else get 403.
  DevTools talks to the browser over a pipe, not a port.
- **Limits.** While several checks run at once, a browser compromised beyond Chromium's
  own sandbox could use another running check's slot: it could reach previews being
  checked at that moment, nothing else. Site isolation is off inside the render browser
  (a context reaches one origin, so it has nothing to keep apart). Third-party resources
  (CDNs, web fonts, APIs) are unreachable from the check by design, and reported apart
  from the app's own failures. The browser has no cgroup limits of its own yet.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .errors import RenderUnavailable
from .jail import CHROMIUM_ARGS, find_chromium
from .report import DEFAULT_NOT_APP_MARKERS, RenderReport, SourceError

if TYPE_CHECKING:
    from .renderer import Renderer

__all__ = [
    "CHROMIUM_ARGS",
    "DEFAULT_NOT_APP_MARKERS",
    "RenderReport",
    "RenderUnavailable",
    "Renderer",
    "SourceError",
    "check_render",
    "find_chromium",
]


def __getattr__(name: str) -> Any:
    # Playwright is optional (the `browser` extra), so it is imported only once a
    # Renderer is asked for; without it, the rest of sandforge still imports this package.
    if name == "Renderer":
        from .renderer import Renderer

        return Renderer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


async def check_render(
    url: str, screenshot_path: Path, chromium: str, timeout_s: float = 30.0
) -> RenderReport:
    """One check in a contained browser of its own, started and stopped for it.

    The sandforge server at 127.0.0.1 on the URL's port serves the preview. A long-lived
    `Renderer` does the same without a launch per check.
    """
    from .renderer import Renderer

    port = urlsplit(url).port or 80
    async with Renderer(upstream=("127.0.0.1", port), chromium=chromium, concurrency=1) as renderer:
        return await renderer.check(url, screenshot_path=screenshot_path, timeout_s=timeout_s)
