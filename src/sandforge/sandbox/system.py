"""What every sandbox's system holds, whichever provider runs it: a Debian suite and a list
of its packages. Local sandboxes run on an image built from it (local/rootfs.py), Daytona
sandboxes on a declarative image installing the same packages (daytona/images.py), so a
project sees the same Node, Python, git and build tools on both.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

SUITE = "trixie"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = (
    "build-essential",
    "ca-certificates",
    "curl",
    "git",
    "nodejs",
    "npm",
    "procps",
    "python3",
    "python3-dev",
    "python3-pip",
    "python3-venv",
)
"""Python 3 and pip, Node and npm, git and the usual build tools. More with
SANDFORGE_ROOTFS_PACKAGES (README: "Add a package to the sandbox image")."""
FORMAT = 1
"""Bumped when how an image is built changes, so every image is built again."""


@dataclass(frozen=True)
class SystemImage:
    """What a sandbox's system is built from; its key names a local image."""

    suite: str = SUITE
    mirror: str = DEFAULT_MIRROR
    extra_packages: tuple[str, ...] = ()

    @property
    def packages(self) -> tuple[str, ...]:
        return tuple(sorted({*BASE_PACKAGES, *self.extra_packages}))

    @property
    def key(self) -> str:
        described = json.dumps([FORMAT, self.suite, self.mirror.rstrip("/"), self.packages])
        return hashlib.sha256(described.encode()).hexdigest()[:16]
