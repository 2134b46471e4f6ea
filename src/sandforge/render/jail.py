"""The sandbox the render browser runs in, as a launcher script Playwright starts.

Playwright starts "the browser" as `executable_path` with its own arguments and talks
to it over fds 3 and 4 (`--remote-debugging-pipe`). The launcher written here keeps
that contract while it:

1. records its pid (which becomes bwrap's), so the Renderer can find its processes;
2. as root, drops to the render uid with setpriv (no capabilities, no groups,
   no_new_privs); as any other user it stays that user, which is not root either;
3. runs bwrap: new user, pid, ipc, uts, cgroup and network namespaces (the network
   namespace has loopback only), --die-with-parent, --new-session, an empty
   environment, a read-only /usr and a few /etc files, a private /proc, /dev and /tmp;
4. inside, starts the forwarder (forwarder.py) on the slot ports, then execs Chromium.

Nested user namespaces stay allowed, because Chromium's own sandbox is built on them.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..sandbox.local.isolation import drop_privileges, system_links, tool
from ..sandbox.local.users import PROBE_UID

RENDER_UID = PROBE_UID + 1
"""The render browser's host uid: no account uses it, and it is outside the sandboxes' uid
ranges (their commands', their daemons') and is not the isolation probe's."""
SLOT_PORT_BASE = 10_000
"""Slot i listens on 127.0.0.1:SLOT_PORT_BASE+i, inside the browser's own namespace."""
DEAD_PORT = 9
"""The default context's proxy: nothing listens there, so it reaches nothing."""
SOCKETS_INSIDE = "/run/render"
FORWARDER_INSIDE = "/run/forwarder.py"
TMP_MB = 1024
PIDFILE_ENV = "SANDFORGE_RENDER_PIDFILE"
DIR_PREFIX = "sandforge-render-"
LOCK_NAME = "lock"
SWEEP_AFTER_S = 60.0
HEADLESS_SHELLS = ("/usr/lib/chromium/chromium-headless-shell",)
"""Debian's binary itself: its /usr/bin wrapper keeps a shell waiting around it."""
CHROMIUM_ARGS = (
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--mute-audio",
    "--disable-quic",
    # A context reaches one origin only, so site isolation has nothing to keep apart;
    # without it the first navigation stays in the blank page's renderer, ~100 ms sooner.
    # Each context's window would also start a renderer for the omnibox popup's WebUI:
    # a third of the CPU a check costs, for a popup that headless never shows.
    "--disable-site-isolation-trials",
    "--disable-features=IsolateOrigins,site-per-process,WebUIOmniboxPopup,WebUIOmniboxAimPopup",
    # Defence in depth: the network namespace already has no route for WebRTC's UDP.
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
)
"""Chromium's own flags, whichever sandbox it is in."""
_ETC = (
    "/etc/fonts",
    "/etc/ld.so.cache",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/chromium.d",
    "/etc/chromium",
    "/var/cache/fontconfig",
)


def find_chromium(configured: str | None = None) -> str | None:
    if configured:
        return configured if Path(configured).exists() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def find_render_chromium(configured: str | None = None) -> str | None:
    """The browser for the rendered check: Chromium's headless shell when installed.

    The shell has no browser UI, so a fresh context (a window, in full Chromium) costs
    about half the CPU: twice the checks a machine can run.
    """
    if configured:
        return find_chromium(configured)
    shell = next((p for p in HEADLESS_SHELLS if Path(p).exists()), None)
    return shell or shutil.which("chromium-headless-shell") or find_chromium()


def problem() -> str | None:
    """Why the render browser cannot be contained here, or None when it can."""
    if tool("bwrap") is None:
        return "bubblewrap (bwrap) is not installed: run `apt-get install bubblewrap`"
    if os.geteuid() == 0 and tool("setpriv") is None:
        return "setpriv is not installed: run `apt-get install util-linux`"
    return None


def slot_port(index: int) -> int:
    return SLOT_PORT_BASE + index


def socket_name(index: int) -> str:
    return f"slot-{index}.sock"


@dataclass(frozen=True)
class Layout:
    """A renderer's private directory on the host.

    The directory itself is root's (or the server user's) and closed to others; the
    launcher inside it is executed by the server, so the render uid can never write it.
    `sockets/` belongs to the render uid: only it (and root) can reach the proxy.
    """

    root: Path

    @property
    def sockets(self) -> Path:
        return self.root / "sockets"

    @property
    def forwarder(self) -> Path:
        return self.root / "forwarder.py"

    @property
    def launcher(self) -> Path:
        return self.root / "launch.sh"

    def pidfile(self, generation: int) -> Path:
        return self.root / f"browser-{generation}.pid"


def create() -> tuple[Layout, int]:
    """A new renderer directory, and the fd of the lock that says it is in use.

    The lock goes with the process that holds it, however that process ends, so `sweep`
    can tell a directory left behind from one in use. Blocking: call it in a thread.
    """
    layout = Layout(Path(tempfile.mkdtemp(prefix=DIR_PREFIX)))
    fd = os.open(layout.root / LOCK_NAME, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return layout, fd


def sweep() -> None:
    """Remove what renderers that died without closing left behind; blocking.

    Only this user's directories whose lock nobody holds, and not brand new ones: a
    directory exists for an instant before its lock is taken.
    """
    for directory in Path(tempfile.gettempdir()).glob(f"{DIR_PREFIX}*"):
        try:
            info = directory.lstat()
            if info.st_uid != os.geteuid() or time.time() - info.st_mtime < SWEEP_AFTER_S:
                continue
            fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            shutil.rmtree(directory, ignore_errors=True)
        except BlockingIOError:
            pass  # in use
        finally:
            os.close(fd)


def prepare(layout: Layout, chromium: str, slots: int) -> None:
    """Write the forwarder and the launcher; blocking, so call it in a thread."""
    root = os.geteuid() == 0
    # 0711: the render uid (bwrap's) must reach forwarder.py and sockets/ by path,
    # and must not list or read anything else here.
    layout.root.mkdir(mode=0o711, parents=True, exist_ok=True)
    os.chmod(layout.root, 0o711)
    layout.sockets.mkdir(mode=0o700, exist_ok=True)
    if root:
        os.chown(layout.sockets, RENDER_UID, RENDER_UID)
    layout.forwarder.write_bytes(Path(__file__).with_name("forwarder.py").read_bytes())
    os.chmod(layout.forwarder, 0o644)
    layout.launcher.write_text(_launcher_script(layout, chromium, slots, root))
    os.chmod(layout.launcher, 0o700)


def _launcher_script(layout: Layout, chromium: str, slots: int, root: bool) -> str:
    python, python_binds = _python()
    forwards = [f"{slot_port(i)}={SOCKETS_INSIDE}/{socket_name(i)}" for i in range(slots)]
    inner = f"{shlex.quote(python)} -I -S {FORWARDER_INSIDE} {' '.join(forwards)}"
    argv = [
        *(drop_privileges(RENDER_UID) if root else []),
        *_bwrap_argv(layout, chromium, python_binds),
        "/bin/sh",
        "-c",
        f'{inner} && exec "$0" "$@"',
        chromium,
    ]
    return (
        "#!/bin/sh\n"
        "# Written by sandforge.render.jail: the render browser's sandbox.\n"
        f'[ -n "${PIDFILE_ENV}" ] && echo $$ > "${PIDFILE_ENV}"\n'
        f'exec {shlex.join(argv)} "$@"\n'
    )


def _bwrap_argv(layout: Layout, chromium: str, python_binds: list[str]) -> list[str]:
    argv = [
        tool("bwrap") or "bwrap",
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--setenv",
        "HOME",
        "/tmp",
        "--setenv",
        "PATH",
        "/usr/bin:/bin",
        "--setenv",
        "LANG",
        "C.UTF-8",
        "--hostname",
        "render",
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    argv += system_links()
    for path in _ETC:
        argv += ["--ro-bind-try", path, path]
    executable = str(Path(chromium).resolve().parent)
    if not executable.startswith("/usr/"):
        argv += ["--ro-bind", executable, executable]
    return [
        *argv,
        *python_binds,
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        str(TMP_MB << 20),
        "--tmpfs",
        "/tmp",
        "--ro-bind",
        str(layout.sockets),
        SOCKETS_INSIDE,
        "--ro-bind",
        str(layout.forwarder),
        FORWARDER_INSIDE,
        "--chdir",
        "/tmp",
        "--cap-drop",
        "ALL",
        "--",
    ]


def _python() -> tuple[str, list[str]]:
    """A Python for the forwarder inside the sandbox, and the binds that make it visible."""
    if Path("/usr/bin/python3").exists():
        return "/usr/bin/python3", []
    prefix = sys.base_prefix
    return str(Path(prefix) / "bin" / "python3"), ["--ro-bind", prefix, prefix]
