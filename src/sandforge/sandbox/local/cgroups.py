"""One cgroup per local sandbox, on cgroup v1 or v2, for memory, pids and cpu.

Where the cgroups live:

- **v1** (one hierarchy per controller): under the server's own cgroup in each of the
  memory, pids and cpu hierarchies, as `<own>/sandforge/<sandbox id>`. Nesting keeps
  whatever limits and accounting the server itself runs under (a systemd slice, a
  container), so sandboxes can never add up to more than the server was given.
- **v2** (unified): `/sys/fs/cgroup/sandforge/<sandbox id>`, with memory, pids and cpu
  enabled in `subtree_control` on the way down. v2 forbids enabling controllers below a
  cgroup that holds processes, and the server's own cgroup does, so v2 sandboxes sit in
  a sibling tree of their own.

Limits written: v1 `memory.limit_in_bytes` and `memory.memsw.limit_in_bytes` (no swap),
`pids.max`, `cpu.shares`; v2 `memory.max`, `memory.swap.max` = 0, `pids.max`,
`cpu.weight`.

Processes are placed in the cgroup before bwrap starts (see launcher.py), so every
process of the sandbox, and slirp4netns for an egress sandbox, is counted from its
first instruction. Writing cgroup files needs root on v1, or a delegated subtree on v2.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

BASE_NAME = "sandforge"
V1_CONTROLLERS = ("memory", "pids", "cpu")
V2_CONTROLLERS = ("memory", "pids", "cpu")


@dataclass(frozen=True)
class Limits:
    memory_bytes: int
    pids: int
    cpu_weight: int


class CgroupError(Exception):
    pass


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _read_counters(path: Path) -> dict[str, int]:
    counters: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                counters[key] = int(value)
    return counters


@dataclass(frozen=True)
class Cgroup:
    """The cgroup directories of one sandbox: one per hierarchy on v1, one on v2."""

    version: int
    dirs: tuple[Path, ...]
    controllers: tuple[str, ...]
    """Parallel to `dirs`: the v1 controller of each, or ("unified",) on v2."""

    @property
    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self.dirs]

    def exists(self) -> bool:
        return any(d.is_dir() for d in self.dirs)

    def pids(self) -> set[int]:
        found: set[int] = set()
        for procs in self.procs_files:
            with contextlib.suppress(FileNotFoundError):
                found.update(int(p) for p in procs.read_text().split())
        return found

    def kill_all(self, timeout: float = 5.0) -> bool:
        """SIGKILL every process in the cgroup until it is empty; False if it never empties.

        Each pid is pinned with a pidfd and checked to still be a member before the
        signal, so a pid reused by an unrelated process is never hit.
        """
        deadline = time.monotonic() + timeout
        kill_file = self.dirs[0] / "cgroup.kill" if self.version == 2 else None
        while True:
            members = self.pids()
            if not members:
                return True
            if kill_file is not None and kill_file.exists():
                with contextlib.suppress(OSError):
                    _write(kill_file, "1")
            else:
                pinned: dict[int, int] = {}
                for pid in members:
                    with contextlib.suppress(OSError):
                        pinned[pid] = os.pidfd_open(pid)
                try:
                    still = self.pids()
                    for pid, pidfd in pinned.items():
                        if pid in still:
                            with contextlib.suppress(OSError):
                                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                finally:
                    for pidfd in pinned.values():
                        os.close(pidfd)
            if time.monotonic() >= deadline:
                return not self.pids()
            time.sleep(0.005)

    def remove(self, timeout: float = 5.0) -> None:
        """Kill what is left and remove the directories (a dying task can hold them briefly)."""
        self.kill_all(timeout)
        deadline = time.monotonic() + timeout
        for directory in self.dirs:
            while True:
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() >= deadline:
                        raise CgroupError(f"cannot remove cgroup {directory}: {exc}") from exc
                    self.kill_all(0.1)
                    time.sleep(0.01)

    def stats(self) -> dict[str, int]:
        """`oom_kills` and `pids_max_hits` so far: what the limits have stopped."""
        if self.version == 2:
            memory = _read_counters(self.dirs[0] / "memory.events")
            pids = _read_counters(self.dirs[0] / "pids.events")
            return {"oom_kills": memory.get("oom_kill", 0), "pids_max_hits": pids.get("max", 0)}
        by_name = dict(zip(self.controllers, self.dirs, strict=True))
        oom = (
            _read_counters(by_name["memory"] / "memory.oom_control") if "memory" in by_name else {}
        )
        pids = _read_counters(by_name["pids"] / "pids.events") if "pids" in by_name else {}
        return {"oom_kills": oom.get("oom_kill", 0), "pids_max_hits": pids.get("max", 0)}

    def usage(self) -> tuple[float | None, int | None]:
        """CPU seconds used so far and memory in use now, where the hierarchy counts them."""
        if self.version == 2:
            cpu_usec = _read_counters(self.dirs[0] / "cpu.stat").get("usage_usec")
            memory = _read_number(self.dirs[0] / "memory.current")
            return (cpu_usec / 1e6 if cpu_usec is not None else None), memory
        by_name = dict(zip(self.controllers, self.dirs, strict=True))
        cpu_ns = _read_number(by_name["cpu"] / "cpuacct.usage") if "cpu" in by_name else None
        memory = (
            _read_number(by_name["memory"] / "memory.usage_in_bytes")
            if "memory" in by_name
            else None
        )
        return (cpu_ns / 1e9 if cpu_ns is not None else None), memory


def _read_number(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


class CgroupDriver:
    """Creates, finds and removes sandbox cgroups under one base per hierarchy."""

    def __init__(self, version: int, bases: dict[str, Path]) -> None:
        self.version = version
        self.bases = bases
        """controller (v1) or "unified" (v2) -> the `sandforge` base directory."""

    def get(self, sandbox_id: str) -> Cgroup:
        return Cgroup(
            self.version,
            tuple(base / sandbox_id for base in self.bases.values()),
            tuple(self.bases),
        )

    def create(self, sandbox_id: str, limits: Limits) -> Cgroup:
        cgroup = self.get(sandbox_id)
        if cgroup.exists():
            # Left behind by a server that died: nothing of it may survive into the new run.
            cgroup.remove()
        for directory in cgroup.dirs:
            self._mkdir(directory)
        try:
            if self.version == 2:
                self._limit_v2(cgroup.dirs[0], limits)
            else:
                for controller, base in self.bases.items():
                    self._limit_v1_dir(controller, base / sandbox_id, limits)
        except BaseException:
            cgroup.remove()
            raise
        return cgroup

    def _mkdir(self, directory: Path) -> None:
        # Another server may prune an empty base between our mkdirs; make it again then.
        for _ in range(10):
            try:
                directory.parent.mkdir(mode=0o755, exist_ok=True)
                if self.version == 2:
                    _write(directory.parent / "cgroup.subtree_control", _V2_ENABLE)
                directory.mkdir(mode=0o755)
                return
            except FileNotFoundError:
                continue
        raise CgroupError(f"cannot create cgroup {directory}")

    @staticmethod
    def _limit_v1_dir(controller: str, directory: Path, limits: Limits) -> None:
        if controller == "memory":
            _write(directory / "memory.limit_in_bytes", str(limits.memory_bytes))
            memsw = directory / "memory.memsw.limit_in_bytes"
            if memsw.exists():
                _write(memsw, str(limits.memory_bytes))
        elif controller == "pids":
            _write(directory / "pids.max", str(limits.pids))
        elif controller == "cpu":
            _write(directory / "cpu.shares", str(max(2, limits.cpu_weight * 1024 // 100)))

    @staticmethod
    def _limit_v2(directory: Path, limits: Limits) -> None:
        _write(directory / "memory.max", str(limits.memory_bytes))
        swap = directory / "memory.swap.max"
        if swap.exists():
            _write(swap, "0")
        _write(directory / "pids.max", str(limits.pids))
        _write(directory / "cpu.weight", str(limits.cpu_weight))

    def prune(self) -> None:
        """Remove the `sandforge` bases if no sandbox cgroup is left in them."""
        for base in self.bases.values():
            with contextlib.suppress(OSError):
                base.rmdir()


# -- detection ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Mount:
    root: str
    point: Path
    fstype: str
    options: frozenset[str]


def _mounts(mountinfo: str) -> list[_Mount]:
    mounts = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        point = fields[4].replace("\\040", " ")
        mounts.append(_Mount(fields[3], Path(point), tail[0], frozenset(tail[2].split(","))))
    return mounts


def _own_paths(proc_cgroup: str) -> tuple[dict[str, str], str | None]:
    v1: dict[str, str] = {}
    v2: str | None = None
    for line in proc_cgroup.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            v2 = path
        for controller in controllers.split(","):
            if controller:
                v1[controller] = path
    return v1, v2


def _under(mount: _Mount, path: str) -> Path:
    if mount.root != "/" and (path == mount.root or path.startswith(mount.root + "/")):
        path = path[len(mount.root) :]
    return mount.point / path.lstrip("/")


def detect(
    mountinfo_path: str = "/proc/self/mountinfo", cgroup_path: str = "/proc/self/cgroup"
) -> CgroupDriver | str:
    """A driver for this machine, or a message saying why none works and how to fix it."""
    try:
        mounts = _mounts(Path(mountinfo_path).read_text())
        own_v1, own_v2 = _own_paths(Path(cgroup_path).read_text())
    except OSError as exc:
        return f"cannot read the cgroup layout ({exc})"

    unified = next((m for m in mounts if m.fstype == "cgroup2"), None)
    if unified is not None:
        try:
            available = set((unified.point / "cgroup.controllers").read_text().split())
        except OSError:
            available = set()
        if set(V2_CONTROLLERS) <= available:
            return _setup_v2(unified.point)

    bases: dict[str, Path] = {}
    for controller in V1_CONTROLLERS:
        mount = next((m for m in mounts if m.fstype == "cgroup" and controller in m.options), None)
        if mount is None:
            return f"the cgroup v1 {controller} controller is not mounted"
        bases[controller] = _under(mount, own_v1.get(controller, "/")) / BASE_NAME
    for controller, base in bases.items():
        try:
            base.mkdir(mode=0o755, exist_ok=True)
        except OSError as exc:
            return f"cannot create the {controller} cgroup {base} ({exc.strerror}); " + _FIX
    del own_v2
    return CgroupDriver(1, bases)


_FIX = (
    "run the sandforge server as root, or give it a delegated cgroup v2 subtree "
    "(systemd: Delegate=yes)"
)


_V2_ENABLE = " ".join(f"+{c}" for c in V2_CONTROLLERS)


def _setup_v2(root: Path) -> CgroupDriver | str:
    base = root / BASE_NAME
    try:
        _write(root / "cgroup.subtree_control", _V2_ENABLE)
        base.mkdir(mode=0o755, exist_ok=True)
        _write(base / "cgroup.subtree_control", _V2_ENABLE)
    except OSError as exc:
        return f"cannot set up the cgroup v2 tree {base} ({exc.strerror}); " + _FIX
    return CgroupDriver(2, {"unified": base})
