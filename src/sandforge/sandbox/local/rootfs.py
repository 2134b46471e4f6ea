"""The root filesystem local sandboxes see: a Debian image built once, shared read-only.

A sandbox's /usr (and /bin, /lib and the rest, links into it) and the few /etc files
programs read come from this image, never from the host: a project behaves the same on
any host, and the host's own tools (docker, kubectl, CUDA, whatever is in its /usr) are
out of sight. The image is built by mmdebstrap from Debian's packages (SystemImage: suite,
mirror, package list) into `<cache root>/<suite>-<key>/root`, where the key is a digest of
that spec, so a changed package list builds a new image beside the old. `packages.txt`
beside the tree lists every package's exact version, the pin of what was built; a snapshot
mirror (snapshot.debian.org) as SANDFORGE_ROOTFS_MIRROR rebuilds exactly that.

Template packages (node_modules, Python packages) are installed with the image's own npm
and python3 (`run_installer`), so what has compiled parts is built for the image.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path

from ...errors import Unavailable
from ..base import SandboxUnavailable
from ..system import DEFAULT_MIRROR, SystemImage
from .isolation import tool

STAMP = ".sandforge-rootfs"
TREE = "root"
MANIFEST = "packages.txt"
ETC_FROM_IMAGE = (
    "alternatives",
    "ca-certificates",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "ssl",
)
"""What a sandbox's /etc takes from the image; the rest of it is written by the launcher."""
_EXCLUDED_DOCS = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*")
_MANIFEST_LINE = "${Package} ${Version}\n"
HOST_TRUST = "/etc/ssl/certs/ca-certificates.crt"
_PASSED_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


class RootfsMissing(SandboxUnavailable):
    """The sandbox image is not built on this machine: the server's set-up is unfinished,
    nothing a request can change (503)."""

    code = "rootfs_missing"
    http_status = Unavailable.http_status


class Rootfs:
    """One image: where it lives, whether it is built, and building it."""

    def __init__(self, cache_root: Path, spec: SystemImage | None = None) -> None:
        self.spec = spec or SystemImage()
        self.cache_root = cache_root
        self.directory = cache_root / f"{self.spec.suite}-{self.spec.key}"

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def ready(self) -> bool:
        return (self.directory / STAMP).is_file()

    def tree(self) -> Path:
        """The built image's root dir, or RootfsMissing saying how to build it."""
        if not self.ready:
            raise RootfsMissing(
                f"The sandbox image ({self.spec.suite}, {len(self.spec.packages)} packages) is "
                f"not built on this machine: run `sandforge templates prepare` (scripts/"
                "bootstrap does; it takes a few minutes once) and try again."
            )
        return self.directory / TREE

    def manifest(self) -> list[str]:
        """`name version` of every package in the built image."""
        return (self.directory / MANIFEST).read_text().splitlines()

    def build(self) -> bool:
        """Build the image unless it is there; True if it built. Needs mmdebstrap and network
        to the mirror; as root, or where user namespaces let mmdebstrap map ids."""
        if self.ready:
            return False
        mmdebstrap = tool("mmdebstrap")
        if mmdebstrap is None:
            raise RootfsMissing(
                "mmdebstrap builds the sandbox image and is not installed: run "
                "`apt-get install mmdebstrap` (scripts/bootstrap does)"
            )
        self.cache_root.mkdir(parents=True, exist_ok=True)
        staging = self.directory.with_name(self.directory.name + ".staging")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        tree = staging / TREE
        result = subprocess.run(
            [mmdebstrap, *self._mmdebstrap_args(), str(tree), *self._sources()],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise RootfsMissing(
                f"building the sandbox image failed: {result.stderr.strip()[-2000:]}"
            )
        listed = subprocess.run(
            ["dpkg-query", f"--admindir={tree}/var/lib/dpkg", "-W", "-f", _MANIFEST_LINE],
            capture_output=True,
            text=True,
            check=True,
        )
        (staging / MANIFEST).write_text(listed.stdout)
        (staging / STAMP).write_text(json.dumps(dataclasses.asdict(self.spec) | {"key": self.key}))
        staging.chmod(0o755)
        shutil.rmtree(self.directory, ignore_errors=True)
        staging.rename(self.directory)
        self.cache_root.chmod(0o755)
        return True

    def _mmdebstrap_args(self) -> list[str]:
        args = [
            "--mode=auto",
            "--variant=minbase",
            "--quiet",
            f"--include={','.join(self.spec.packages)}",
            "--components=main",
            "--aptopt=Acquire::Retries 3",
        ]
        args += [f"--dpkgopt=path-exclude={pattern}" for pattern in _EXCLUDED_DOCS]
        return [*args, self.spec.suite]

    def _sources(self) -> list[str]:
        mirror = self.spec.mirror.rstrip("/")
        sources = [f"deb {mirror} {self.spec.suite} main"]
        if mirror == DEFAULT_MIRROR:
            security = mirror.replace("/debian", "/debian-security")
            sources.append(f"deb {security} {self.spec.suite}-security main")
        return sources

    def system_args(self) -> list[str]:
        """bwrap args giving a sandbox the image's /usr, its top-level links, and its /etc
        files (ETC_FROM_IMAGE) with the host's CA bundle; /etc itself must already be a dir."""
        tree = self.tree()
        argv = ["--ro-bind", str(tree / "usr"), "/usr"]
        for entry in sorted(tree.iterdir()):
            if entry.is_symlink() and os.readlink(entry).startswith("usr/"):
                argv += ["--symlink", os.readlink(entry), f"/{entry.name}"]
        for name in ETC_FROM_IMAGE:
            argv += ["--ro-bind-try", str(tree / "etc" / name), f"/etc/{name}"]
        # Which CAs to trust is the host's call, like its DNS: a mirror or a network behind
        # a company CA works in sandboxes (through egress or the bridge) as on the host.
        if Path(HOST_TRUST).is_file():
            argv += ["--ro-bind", HOST_TRUST, HOST_TRUST]
        return argv

    def run_installer(self, argv: list[str], work_dir: Path) -> subprocess.CompletedProcess[str]:
        """Run an install command on the image's tools with the host's network, `work_dir`
        writable at the same path. The host's trust store and proxy settings are used, as
        the host's own installs would (a mirror behind a company CA)."""
        bwrap = tool("bwrap") or "bwrap"
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": "/tmp",
            "LANG": "C.UTF-8",
            "SSL_CERT_FILE": HOST_TRUST,
            "PIP_CERT": HOST_TRUST,
            "NODE_EXTRA_CA_CERTS": HOST_TRUST,
            "npm_config_cafile": HOST_TRUST,
            **{name: os.environ[name] for name in _PASSED_ENV if name in os.environ},
        }
        command = [
            bwrap,
            "--die-with-parent",
            "--unshare-pid",
            "--unshare-ipc",
            "--dir",
            "/etc",
            *self.system_args(),
            "--ro-bind",
            "/etc/resolv.conf",
            "/etc/resolv.conf",
            "--ro-bind-try",
            "/etc/hosts",
            "/etc/hosts",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
            "--bind",
            str(work_dir),
            str(work_dir),
            "--chdir",
            str(work_dir),
            "--clearenv",
        ]
        for key, value in env.items():
            command += ["--setenv", key, value]
        return subprocess.run([*command, "--", *argv], capture_output=True, text=True, check=False)
