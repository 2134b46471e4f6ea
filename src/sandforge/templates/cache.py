"""The host's dependency cache per project type: installed once from the npm registry."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from ..sandbox.base import SandboxUnavailable
from . import TEMPLATES, ProjectTemplate

STAMP = ".sandforge-lock-sha256"


class TemplateCacheError(SandboxUnavailable):
    """A project type cannot be set up on this machine yet."""

    code = "template_cache"


def default_cache_root(data_dir: Path) -> Path:
    """World-readable when the server is root, because each sandbox runs as its own uid."""
    if os.geteuid() == 0:
        return Path("/var/cache/sandforge/templates")
    return data_dir / "template-cache"


def _lock_digest(template: ProjectTemplate) -> str:
    digest = hashlib.sha256()
    for name in template.lock_files:
        digest.update(template.files.joinpath(name).read_bytes())
    return digest.hexdigest()


def cache_dir(root: Path, template: ProjectTemplate) -> Path:
    return root / template.name


def dependency_path(root: Path, template: ProjectTemplate) -> Path:
    """The ready dependency dir for `template`, or TemplateCacheError saying how to fill it."""
    assert template.dependency_dir is not None
    directory = cache_dir(root, template)
    stamp = directory / STAMP
    if not stamp.exists() or stamp.read_text() != _lock_digest(template):
        raise TemplateCacheError(
            f"The {template.name} template's packages are not installed on this machine: run "
            "`sandforge templates prepare` (scripts/bootstrap does) and try again."
        )
    return directory / template.dependency_dir


def prepare(root: Path, template: ProjectTemplate) -> bool:
    """Install `template`'s packages into the cache unless its lock files are unchanged.

    Returns True if it installed. Runs `npm ci` on the host, with network, once.
    """
    if template.dependency_dir is None:
        return False
    directory = cache_dir(root, template)
    digest = _lock_digest(template)
    if (directory / STAMP).exists() and (directory / STAMP).read_text() == digest:
        return False
    npm = shutil.which("npm")
    if npm is None:
        raise TemplateCacheError("npm is not installed: run `apt-get install npm`")
    staging = directory.with_name(directory.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in template.lock_files:
        (staging / name).write_bytes(template.files.joinpath(name).read_bytes())
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=staging,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise TemplateCacheError(f"npm ci failed for {template.name}: {result.stderr.strip()}")
    (staging / STAMP).write_text(digest)
    for path in [staging, *staging.rglob("*")]:
        if path.is_symlink():
            continue
        # Each sandbox runs as its own uid: everything must be readable, nothing writable.
        path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
    shutil.rmtree(directory, ignore_errors=True)
    staging.rename(directory)
    root.chmod(0o755)
    return True


def prepare_all(root: Path) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    return [t.name for t in TEMPLATES.values() if prepare(root, t)]
