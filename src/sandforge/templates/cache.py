"""The host's package cache per project type: installed once from the npm registry and PyPI.

Each of a template's package sets (`Packages`) gets a dir of its own, stamped with the
digest of its lock files and of the sandbox image it was installed with (its npm and
python3), which local sandboxes mount read-only.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import Unavailable
from ..sandbox.base import SandboxUnavailable
from ..sandbox.local.rootfs import Rootfs
from . import TEMPLATES, Packages, ProjectTemplate

STAMP = ".sandforge-lock-sha256"
FORMAT = 2
"""Bumped when how a cache is laid out changes (2: world-writable under a root-only dir)."""
INSTALLED_DIR = {"npm": "node_modules", "pip": "site"}


class TemplateCacheError(SandboxUnavailable):
    """A project type cannot be set up on this machine yet: the server's set-up is
    unfinished, nothing a request can change (503)."""

    code = "template_cache"
    http_status = Unavailable.http_status


def _lock_digest(template: ProjectTemplate, packages: Packages, image_key: str) -> str:
    digest = hashlib.sha256(f"{FORMAT} {image_key}".encode())
    for name in packages.lock_files:
        digest.update(template.files.joinpath(name).read_bytes())
    return digest.hexdigest()


def cache_dir(root: Path, template: ProjectTemplate, packages: Packages) -> Path:
    slug = packages.directory.replace("/", "_").lstrip(".")
    return root / f"{template.name}-{slug}"


def dependency_path(
    root: Path, template: ProjectTemplate, packages: Packages, image_key: str
) -> Path:
    """The package dir ready for the sandbox image `image_key`, or TemplateCacheError saying
    how to fill it."""
    directory = cache_dir(root, template, packages)
    stamp = directory / STAMP
    if not stamp.exists() or stamp.read_text() != _lock_digest(template, packages, image_key):
        raise TemplateCacheError(
            f"The {template.name} template's packages are not installed on this machine: run "
            "`sandforge templates prepare` (scripts/bootstrap does) and try again."
        )
    return directory / INSTALLED_DIR[packages.manager]


def package_mounts(root: Path, template: ProjectTemplate, image_key: str) -> dict[str, str]:
    """Project-relative mount point → host dir, for every package set of `template`."""
    return {
        p.directory: str(dependency_path(root, template, p, image_key)) for p in template.packages
    }


def _install_argv(packages: Packages, staging: Path) -> list[str]:
    """The install, run with the sandbox image's own npm and python3."""
    lock_names = [Path(name).name for name in packages.lock_files]
    if packages.manager == "npm":
        return ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"]
    return [
        "python3",
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "--break-system-packages",
        "--target",
        str(staging / INSTALLED_DIR["pip"]),
        "-r",
        str(staging / lock_names[0]),
    ]


def _prepare_packages(
    root: Path, template: ProjectTemplate, packages: Packages, rootfs: Rootfs
) -> bool:
    directory = cache_dir(root, template, packages)
    digest = _lock_digest(template, packages, rootfs.key)
    if (directory / STAMP).exists() and (directory / STAMP).read_text() == digest:
        return False
    staging = directory.with_name(directory.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in packages.lock_files:
        (staging / Path(name).name).write_bytes(template.files.joinpath(name).read_bytes())
    result = rootfs.run_installer(_install_argv(packages, staging), staging)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise TemplateCacheError(
            f"installing {template.name}'s {packages.manager} packages failed: "
            f"{result.stderr.strip()[-2000:]}"
        )
    (staging / STAMP).write_text(digest)
    for path in [staging, *staging.rglob("*")]:
        if path.is_symlink():
            continue
        # Each sandbox runs as its own uid and reaches a cache only as the lower layer of
        # its own overlay (or a read-only bind), where it may change anything: what it
        # changes is copied up to its own disk. On the host no one else gets in (`root`).
        path.chmod(0o777 if path.is_dir() or os.access(path, os.X_OK) else 0o666)
    shutil.rmtree(directory, ignore_errors=True)
    staging.rename(directory)
    return True


def prepare_all(root: Path, rootfs: Rootfs) -> list[str]:
    """Prepare every template's package sets, several at once: each is an install that
    waits on the registry far more than on the CPU."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    root.chmod(0o700)  # what is inside is world-writable (_prepare_packages)
    sets = [(t, p) for t in TEMPLATES.values() for p in t.packages]
    with ThreadPoolExecutor(max_workers=4) as pool:
        installed = list(pool.map(lambda pair: _prepare_packages(root, *pair, rootfs), sets))
    return sorted({t.name for (t, _), done in zip(sets, installed, strict=True) if done})
