"""The web UI's libraries (CodeMirror 6, marked, DOMPurify): installed from the npm registry
once at set-up (`sandforge ui prepare`, which scripts/bootstrap runs) into a host cache, and
served from /static/vendor/. Users run no build step: the server only serves the files.

CodeMirror's packages import each other by bare names, which a browser cannot resolve, so they
are bundled once into one ES module with esbuild (installed from npm with them). marked and
DOMPurify ship ES modules that are copied as they are.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from starlette.staticfiles import StaticFiles

from ..config import machine_cache_dir
from ..errors import Unavailable

SOURCE = Path(__file__).with_name("web") / "vendor"
INPUTS = ("package.json", "package-lock.json", "codemirror.entry.js")
STAMP = ".sandforge-ui-sha256"
COPIED = {
    "marked.esm.js": "node_modules/marked/lib/marked.esm.js",
    "purify.es.mjs": "node_modules/dompurify/dist/purify.es.mjs",
}
BUNDLED = "codemirror.js"
SERVED = (BUNDLED, *COPIED)


class UiVendorError(Unavailable):
    code = "ui_vendor"


class VendorFiles(StaticFiles):
    """The cache's files; a 404 (not a server error) while `sandforge ui prepare` has not run,
    and the files once it has, without a restart."""

    async def check_config(self) -> None:
        if self.directory is not None and await asyncio.to_thread(os.path.isdir, self.directory):
            await super().check_config()


def default_root() -> Path:
    """Shared by every data dir of the host: the machine's cache as root, else the user's."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return machine_cache_dir("ui", Path(cache) / "sandforge" / "ui")


def _digest() -> str:
    digest = hashlib.sha256()
    for name in INPUTS:
        digest.update((SOURCE / name).read_bytes())
    return digest.hexdigest()


def ready(root: Path) -> bool:
    """Whether `root` holds the files this version of sandforge serves."""
    stamp = root / STAMP
    return stamp.is_file() and stamp.read_text() == _digest()


def _run(command: list[str], cwd: Path) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise UiVendorError(f"{' '.join(command[:2])} failed: {result.stderr.strip()[-2000:]}")


def prepare(root: Path) -> bool:
    """Install and bundle the UI's libraries into `root` unless they are there; True if it
    installed. Runs `npm ci` on the host, with network, once per change of the lock file."""
    if ready(root):
        return False
    npm = shutil.which("npm")
    if npm is None:
        raise UiVendorError("npm is not installed: run `apt-get install npm`")
    staging = root.with_name(root.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    work = staging / "build"
    work.mkdir(parents=True)
    for name in INPUTS:
        shutil.copyfile(SOURCE / name, work / name)
    _run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], work)
    _run(
        [
            str(work / "node_modules" / ".bin" / "esbuild"),
            "codemirror.entry.js",
            "--bundle",
            "--format=esm",
            "--minify",
            "--legal-comments=eof",
            f"--outfile={staging / BUNDLED}",
        ],
        work,
    )
    for served, installed in COPIED.items():
        shutil.copyfile(work / installed, staging / served)
    shutil.rmtree(work)
    (staging / STAMP).write_text(_digest())
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(root)
    return True


def missing_message(root: Path) -> str:
    return (
        f"The web UI's libraries are not installed in {root}: run `sandforge ui prepare` "
        "(scripts/bootstrap does) and reload the page."
    )
