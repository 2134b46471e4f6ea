"""The package bridge: npm and pip install from the registries in a sandbox without egress,
from the bridge's cache the second time, and nothing but the registries is reachable."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sandforge.config import Settings
from sandforge.sandbox.local.registry import SOCKET_ROOT, Registries, RegistryBridge
from sandforge.templates import REACT
from sandforge.templates.cache import package_mounts
from tests.sandbox.conftest import HostListener, Rig
from tests.sandbox.helpers import python

PIP_PACKAGE = "tomli-w==1.2.0"
NPM_PACKAGE = "is-number@7.0.0"
REACT_MANIFESTS = ("package.json", "package-lock.json")
NPM_INSTALL = (
    "mkdir -p /tmp/app && cd /tmp/app && npm init -y >/dev/null && "
    f"npm install --no-audit --no-fund {NPM_PACKAGE}"
)
FETCH = """
import urllib.request, urllib.error
for url in {urls!r}:
    try:
        print(urllib.request.urlopen(url, timeout=10).status)
    except urllib.error.HTTPError as exc:
        print(exc.code)
"""
CONNECT = """
import errno, socket
for host, port in {targets!r}:
    s = socket.socket()
    s.settimeout(5)
    print(errno.errorcode.get(s.connect_ex((host, port)), "connected"))
"""


@pytest.fixture
def registry_bridge(tmp_path: Path) -> RegistryBridge:
    directory = SOCKET_ROOT if os.geteuid() == 0 else tmp_path
    return RegistryBridge(directory / f"test-{os.getpid()}.sock", tmp_path / "cache", Registries())


async def test_npm_and_pip_install_without_egress_and_nothing_else_is_reachable(
    rig: Rig, registry_bridge: RegistryBridge, host_listener: HostListener
) -> None:
    sandbox = await rig.create(packages=True)  # network "none": loopback only

    pip = await sandbox.exec(f"pip install {PIP_PACKAGE}", timeout=180)
    assert pip.exit_code == 0, pip
    imported = await sandbox.exec("python3 -c 'import tomli_w; print(tomli_w.dumps({\"a\": 1}))'")
    assert imported.stdout.strip() == "a = 1", imported
    # Recorded for the project, as npm records in package.json.
    assert await sandbox.read_file("requirements.txt") == f"{PIP_PACKAGE}\n".encode()
    npm = await sandbox.exec(NPM_INSTALL, timeout=180)
    assert npm.exit_code == 0, npm
    manifest = json.loads((await sandbox.exec("cat /tmp/app/package.json")).stdout)
    assert manifest["dependencies"] == {"is-number": "^7.0.0"}

    # Only the registries' paths: not another host, not a way out of the prefixes.
    urls = [
        "http://127.0.0.1:4873/npm/is-number",
        "http://127.0.0.1:4873/http://example.com/",
        "http://127.0.0.1:4873/npm/../../etc/passwd",
        "http://127.0.0.1:4873/pypi/files/../simple/six/",
    ]
    fetched = await sandbox.exec(python(FETCH.format(urls=urls)), timeout=60)
    assert fetched.stdout.split() == ["200", "404", "404", "404"], fetched
    # Any other address stays unreachable from the same sandbox: no route at all.
    host_ip = "10.0.2.2"
    targets = [("1.1.1.1", 80), (host_ip, host_listener.port), ("127.0.0.1", 5432)]
    connected = await sandbox.exec(python(CONNECT.format(targets=targets)), timeout=60)
    assert connected.stdout.split() == ["ENETUNREACH", "ENETUNREACH", "ECONNREFUSED"], connected
    assert host_listener.connections == []

    # The second install needs no registry: the bridge's cache answers, upstreams gone.
    dead = "http://127.0.0.1:9"
    registry_bridge.registries = Registries(npm=dead, pypi_simple=dead, pypi_files=dead)
    again = await rig.create(packages=True)
    pip = await again.exec(f"pip install {PIP_PACKAGE}", timeout=180)
    assert pip.exit_code == 0, pip
    npm = await again.exec(NPM_INSTALL, timeout=180)
    assert npm.exit_code == 0, npm


async def test_a_sandbox_without_the_bridge_has_no_registry(rig: Rig) -> None:
    sandbox = await rig.create()
    result = await sandbox.exec(f"pip install {PIP_PACKAGE}", timeout=60)
    assert result.exit_code != 0


async def test_npm_install_in_a_project_over_the_template_cache(
    rig: Rig, registry_bridge: RegistryBridge
) -> None:
    """node_modules is the template's cache with the sandbox's own writable layer over it:
    npm adds a package (recorded in package.json), the template's packages stay, and
    neither the cache nor another sandbox sees the change."""
    cache = package_mounts(Settings().template_cache, REACT, rig.launcher.rootfs.key)
    starter = {name: REACT.files.joinpath(name).read_bytes() for name in REACT_MANIFESTS}

    sandbox = await rig.create(packages=True, package_mounts=cache)
    for name, content in starter.items():
        await sandbox.write_file(name, content)
    installed = await sandbox.exec(f"npm install --no-audit --no-fund {NPM_PACKAGE}", timeout=180)
    assert installed.exit_code == 0, installed
    used = await sandbox.exec(
        "node -e \"console.log(require('is-number')(5), require('react').version)\"",
    )
    assert used.stdout.split()[0] == "true" and used.exit_code == 0, used
    manifest = json.loads(await sandbox.read_file("package.json"))
    assert manifest["dependencies"]["is-number"] == "^7.0.0"
    assert set(manifest["devDependencies"]) >= {"vite", "typescript"}

    assert not (Path(cache["node_modules"]) / "is-number").exists()
    other = await rig.create(packages=True, package_mounts=cache)
    missing = await other.exec("test -e node_modules/is-number")
    assert missing.exit_code == 1
    # The change lives on the sandbox's own disk: it survives a stop and start.
    await sandbox.stop()
    await sandbox.start()
    again = await sandbox.exec("node -e \"require('is-number')\"")
    assert again.exit_code == 0, again
