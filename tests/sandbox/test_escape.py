"""The escape suite: every command in a sandbox is hostile.

Each test makes one kind of attempt, asserts its concrete outcome (ENOENT, EROFS,
ECONNREFUSED, EPERM, an OOM kill, a timeout...), and then checks that the attacked
sandbox, a bystander sandbox and the server all still answer.
"""

# ruff: noqa: ASYNC240 - tests inspect host state (files, /proc) directly.

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sqlite3
import stat
import time
from pathlib import Path

import httpcore
import pytest

from sandforge.sandbox.base import (
    PathEscapeError,
    SandboxError,
)
from sandforge.sandbox.local import LocalSandbox, host_uid
from sandforge.sandbox.local.unix import NoFollowUnixBackend, connect_unix
from tests.sandbox.conftest import AssertAlive, HostListener, Rig
from tests.sandbox.helpers import SECRETS, python

# Everything a sandbox could have been handed by mistake (all but /usr, /proc and /dev,
# which are the system's, the sandbox's own processes, and endless device files).
SEARCHABLE = "/etc /home /opt /run /tmp /workspace 2>/dev/null"


# -- reading what is not the sandbox's -----------------------------------------------------------


async def test_read_etc_shadow(rig: Rig, assert_alive: AssertAlive) -> None:
    sandbox = await rig.create()
    result = await sandbox.exec(
        python("""
import errno
for path in ("/etc/shadow", "/etc/gshadow", "/root/.bashrc", "/etc/sudoers"):
    try:
        open(path, "rb").read()
        print(path, "READ")
    except OSError as exc:
        print(path, errno.errorcode[exc.errno])
""")
    )
    assert result.stdout.split("\n")[:4] == [
        "/etc/shadow ENOENT",
        "/etc/gshadow ENOENT",
        "/root/.bashrc ENOENT",
        "/etc/sudoers ENOENT",
    ]
    for path in ("/etc/shadow", "../../../../etc/shadow", "../etc/shadow"):
        with pytest.raises(PathEscapeError):
            await sandbox.read_file(path)
    await assert_alive(sandbox)


async def test_read_the_servers_database(rig: Rig, assert_alive: AssertAlive) -> None:
    db_path = rig.data_dir / "sandforge.db"
    with sqlite3.connect(db_path) as db:
        db.execute("create table secrets (value text)")
        db.execute("insert into secrets values ('the-database-secret')")
    sandbox = await rig.create()
    result = await sandbox.exec(
        python(f"""
import errno, os
for path in ({str(db_path)!r}, {str(rig.data_dir)!r}, "/proc/1/root{db_path}"):
    try:
        open(path, "rb").read()
        print("READ", path)
    except OSError as exc:
        print(errno.errorcode[exc.errno])
""")
        + f"grep -rl the-database-secret {SEARCHABLE}; true",
        timeout=60,
    )
    assert not result.timed_out
    # PID 1 is another user's: not even its view of the filesystem is open to a command.
    assert result.stdout.split() == ["ENOENT", "ENOENT", "EACCES"], result
    for path in ("../sandforge.db", "../../sandforge.db", "../../../sandforge.db", str(db_path)):
        with pytest.raises(PathEscapeError):
            await sandbox.read_file(path)
    await assert_alive(sandbox)


async def test_host_proc_1_environ_and_host_env(
    rig: Rig, assert_alive: AssertAlive, secret_env: dict[str, str]
) -> None:
    sandbox = await rig.create(env={"GIVEN": "by-the-spec"})
    result = await sandbox.exec(
        python("""
import os
print(open("/proc/1/cmdline", "rb").read().split(b"\\0")[0].decode())
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
print(len(pids))
for pid in pids:
    try:
        print(pid, open(f"/proc/{pid}/environ", "rb").read().replace(b"\\0", b" ").decode())
    except OSError as exc:
        print(pid, exc.strerror)
""")
        + "echo ENV; env"
    )
    first, count, *rest = result.stdout.splitlines()
    # PID 1 is bwrap's own init inside the sandbox's pid namespace, not the host's init.
    assert first.endswith("bwrap"), result
    assert int(count) <= 5, result.stdout  # init, the daemon, this shell, python
    for value in secret_env.values():
        assert value not in result.stdout
    env = dict(line.split("=", 1) for line in rest[rest.index("ENV") + 1 :] if "=" in line)
    assert env.pop("GIVEN") == "by-the-spec"
    assert set(env) <= {"PATH", "HOME", "LANG", "PWD", "SHLVL", "_", "OLDPWD"}, env
    assert not set(env) & set(SECRETS)
    await assert_alive(sandbox)


# -- writing outside the project dir ---------------------------------------------------------------


async def test_write_outside_the_project_dir(
    rig: Rig, assert_alive: AssertAlive, tmp_path: Path
) -> None:
    sandbox = await rig.create()
    marker = f"sandforge-escape-{os.getpid()}-{time.monotonic_ns()}"
    targets = ["/usr/bin/x", "/etc/passwd", "/etc/x", "/x", "/opt/sandforge/toolbox.py", "/bin/sh"]
    result = await sandbox.exec(
        python(f"""
import errno
for path in {targets!r}:
    try:
        with open(path, "ab") as f:
            f.write(b"pwned")
        print("WROTE", path)
    except OSError as exc:
        print(errno.errorcode[exc.errno])
open("/tmp/{marker}", "w").write("private tmp")
print(open("/tmp/{marker}").read())
""")
    )
    # Files that are root's are refused by the permission check before the read-only mount.
    expected = ["EROFS", "EACCES", "EROFS", "EROFS", "EACCES", "EACCES", "private tmp"]
    assert result.stdout.split("\n")[: len(targets) + 1] == expected, result
    assert not Path("/tmp", marker).exists()  # the sandbox's /tmp is its own

    before = sorted(p.name for p in rig.provider.sandboxes_dir.iterdir())
    for path in ("../x", "../../x", "/etc/passwd", "a/../../x", "/tmp/x"):
        with pytest.raises(PathEscapeError):
            await sandbox.write_file(path, b"pwned")
    assert sorted(p.name for p in rig.provider.sandboxes_dir.iterdir()) == before
    assert not (rig.provider.sandboxes_dir / "x").exists()
    assert b"pwned" not in Path("/etc/passwd").read_bytes()
    await assert_alive(sandbox)


async def test_planted_symlinks_do_not_lead_file_operations_out(
    rig: Rig, assert_alive: AssertAlive
) -> None:
    sandbox = await rig.create()
    planted = await sandbox.exec(
        "ln -s / root && ln -s /etc/passwd pw && mkdir d && ln -s .. d/up "
        "&& ln -s /workspace/real.txt alias && echo real > real.txt && mkfifo fifo"
    )
    assert planted.exit_code == 0, planted

    for path in ("root/etc/passwd", "pw", "d/up/real.txt", "alias", "root/workspace/real.txt"):
        with pytest.raises(PathEscapeError):
            await sandbox.read_file(path)
    for path in ("root/tmp/x", "pw", "root/etc/x", "d/up/x", "alias"):
        with pytest.raises(PathEscapeError):
            await sandbox.write_file(path, b"pwned")
    started = time.monotonic()
    with pytest.raises(SandboxError, match="not a regular file"):
        await sandbox.read_file("fifo")  # a FIFO would block a naive open forever
    with pytest.raises(SandboxError, match="not a regular file"):
        await sandbox.write_file("fifo", b"x")
    assert time.monotonic() - started < 5

    listed = {entry.path for entry in await sandbox.list_files()}
    assert {"root", "pw", "d", "d/up", "alias", "real.txt"} <= listed
    assert not any(p.startswith(("root/", "d/up/")) for p in listed)
    await sandbox.delete_file("root")  # removes the link, never what it points at
    check = await sandbox.exec("test -L root || echo gone; head -1 /etc/passwd; cat real.txt")
    assert check.stdout == "gone\nroot:x:0:0::/root:/bin/sh\nreal\n", check
    await assert_alive(sandbox)


async def test_the_sandbox_runs_on_its_image_and_sees_none_of_the_hosts_software(
    rig: Rig, assert_alive: AssertAlive
) -> None:
    sandbox = await rig.create()
    # What the host installed on its own (/usr/local, /opt) or from its own packages (/usr):
    # none of it is in the image.
    host_tools = ["chromium", "bwrap", "psql", "redis-server", "docker"]
    local_bin = Path("/usr/local/bin")
    host_tools += [tool.name for tool in (local_bin.iterdir() if local_bin.is_dir() else [])]
    result = await sandbox.exec(
        "ls -A /usr/local/bin; echo --; ls -A /opt; echo --; "
        f"for tool in {' '.join(host_tools)}; do command -v $tool; done; echo --; "
        ". /usr/lib/os-release && echo $VERSION_CODENAME; echo --; "
        "node --version && npm --version && git --version && python3 --version && cc --version",
        timeout=60,
    )
    usr_local, opt, found, release, versions = result.stdout.split("--\n")
    assert usr_local == "" and opt.split() == ["sandforge"], result
    assert found == "", result
    # The image's Debian release, whatever the host runs; its node, npm, git, python3, cc.
    assert release.strip() == rig.launcher.rootfs.spec.suite, result
    assert result.exit_code == 0 and len(versions.splitlines()) >= 5, result
    node = versions.splitlines()[0].removeprefix("v")
    image_node = next(line for line in rig.launcher.rootfs.manifest() if line.startswith("nodejs "))
    assert image_node.split()[1].startswith(node), (node, image_node)
    await assert_alive(sandbox)


# -- the network -----------------------------------------------------------------------------------


CONNECT = """
import errno, socket
for host, port in {targets!r}:
    s = socket.socket()
    s.settimeout(3)
    code = s.connect_ex((host, port))
    s.close()
    print(host, port, errno.errorcode.get(code, code))
"""


async def test_host_loopback_is_unreachable(
    rig: Rig, assert_alive: AssertAlive, host_listener: HostListener
) -> None:
    sandbox = await rig.create()
    targets = [("127.0.0.1", host_listener.port), ("127.0.0.1", 5432), ("10.0.2.2", 5432)]
    result = await sandbox.exec(python(CONNECT.format(targets=targets)))
    assert result.stdout.splitlines() == [
        f"127.0.0.1 {host_listener.port} ECONNREFUSED",
        "127.0.0.1 5432 ECONNREFUSED",
        "10.0.2.2 5432 ENETUNREACH",
    ], result
    assert host_listener.connections == []
    # Abstract unix sockets belong to the network namespace: the host's are out of reach too.
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    name = f"sandforge-test-{os.getpid()}"
    abstract.bind("\0" + name)
    abstract.listen(1)
    try:
        result = await sandbox.exec(
            python(f"""
import errno, socket
s = socket.socket(socket.AF_UNIX)
print(errno.errorcode[s.connect_ex("\\0{name}")])
""")
        )
        assert result.stdout.strip() == "ECONNREFUSED", result
    finally:
        abstract.close()
    await assert_alive(sandbox)


# -- other sandboxes and the server ----------------------------------------------------------------


async def test_other_sandboxes_and_the_server_are_out_of_sight(
    rig: Rig, assert_alive: AssertAlive
) -> None:
    a = await rig.create()
    b = await rig.create()
    await b.write_file("b-secret.txt", b"only b may read this")
    await b.start_process("marker", "exec sleep 1000")
    b_bwrap = rig.launcher.host_pid(b.id)
    assert b_bwrap is not None
    b_pids = sorted(rig.launcher.cgroup(b.id).pids())
    server_pid = os.getpid()
    b_files = rig.provider.sandboxes_dir / b.id
    assert host_uid(a.id) != host_uid(b.id)

    result = await a.exec(
        python(f"""
import errno, os, signal
print(sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
for pid in {[server_pid, b_bwrap, *b_pids]!r}:
    try:
        os.kill(pid, signal.SIGKILL)
        print("KILLED", pid)
    except OSError as exc:
        print(errno.errorcode[exc.errno])
for path in ({str(b_files)!r}, "/run/sandforge/{b.id}", "/proc/{b_bwrap}/root"):
    try:
        os.listdir(path)
        print("LISTED", path)
    except OSError as exc:
        print(errno.errorcode[exc.errno])
""")
        + f"grep -rl 'only b may read' {SEARCHABLE}; ps -eo comm="
    )
    assert not result.timed_out
    lines = result.stdout.splitlines()
    own_pids = json.loads(lines[0])
    assert len(own_pids) <= 6, lines[0]  # init, daemon, shell, python, and no one else's
    kills = lines[1 : 2 + len(b_pids) + 1]
    assert kills == ["ESRCH"] * (2 + len(b_pids)), result
    assert lines[2 + len(b_pids) + 1 : 2 + len(b_pids) + 4] == ["ENOENT"] * 3, result
    processes = lines[2 + len(b_pids) + 4 :]
    assert "sleep" not in processes and "bwrap" in processes, processes
    assert (await b.process_status("marker")).running
    await assert_alive(a, b)


async def test_tiocsti_injection_is_refused(rig: Rig, assert_alive: AssertAlive) -> None:
    sandbox = await rig.create()
    result = await sandbox.exec(
        python("""
import errno, fcntl, os, pty, termios
for fd in (0, 1, 2):
    try:
        fcntl.ioctl(fd, termios.TIOCSTI, b"x")
        print("INJECTED", fd)
    except OSError as exc:
        print(errno.errorcode[exc.errno])
try:
    os.open("/dev/tty", os.O_RDWR)
    print("HAS A TTY")
except OSError as exc:
    print(errno.errorcode[exc.errno])
main, child = pty.openpty()
for fd in (main, child):
    for request in (termios.TIOCSTI, 0x541C):  # TIOCLINUX
        try:
            fcntl.ioctl(fd, request, b"x")
            print("INJECTED")
        except OSError as exc:
            print(errno.errorcode[exc.errno])
print(os.getsid(0) != os.getsid(1))
""")
    )
    assert result.stdout.split() == ["EPERM"] * 3 + ["ENXIO"] + ["EPERM"] * 4 + ["True"], result
    await assert_alive(sandbox)


async def test_kernel_attack_surface_is_closed(rig: Rig, assert_alive: AssertAlive) -> None:
    sandbox = await rig.create()
    result = await sandbox.exec(
        python("""
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
calls = {"keyctl": (250, 0, 0), "bpf": (321, 0, 0, 0), "userfaultfd": (323, 0),
         "io_uring_setup": (425, 1, 0), "unshare(CLONE_NEWUSER)": (272, 0x10000000),
         "ptrace(PTRACE_ATTACH, 1)": (101, 16, 1), "mount": (165, 0, 0, 0, 0)}
for name, args in calls.items():
    ret = libc.syscall(*[ctypes.c_long(a) for a in args])
    print(name, ret, errno.errorcode[ctypes.get_errno()])
status = dict(l.split(":\\t", 1) for l in open("/proc/self/status").read().splitlines())
print(status["CapEff"].strip(), status["CapBnd"].strip(), status["NoNewPrivs"].strip())
print(os.getuid(), os.getgid(), os.getgroups())
""")
    )
    lines = result.stdout.splitlines()
    assert all(line.endswith("-1 EPERM") for line in lines[:7]), result
    assert lines[7] == "0000000000000000 0000000000000000 1"
    assert lines[8] == "1000 1000 []"
    await assert_alive(sandbox)


# -- the toolbox daemon and bwrap's init -------------------------------------------------------

# What a command can try against the sandbox's own PID 1 (bwrap's init) and PID 2 (the daemon).
INSIDERS = (1, 2)
STEAL = """
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
def steal(pid):
    # Every fd of `pid` this process can copy with pidfd_getfd, and the last error.
    pidfd = libc.syscall(434, pid, 0)  # pidfd_open
    if pidfd < 0:
        return [], errno.errorcode[ctypes.get_errno()]
    fds = [libc.syscall(438, pidfd, fd, 0) for fd in range(64)]  # pidfd_getfd
    return [fd for fd in fds if fd >= 0], errno.errorcode[ctypes.get_errno()]
"""


async def test_pidfd_getfd_takes_nothing_from_the_daemon(
    rig: Rig, assert_alive: AssertAlive
) -> None:
    sandbox = await rig.create()
    result = await sandbox.exec(
        python(
            STEAL
            + f"""
for pid in {INSIDERS!r}:
    stolen, why = steal(pid)
    print(pid, len(stolen), why)
libc.syscall(440, 0, 0, 0, 0, 0)  # process_madvise
print(errno.errorcode[ctypes.get_errno()])
"""
        )
    )
    # pidfd_open, pidfd_getfd and process_madvise are not the commands' to call.
    assert result.stdout.splitlines() == ["1 0 EPERM", "2 0 EPERM", "EPERM"], result
    await assert_alive(sandbox)


async def test_the_daemons_memory_and_fds_are_closed_to_commands(
    rig: Rig, assert_alive: AssertAlive
) -> None:
    sandbox = await rig.create()
    result = await sandbox.exec(
        python(f"""
import errno, os
for pid in {INSIDERS!r}:
    for path in (f"/proc/{{pid}}/mem", f"/proc/{{pid}}/fd/1", f"/proc/{{pid}}/environ"):
        try:
            open(path, "r+b").close()
            print(path, "OPENED")
        except OSError as exc:
            print(path, errno.errorcode[exc.errno])
    try:
        os.listdir(f"/proc/{{pid}}/fd")
        print(pid, "fds LISTED")
    except OSError as exc:
        print(pid, "fds", errno.errorcode[exc.errno])
""")
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 8 and not any(line.endswith(("OPENED", "LISTED")) for line in lines)
    assert all(line.endswith(("EACCES", "EPERM")) for line in lines), result
    await assert_alive(sandbox)


async def test_commands_cannot_signal_the_daemon_or_init(
    rig: Rig, assert_alive: AssertAlive
) -> None:
    sandbox = await rig.create()
    result = await sandbox.exec(
        python(f"""
import errno, os, signal
for pid in {INSIDERS!r}:
    for sig in (0, signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
            print(pid, sig, "SIGNALLED")
        except OSError as exc:
            print(pid, sig, errno.errorcode[exc.errno])
""")
    )
    assert [line.split()[2] for line in result.stdout.splitlines()] == ["EPERM"] * 6, result
    assert (await sandbox.exec("id -u")).stdout == "1000\n"  # the daemon still answers
    await assert_alive(sandbox)


GROW_EVERY_FD = (
    STEAL
    + """
import os
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
for pid in (1, 2):
    fds += steal(pid)[0]
grown = []
for fd in fds:
    if libc.fallocate(fd, 1, 0, 256 << 20) == 0:  # FALLOC_FL_KEEP_SIZE
        grown.append(os.readlink(f"/proc/self/fd/{fd}"))
print("grown:", grown, "tried:", len(fds))
"""
)


async def test_fallocate_through_every_inherited_fd_grows_nothing_on_the_host(
    rig: Rig, assert_alive: AssertAlive
) -> None:
    sandbox = await rig.create(disk_mb=64)
    log = rig.provider.sandboxes_dir / sandbox.id / "sandbox.log"
    await sandbox.write_file("grow.py", GROW_EVERY_FD.encode())
    result = await sandbox.exec("python3 grow.py")
    assert result.stdout.startswith("grown: [] tried:"), result
    await sandbox.start_process("grower", "exec python3 grow.py")  # a process's fds, too
    status = await wait_for_log(sandbox, "grower", "tried:")
    assert "grown: []" in status, status
    assert os.stat(log).st_blocks * 512 < 1 << 20  # the host file the sandbox once held

    # No process of the sandbox holds a file on the host's disk at all.
    host_disk = os.stat(rig.data_dir).st_dev
    bwrap = rig.launcher.host_pid(sandbox.id)
    for pid in rig.launcher.cgroup(sandbox.id).pids() - {bwrap}:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(FileNotFoundError):
                target = os.stat(fd)
                assert not (stat.S_ISREG(target.st_mode) and target.st_dev == host_disk), (
                    pid,
                    os.readlink(fd),
                )
    await assert_alive(sandbox)


async def wait_for_log(sandbox: LocalSandbox, name: str, text: str) -> str:
    for _ in range(500):
        status = await sandbox.process_status(name)
        if text in status.log_tail or not status.running:
            return status.log_tail
        await asyncio.sleep(0.02)
    return status.log_tail


# -- the host's sockets ----------------------------------------------------------------------------


async def test_replacing_sockets_with_symlinks_never_redirects_the_host(
    rig: Rig, assert_alive: AssertAlive, tmp_path: Path
) -> None:
    host_socket = tmp_path / "host.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(host_socket))
    listener.listen(4)
    listener.setblocking(False)
    try:
        sandbox = await rig.create()
        serve = "python3 -m http.server 3000 --bind 127.0.0.1"
        await sandbox.start_process("web", serve)
        upstream = await sandbox.upstream(3000)
        # Inside, the run dir holds no socket of the host's: there is nothing to swap.
        swap = await sandbox.exec(
            f"ls -A /run/sandforge; ln -sf {host_socket} /run/sandforge/toolbox.sock && "
            f"mkdir -p /run/sandforge/ports && ln -sf {host_socket} /run/sandforge/ports/3000.sock"
            " && echo planted"
        )
        assert swap.stdout.split() == ["logs", "planted"], swap
        assert (await sandbox.exec("echo still the daemon")).stdout == "still the daemon\n"
        assert upstream.uds is not None and Path(upstream.uds).parent.parent.name == "ctl"
        assert (await sandbox.upstream(3000)).uds == upstream.uds

        # Defence in depth: had a symlink reached the host's own socket directory, the
        # host's connects refuse it rather than follow it.
        ctl = rig.provider.sandboxes_dir / sandbox.id / "ctl"
        real = ctl / "toolbox.sock"
        real.rename(ctl / "real.sock")
        real.symlink_to(host_socket)
        with pytest.raises(SandboxError, match="not a socket"):
            await sandbox.exec("echo hi")
        with pytest.raises(SandboxError, match="not a socket"):
            connect_unix(str(real))
        port_sock = Path(upstream.uds)
        port_sock.rename(ctl / "ports" / "real-3000.sock")
        port_sock.symlink_to(host_socket)
        with pytest.raises(httpcore.ConnectError):
            await NoFollowUnixBackend().connect_unix_socket(str(port_sock))
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody ever connected to the host's socket
        real.unlink()
        (ctl / "real.sock").rename(real)
        await assert_alive(sandbox)
    finally:
        listener.close()
