"""Lifecycle of local sandboxes: stop/start, delete, server exit and crash, previews, refusal."""

# ruff: noqa: ASYNC240 - tests inspect host state (cgroups, mounts, /proc) directly.

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import pytest

from sandforge.config import Settings
from sandforge.errors import InsufficientStorage
from sandforge.sandbox.base import (
    HostDiskFull,
    SandboxNotFound,
    SandboxSpec,
    SandboxState,
    SandboxStopped,
    SandboxUnavailable,
)
from sandforge.sandbox.http import upstream_client, wait_until_ready
from sandforge.sandbox.local import BwrapLauncher, LocalSandboxProvider, host_uid
from sandforge.sandbox.local.disk import IMAGE_NAME, attached_loops, stage_dir
from sandforge.sandbox.local.isolation import Isolation, Mode, probe_isolation
from sandforge.sandbox.local.rootfs import Rootfs, RootfsMissing
from sandforge.sandbox.providers import make_provider
from tests.sandbox.conftest import Rig, require_isolation
from tests.sandbox.helpers import SECRETS, wait_for

SERVE = "python3 -m http.server 3000 --bind 127.0.0.1"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too; only its parent has not collected it yet.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


async def test_sandboxes_created_at_once_all_answer(rig: Rig) -> None:
    # The first creations in a data dir race to make the disk image template.
    sandboxes = await asyncio.gather(*(rig.create() for _ in range(4)))
    results = await asyncio.gather(*(s.exec("echo $(id -u) > me && cat me") for s in sandboxes))
    assert [r.stdout for r in results] == ["1000\n"] * 4
    assert len({host_uid(s.id) for s in sandboxes}) == 4


async def test_stop_and_start_keep_the_files(rig: Rig) -> None:
    sandbox = await rig.create()
    await sandbox.write_file("app/index.html", b"<h1>kept</h1>")
    made = await sandbox.exec("echo from-a-command > made.txt && echo cached > ~/.cache-note")
    assert made.exit_code == 0
    cgroup = rig.launcher.cgroup(sandbox.id)
    pids = cgroup.pids()
    assert pids

    await sandbox.stop()
    assert (await sandbox.info()).state == SandboxState.STOPPED
    with pytest.raises(SandboxStopped, match="is not running"):
        await sandbox.exec("true")
    assert not any(_alive(pid) for pid in pids)
    assert not cgroup.exists()
    assert not os.path.ismount(stage_dir(sandbox.id))

    await sandbox.start()
    assert (await sandbox.info()).state == SandboxState.STARTED
    assert await sandbox.read_file("app/index.html") == b"<h1>kept</h1>"
    again = await sandbox.exec("cat made.txt ~/.cache-note")
    assert again.stdout == "from-a-command\ncached\n"


async def test_delete_removes_the_dir_the_cgroup_the_mount_and_the_sockets(rig: Rig) -> None:
    sandbox = await rig.create()
    await sandbox.start_process("web", SERVE)
    upstream = await sandbox.upstream(3000)
    directory = rig.provider.sandboxes_dir / sandbox.id
    image = directory / IMAGE_NAME
    cgroup = rig.launcher.cgroup(sandbox.id)
    pids = cgroup.pids()
    assert upstream.uds and Path(upstream.uds).exists()
    assert attached_loops(image) and cgroup.exists() and os.path.ismount(stage_dir(sandbox.id))

    await sandbox.delete()
    assert not directory.exists()
    assert not cgroup.exists()
    assert not stage_dir(sandbox.id).exists()
    assert not Path(upstream.uds).exists()
    assert await wait_for(lambda: not attached_loops(image))
    assert not any(_alive(pid) for pid in pids)
    with pytest.raises(SandboxNotFound):
        await rig.provider.get(sandbox.id)


async def test_two_sandboxes_serve_port_3000_without_a_host_port(rig: Rig) -> None:
    sandboxes = [await rig.create(), await rig.create()]
    for sandbox in sandboxes:
        await sandbox.write_file("index.html", f"<h1>{sandbox.id}</h1>".encode())
        await sandbox.start_process("web", SERVE)
    for sandbox in sandboxes:
        readiness = await wait_until_ready(sandbox, 3000, "web", timeout=30)
        assert readiness.ready, readiness
        async with upstream_client(await sandbox.upstream(3000)) as client:
            response = await client.get("/index.html")
        assert response.text == f"<h1>{sandbox.id}</h1>"

    # Their listening sockets live in their own network namespaces: none is the host's.
    sandbox_sockets = set()
    for sandbox in sandboxes:
        for pid in rig.launcher.cgroup(sandbox.id).pids():
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd) if fd.is_symlink() else ""
                if target.startswith("socket:["):
                    sandbox_sockets.add(target[8:-1])
    host_listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                host_listening.add(fields[9])
    assert sandbox_sockets and not sandbox_sockets & host_listening


async def test_graceful_server_exit_leaves_no_sandbox_process(tmp_path: Path) -> None:
    require_isolation()
    launcher = BwrapLauncher()
    provider = LocalSandboxProvider(tmp_path / "sandboxes", launcher)
    try:
        sandboxes = [await provider.create(SandboxSpec()) for _ in range(2)]
        if launcher.isolation().egress_problem == "":
            sandboxes.append(await provider.create(SandboxSpec(network="egress")))
        pids = set()
        for sandbox in sandboxes:
            await sandbox.start_process("sleeper", "sleep 1000 & setsid sleep 1000 & wait")
            pids |= launcher.cgroup(sandbox.id).pids()
        assert len(pids) >= 6
    finally:
        await launcher.close()
    assert await wait_for(lambda: not any(_alive(pid) for pid in pids))
    for sandbox in sandboxes:
        assert not launcher.cgroup(sandbox.id).exists()
        assert not stage_dir(sandbox.id).exists()
        assert (await sandbox.info()).state == SandboxState.STOPPED


CRASHING_SERVER = """
import asyncio, json, sys
from pathlib import Path
from sandforge.sandbox.base import SandboxSpec
from sandforge.sandbox.local import BwrapLauncher, LocalSandboxProvider

async def main() -> None:
    launcher = BwrapLauncher()
    provider = LocalSandboxProvider(Path(sys.argv[1]), launcher)
    sandbox = await provider.create(SandboxSpec())
    await sandbox.write_file("survivor.txt", b"written before the crash")
    await sandbox.start_process("sleeper", "setsid sleep 1000")
    pids = sorted(launcher.cgroup(sandbox.id).pids())
    ids = [sandbox.id]
    if not launcher.isolation().egress_problem:  # slirp4netns must go too
        egress = await provider.create(SandboxSpec(network="egress"))
        pids += sorted(launcher.cgroup(egress.id).pids())
        ids.append(egress.id)
    print(json.dumps({"ids": ids, "pids": pids}), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_crashed_server_leaves_no_process_and_a_new_one_sees_stopped(
    tmp_path: Path,
) -> None:
    require_isolation()
    sandboxes_dir = tmp_path / "sandboxes"
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CRASHING_SERVER,
        str(sandboxes_dir),
        stdout=asyncio.subprocess.PIPE,
    )
    assert server.stdout is not None
    line = await asyncio.wait_for(server.stdout.readline(), 60)
    started = json.loads(line)
    ids, pids = started["ids"], started["pids"]
    sandbox_id = ids[0]
    assert len(pids) >= 4

    server.send_signal(signal.SIGKILL)  # no cleanup code runs
    await server.wait()
    assert await wait_for(lambda: not any(_alive(pid) for pid in pids))

    # The next server owns no bwrap for them, so they read as stopped...
    launcher = BwrapLauncher()
    provider = LocalSandboxProvider(sandboxes_dir, launcher)
    try:
        infos = await provider.list()
        assert sorted(i.id for i in infos) == sorted(ids)
        assert {i.state for i in infos} == {SandboxState.STOPPED}
        # ...and at start-up it frees what the dead one left: the mounts and the cgroups.
        assert all(os.path.ismount(stage_dir(i)) for i in ids)
        assert await launcher.recover(sandboxes_dir) == sorted(ids)
        for stale in ids:
            assert not stage_dir(stale).exists()
            assert not launcher.cgroup(stale).exists()
        assert await launcher.recover(sandboxes_dir) == []

        sandbox = await provider.get(sandbox_id)
        await sandbox.start()
        assert await sandbox.read_file("survivor.txt") == b"written before the crash"
    finally:
        await launcher.recover(sandboxes_dir)
        for info in await provider.list():
            await (await provider.get(info.id)).delete()
        await launcher.close()


async def test_another_launcher_reports_a_sandbox_it_does_not_own_as_stopped(rig: Rig) -> None:
    sandbox = await rig.create()
    other = LocalSandboxProvider(rig.provider.sandboxes_dir, BwrapLauncher())
    [mine] = await rig.provider.list()
    [theirs] = await other.list()
    assert mine.state == SandboxState.STARTED and theirs.state == SandboxState.STOPPED
    assert (await sandbox.exec("echo fine")).stdout == "fine\n"


async def test_no_new_sandbox_below_the_free_disk_floor(tmp_path: Path) -> None:
    sandboxes_dir = tmp_path / "data" / "sandboxes"
    disk = os.statvfs(tmp_path)
    free_mb = disk.f_bavail * disk.f_frsize >> 20
    floor = free_mb + 1024  # more than this disk has to give
    settings = Settings(data_dir=tmp_path / "data", min_free_disk_mb=floor)
    launcher = BwrapLauncher()
    try:
        provider = make_provider("local", settings, launcher)
        with pytest.raises(HostDiskFull) as refused:
            await provider.create(SandboxSpec())
        assert isinstance(refused.value, InsufficientStorage) and refused.value.http_status == 507
        message = refused.value.message
        assert f"below the floor of {floor} MiB" in message
        assert "MiB free" in message and "SANDFORGE_MIN_FREE_DISK_MB" in message
        assert "sandforge sandboxes delete" in message
        assert not sandboxes_dir.exists() or list(sandboxes_dir.iterdir()) == []
    finally:
        await launcher.close()


async def test_no_sandbox_starts_before_its_image_is_built(tmp_path: Path) -> None:
    launcher = BwrapLauncher(rootfs=Rootfs(tmp_path / "images"))
    provider = LocalSandboxProvider(tmp_path / "sandboxes", launcher)
    try:
        with pytest.raises(RootfsMissing, match="run `sandforge templates prepare`") as refused:
            await provider.create(SandboxSpec())
        assert refused.value.http_status == 503 and refused.value.code == "rootfs_missing"
        assert list((tmp_path / "sandboxes").iterdir()) == []
    finally:
        await launcher.close()


# -- where bwrap cannot run ----------------------------------------------------------------------


async def test_refuses_to_start_without_bwrap_and_names_the_fix(tmp_path: Path) -> None:
    isolation = probe_isolation(bwrap=str(tmp_path / "no-such-bwrap"))
    assert not isolation.available and not isolation.namespaces
    assert "apt-get install bubblewrap" in isolation.problem
    assert "SANDFORGE_ALLOW_UNISOLATED=1" in isolation.problem
    provider = LocalSandboxProvider(tmp_path / "sandboxes", BwrapLauncher(isolation=isolation))
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        await provider.create(SandboxSpec())
    assert list((tmp_path / "sandboxes").iterdir()) == []


async def test_refuses_to_start_without_user_namespaces_and_names_the_fix() -> None:
    # A bwrap that fails the way it does where user namespaces are off. It must be
    # reachable by the unprivileged probe uid, so not under pytest's 0700 tmp dir.
    directory = Path(tempfile.mkdtemp(prefix="sandforge-fake-bwrap-"))
    directory.chmod(0o755)
    fake = directory / "bwrap"
    fake.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace, likely because "
        "the kernel does not allow non-privileged user namespaces.' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    try:
        isolation = probe_isolation(bwrap=str(fake))
    finally:
        shutil.rmtree(directory)
    assert not isolation.available
    assert "sysctl -w user.max_user_namespaces" in isolation.problem
    assert "No permissions to creating new namespace" in isolation.problem
    launcher = BwrapLauncher(isolation=isolation)
    with pytest.raises(SandboxUnavailable, match="user namespaces"):
        launcher.mode()


async def test_unisolated_runs_only_when_allowed(
    tmp_path: Path, secret_env: dict[str, str]
) -> None:
    isolation = probe_isolation(bwrap=str(tmp_path / "no-such-bwrap"))
    launcher = BwrapLauncher(allow_unisolated=True, isolation=isolation)
    assert launcher.mode() is Mode.NONE and not launcher.isolated
    provider = LocalSandboxProvider(tmp_path / "sandboxes", launcher)
    sandbox = await provider.create(SandboxSpec(env={"GIVEN": "yes"}))
    try:
        result = await sandbox.exec("echo $GIVEN; env")
        assert result.stdout.startswith("yes\n")
        assert not any(value in result.stdout for value in SECRETS.values())
        await sandbox.write_file("a.txt", b"on the host")
        assert (tmp_path / "sandboxes" / sandbox.id / "workspace" / "a.txt").read_bytes() == (
            b"on the host"
        )
    finally:
        await sandbox.delete()
        await launcher.close()


async def test_namespaces_without_limits_when_allowed(tmp_path: Path) -> None:
    require_isolation()
    isolation = Isolation(False, "sandbox limits cannot be enforced here: test", namespaces=True)
    with pytest.raises(SandboxUnavailable, match="limits cannot be enforced"):
        BwrapLauncher(isolation=isolation).mode()
    launcher = BwrapLauncher(allow_unisolated=True, isolation=isolation)
    assert launcher.mode() is Mode.NAMESPACES and not launcher.isolated
    provider = LocalSandboxProvider(tmp_path / "sandboxes", launcher)
    sandbox = await provider.create(SandboxSpec())
    try:
        result = await sandbox.exec("tr '\\0' ' ' < /proc/1/cmdline")
        assert result.stdout.startswith("/usr/bin/bwrap")
        await sandbox.write_file("x.txt", b"x")
        assert (await sandbox.exec("cat x.txt")).stdout == "x"
    finally:
        await sandbox.delete()
        await launcher.close()


async def test_a_sandbox_whose_daemon_died_reads_as_stopped_and_restarts(rig: Rig) -> None:
    sandbox = await rig.create()
    await sandbox.write_file("keep.txt", b"still here")
    # The daemon is the sandbox: when it dies (here at the host's hand, since no command may
    # signal it) the whole sandbox ends.
    [daemon] = [
        pid
        for pid in rig.launcher.cgroup(sandbox.id).pids()
        if Path(f"/proc/{pid}/comm").read_text().startswith("python")
    ]
    os.kill(daemon, signal.SIGKILL)
    for _ in range(250):
        if (await sandbox.info()).state == SandboxState.STOPPED:
            break
        await asyncio.sleep(0.02)
    assert (await sandbox.info()).state == SandboxState.STOPPED
    # The launcher notices by itself and frees the mount and the cgroup.
    assert await wait_for(lambda: not stage_dir(sandbox.id).exists())
    assert await wait_for(lambda: not rig.launcher.cgroup(sandbox.id).exists())
    await sandbox.start()
    assert await sandbox.read_file("keep.txt") == b"still here"
