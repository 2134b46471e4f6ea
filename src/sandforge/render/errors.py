"""The rendered check's errors."""

from __future__ import annotations

from ..errors import Unavailable


class RenderUnavailable(Unavailable):
    """The contained render browser cannot run here (no bwrap, no Chromium, launch failed)."""

    code = "render_unavailable"
