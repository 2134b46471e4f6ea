"""Network: loopback only by default; opt-in egress that still cannot reach the host."""

# ruff: noqa: ASYNC240 - tests inspect host state (/proc) directly.

from __future__ import annotations

from pathlib import Path

import pytest

from sandforge.sandbox.local.slirp import SLIRP_DNS
from sandforge.sandbox.local.users import toolbox_host_uid
from tests.sandbox.conftest import AssertAlive, HostListener, Rig
from tests.sandbox.helpers import python

CONNECT = """
import errno, socket
for host, port in {targets!r}:
    s = socket.socket()
    s.settimeout(5)
    code = s.connect_ex((host, port))
    s.close()
    print(host, port, errno.errorcode.get(code, code))
"""


def _require_egress(rig: Rig) -> None:
    problem = rig.launcher.isolation().egress_problem
    if problem:
        pytest.skip(problem)


async def test_no_network_but_loopback_by_default(rig: Rig) -> None:
    sandbox = await rig.create()
    result = await sandbox.exec(
        "cat /proc/net/route | wc -l; ls /sys/class/net 2>/dev/null || cat /proc/net/dev | "
        "tail -n +3 | cut -d: -f1; test -e /etc/resolv.conf || echo no-resolv.conf; "
        "getent hosts registry.npmjs.org || echo no-dns"
    )
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert lines == ["1", "lo", "no-resolv.conf", "no-dns"], result


async def test_egress_has_a_route_and_dns_but_never_the_hosts_loopback(
    rig: Rig, assert_alive: AssertAlive, host_listener: HostListener
) -> None:
    _require_egress(rig)
    sandbox = await rig.create(network="egress")
    setup = await sandbox.exec("cat /etc/resolv.conf; tail -n +2 /proc/net/route")
    lines = setup.stdout.splitlines()
    assert lines[0] == f"nameserver {SLIRP_DNS}"
    default = [line.split() for line in lines[1:] if line.split()[1] == "00000000"]
    assert default and default[0][0] == "tap0" and default[0][2] == "0202000A"  # via 10.0.2.2

    targets = [
        ("127.0.0.1", host_listener.port),  # the sandbox's own loopback
        ("10.0.2.2", host_listener.port),  # slirp's gateway: the host, loopback disabled
        ("127.0.0.1", 5432),
        ("10.0.2.2", 5432),  # Postgres on the host's 127.0.0.1
    ]
    result = await sandbox.exec(python(CONNECT.format(targets=targets)), timeout=60)
    outcomes = [line.split()[2] for line in result.stdout.splitlines()]
    assert outcomes[0] == outcomes[2] == "ECONNREFUSED", result
    assert outcomes[1] in ("ECONNREFUSED", "ENETUNREACH", "EHOSTUNREACH"), result
    assert outcomes[3] in ("ECONNREFUSED", "ENETUNREACH", "EHOSTUNREACH"), result
    assert host_listener.connections == []

    # slirp4netns is the sandbox's: its cgroup, and the uid that owns its user namespace.
    slirp = [
        pid
        for pid in rig.launcher.cgroup(sandbox.id).pids()
        if Path(f"/proc/{pid}/comm").read_text().strip() == "slirp4netns"
    ]
    assert slirp
    status = Path(f"/proc/{slirp[0]}/status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:] == [str(toolbox_host_uid(sandbox.id))] * 4
    await assert_alive(sandbox)


async def test_egress_reaches_the_npm_registry(rig: Rig) -> None:
    _require_egress(rig)
    sandbox = await rig.create(network="egress")
    probe = await sandbox.exec(
        python(CONNECT.format(targets=[("registry.npmjs.org", 443)])), timeout=30
    )
    if not probe.stdout.strip().endswith(" 0"):
        pytest.skip(
            f"the npm registry is not reachable from the sandbox's namespace here: "
            f"{(probe.stdout + probe.stderr).strip()}"
        )
    result = await sandbox.exec("npm view is-number version", timeout=120)
    assert (result.exit_code, result.stdout.strip()) == (0, "7.0.0"), result
