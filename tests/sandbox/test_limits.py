"""Limits: what a sandbox may use (processes, memory, disk, time, output) holds under attack.

Like the escape suite, each test makes one attempt, asserts its concrete outcome (EAGAIN,
an OOM kill, ENOSPC, a timeout, truncation), and checks that everything still answers.
"""

# ruff: noqa: ASYNC240 - tests inspect host state (cgroups, /proc, the image) directly.

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from sandforge.sandbox.base import SandboxDiskFull, SandboxFileTooLarge
from sandforge.sandbox.local import host_uid
from sandforge.sandbox.local.cgroups import Cgroup
from sandforge.sandbox.local.disk import IMAGE_NAME
from sandforge.sandbox.local.users import toolbox_host_uid
from tests.sandbox.conftest import AssertAlive, Rig
from tests.sandbox.helpers import python, wait_for

# -- exhausting resources --------------------------------------------------------------------------


async def test_fork_bomb_stops_at_the_pids_limit(rig: Rig, assert_alive: AssertAlive) -> None:
    sandbox = await rig.create(pids=64)
    counted = await sandbox.exec(
        python("""
import errno, os, time
children = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        children += 1
except OSError as exc:
    print(children, errno.errorcode[exc.errno])
"""),
        timeout=30,
    )
    children, error = counted.stdout.split()
    assert error == "EAGAIN" and 40 < int(children) < 64, counted
    # The killed children count until bwrap's init has reaped them, and the shell needs one
    # fork to set the bomb off (then none: a second would race the bomb for the last pids).
    cgroup = rig.launcher.cgroup(sandbox.id)
    assert await wait_for(lambda: pids_in_use(cgroup) < 16, timeout=30)
    bomb = await sandbox.exec("bomb() { bomb | bomb & }; bomb & exec sleep 3", timeout=10)
    assert bomb.exit_code == 0
    stats = rig.launcher.cgroup_stats(sandbox.id)
    assert stats["pids_max_hits"] > 0, stats
    # Once the exec is over its whole process group is gone: forks work again.
    await assert_alive(sandbox)
    assert len(rig.launcher.cgroup(sandbox.id).pids()) <= 4


def pids_in_use(cgroup: Cgroup) -> int:
    """The pids.current counter: processes and threads, the unreaped dead included."""
    return next(
        int((directory / "pids.current").read_text())
        for directory in cgroup.dirs
        if (directory / "pids.current").exists()
    )


async def test_allocating_4_gib_meets_the_oom_killer(rig: Rig, assert_alive: AssertAlive) -> None:
    sandbox = await rig.create(memory_mb=256)
    result = await sandbox.exec(
        "python3 -c 'b = bytearray(4 << 30); b[::4096] = b\"x\" * len(b[::4096])'", timeout=60
    )
    assert result.exit_code == 137, result  # SIGKILL
    assert rig.launcher.cgroup_stats(sandbox.id)["oom_kills"] >= 1
    await assert_alive(sandbox)


async def test_filling_the_disk_stops_at_the_cap(rig: Rig, assert_alive: AssertAlive) -> None:
    sandbox = await rig.create(disk_mb=64)
    result = await sandbox.exec("head -c 200M /dev/zero > big; echo $?; du -m big", timeout=60)
    status, size = result.stdout.split()[:2]
    assert status == "1" and int(size) < 64, result
    assert "No space left on device" in result.stderr
    with pytest.raises(SandboxDiskFull):
        await sandbox.write_file("more.bin", b"x" * (1 << 20))
    image = rig.provider.sandboxes_dir / sandbox.id / IMAGE_NAME
    assert os.stat(image).st_blocks * 512 <= 70 << 20  # the host spent at most the cap
    # Inodes are capped too: empty files cannot exhaust the host's.
    inodes = await sandbox.exec(
        'rm big && mkdir many && cd many && python3 -c "\n'
        "import errno\nn = 0\ntry:\n    while True:\n        open(str(n), 'w').close(); n += 1\n"
        'except OSError as exc:\n    print(n, errno.errorcode[exc.errno])"',
        timeout=120,
    )
    count, error = inodes.stdout.split()
    assert error == "ENOSPC" and int(count) < 20_000, inodes
    await sandbox.exec("rm -rf many")
    await sandbox.write_file("after.txt", b"room again")
    await assert_alive(sandbox)


async def test_an_infinite_loop_meets_the_exec_timeout(rig: Rig, assert_alive: AssertAlive) -> None:
    sandbox = await rig.create()
    started = time.monotonic()
    result = await sandbox.exec("sleep 1000 & while :; do :; done", timeout=1.0)
    elapsed = time.monotonic() - started
    assert result.timed_out and result.exit_code == 137, result
    assert 0.9 < elapsed < 5, elapsed
    left = await sandbox.exec("ps -eo args")
    assert "sleep 1000" not in left.stdout  # the whole process group went
    # The spec's default applies when the call gives none.
    quick = await rig.create(exec_timeout_s=0.5)
    result = await quick.exec("sleep 30")
    assert result.timed_out
    await assert_alive(sandbox, quick)


# -- caps on output and files ----------------------------------------------------------------------


async def test_output_and_file_size_caps(rig: Rig, assert_alive: AssertAlive) -> None:
    sandbox = await rig.create(output_cap_bytes=64 << 10, max_file_bytes=1 << 20)
    result = await sandbox.exec("yes | head -c 5000000; yes | head -c 100 >&2", timeout=30)
    assert not result.timed_out and result.stderr == "y\n" * 50
    assert result.truncated and len(result.stdout) == 64 << 10, len(result.stdout)
    with pytest.raises(SandboxFileTooLarge):
        await sandbox.write_file("big.bin", b"x" * ((1 << 20) + 1))
    await sandbox.exec("head -c 2M /dev/zero > made.bin")
    with pytest.raises(SandboxFileTooLarge):
        await sandbox.read_file("made.bin")
    await sandbox.write_file("fits.bin", b"x" * (1 << 20))
    assert len(await sandbox.read_file("fits.bin")) == 1 << 20
    await assert_alive(sandbox)


async def test_limits_are_written_to_the_cgroup(rig: Rig) -> None:
    sandbox = await rig.create(memory_mb=300, pids=77, cpu_weight=50)
    cgroup = rig.launcher.cgroup(sandbox.id)
    values = {}
    for directory in cgroup.dirs:
        for name in ("memory.limit_in_bytes", "memory.max", "pids.max", "cpu.shares", "cpu.weight"):
            if (directory / name).exists():
                values[name] = (directory / name).read_text().strip()
    if cgroup.version == 1:
        assert values == {
            "memory.limit_in_bytes": str(300 << 20),
            "pids.max": "77",
            "cpu.shares": "512",
        }
    else:
        assert values == {"memory.max": str(300 << 20), "pids.max": "77", "cpu.weight": "50"}
    # Every process of the sandbox is in it, bwrap included, as one of the sandbox's own two
    # users: never root on the host, and never another sandbox's.
    bwrap = rig.launcher.host_pid(sandbox.id)
    assert bwrap in cgroup.pids() and len(cgroup.pids()) >= 3
    own = {str(host_uid(sandbox.id)), str(toolbox_host_uid(sandbox.id))}
    for pid in cgroup.pids():
        status = Path(f"/proc/{pid}/status").read_text()
        uids = next(line for line in status.splitlines() if line.startswith("Uid:"))
        assert set(uids.split()[1:]) <= own, uids
