"""Declarative Daytona images per project type: the stack's packages baked in once.

Daytona builds an image from the SDK's `Image` description and keeps the result for the
same Dockerfile, so sandboxes of a project type start with its packages already in the
project dir (`install_dependencies` then finds them and installs nothing), instead of
running `npm ci` or `pip install` on every create. The image starts from the same Debian
suite and packages as local sandboxes' (sandbox/system.py), so a project finds the same
Node, Python and tools on either provider.
"""

from __future__ import annotations

import base64
import posixpath
import shlex

from daytona import Image

from ...templates import ProjectTemplate
from ..system import SystemImage


def base_image(system: SystemImage) -> str:
    """Debian's official image of the suite: the packages come from the suite's own mirror."""
    return f"debian:{system.suite}-slim"


def _system_packages(system: SystemImage) -> str:
    return (
        "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
        f"--no-install-recommends {' '.join(system.packages)} && rm -rf /var/lib/apt/lists/*"
    )


def _write(path: str, content: bytes) -> str:
    """A RUN line writing `content` to `path`; no build context, so nothing to upload."""
    encoded = base64.b64encode(content).decode()
    directory = posixpath.dirname(path)
    return f"mkdir -p {shlex.quote(directory)} && echo {encoded} | base64 -d > {shlex.quote(path)}"


def template_image(
    template: ProjectTemplate, project_dir: str, system: SystemImage
) -> Image | None:
    """The image for `template`'s sandboxes, or None when it has no packages to bake in."""
    if not template.packages:
        return None
    commands = [_system_packages(system)]
    for packages in template.packages:
        for name in packages.lock_files:
            content = template.files.joinpath(name).read_bytes()
            commands.append(_write(posixpath.join(project_dir, name), content))
        commands.append(f"cd {shlex.quote(project_dir)} && {packages.install_command}")
    # The sandbox's user may not be the build's: it writes the project's own files here.
    commands.append(f"chmod -R a+rwX {shlex.quote(project_dir)}")
    return Image.base(base_image(system)).run_commands(*commands).workdir(project_dir)
