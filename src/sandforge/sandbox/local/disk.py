"""The disk cap: each local sandbox's files live on an ext4 image of `disk_mb` bytes.

Why an image: the cap must really hold. A periodic `du` notices a full disk only after
the fact (one command can write gigabytes between two checks, or exhaust inodes with
empty files), a tmpfs costs RAM and loses the files at stop, and project quotas need a
filesystem mounted with `prjquota`, which the data dir's usually is not. A loop-mounted
ext4 image enforces both bytes and inodes in the kernel, with ENOSPC inside the sandbox
only, and it persists across stop/start like any file.

    <sandboxes_dir>/<id>/disk.img                    sparse: only written blocks use host disk
    /run/sandforge/<id>/    (root, 0711)             the image, mounted while the sandbox runs
                       workspace/ home/ run/         (sandbox uid, 0700) bound into the sandbox
                       layers/<name>/upper work      what the sandbox wrote over a package cache
                       layers/<name>/merged          the overlay of the two, bound into it

A fresh image is a sparse copy of a template made once per size with mkfs.ext4
(~1 MB of real data), so creating a sandbox costs a copy and a mount, not a mkfs. The
image is mounted `nosuid,nodev,noatime` with online discard, so deleted files give their
blocks back to the host. The loop device is attached with autoclear: once the last
mount (the host's, detached at stop, and the sandbox's own mount namespace, gone when
its processes are) lets go, the kernel detaches it. Mounting needs CAP_SYS_ADMIN, i.e.
a server running as root.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import secrets
import shutil
import stat
import struct
import subprocess
import time
from pathlib import Path

STAGE_ROOT = Path("/run/sandforge")
IMAGE_NAME = "disk.img"
BYTES_PER_INODE = 8192
SUBDIRS = ("workspace", "home", "run", "layers")

_LOOP_CTL_GET_FREE = 0x4C82
_LOOP_CONFIGURE = 0x4C0A
_LO_FLAGS_AUTOCLEAR = 4
_LOOP_MAJOR = 7
_MS_NOSUID = 2
_MS_NODEV = 4
_MS_NOATIME = 1024
_MNT_DETACH = 2
_MOUNT_OPTIONS = b"noinit_itable,discard,errors=remount-ro"


class DiskError(Exception):
    pass


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def available() -> str | None:
    """None if images can be made and mounted here, else what is missing and the fix."""
    if os.geteuid() != 0:
        return "mounting sandbox disk images needs a server running as root"
    if shutil.which("mkfs.ext4") is None:
        return "mkfs.ext4 is not installed: run `apt-get install e2fsprogs`"
    if not Path("/dev/loop-control").exists():
        return "loop devices are unavailable (/dev/loop-control is missing): run `modprobe loop`"
    return None


def stage_dir(sandbox_id: str) -> Path:
    return STAGE_ROOT / sandbox_id


# -- images -------------------------------------------------------------------------------------


def _template(images_dir: Path, size_mb: int) -> Path:
    template = images_dir / f"ext4-{size_mb}m.img"
    if template.exists():
        return template
    images_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Unique per caller: two sandboxes created at once must never mkfs the same file.
    tmp = images_dir / f".{template.name}.{secrets.token_hex(8)}.tmp"
    with open(tmp, "wb") as f:
        f.truncate(size_mb << 20)
    result = subprocess.run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-m",
            "0",
            "-i",
            str(BYTES_PER_INODE),
            "-L",
            "sandforge",
            "-E",
            "nodiscard,lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0",
            str(tmp),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")},
    )
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise DiskError(f"mkfs.ext4 failed: {result.stderr.strip()}")
    os.replace(tmp, template)
    return template


def _sparse_copy(src: Path, dst: Path) -> None:
    """Copy only the data extents of `src`; holes stay holes."""
    tmp = dst.with_name(f".{dst.name}.{secrets.token_hex(8)}.tmp")
    try:
        with open(src, "rb") as s, open(tmp, "wb") as d:
            _copy_extents(s.fileno(), d.fileno(), src)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not keep the half-made copy
        raise


def _copy_extents(src_fd: int, dst_fd: int, src: Path) -> None:
    size = os.fstat(src_fd).st_size
    offset = 0
    while offset < size:
        try:
            start = os.lseek(src_fd, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                break
            raise
        end = os.lseek(src_fd, start, os.SEEK_HOLE)
        copied = start
        while copied < end:
            n = os.copy_file_range(src_fd, dst_fd, end - copied, copied, copied)
            if n <= 0:
                raise DiskError(f"short copy of {src}")
            copied += n
        offset = end
    os.ftruncate(dst_fd, size)


def ensure_image(sandbox_dir: Path, size_mb: int) -> Path:
    image = sandbox_dir / IMAGE_NAME
    if not image.exists():
        _sparse_copy(_template(sandbox_dir.parent / ".images", size_mb), image)
    return image


# -- loop devices and mounts --------------------------------------------------------------------


def _loop_config(backing_fd: int) -> bytes:
    # struct loop_config { u32 fd; u32 block_size; struct loop_info64 info; u64 reserved[8]; }
    info = struct.pack(
        "=QQQQQIIII64s64s32sQQ", 0, 0, 0, 0, 0, 0, 0, 0, _LO_FLAGS_AUTOCLEAR, b"", b"", b"", 0, 0
    )
    return struct.pack("=II", backing_fd, 0) + info + bytes(64)


def _attach_loop(backing_fd: int) -> tuple[str, int]:
    ctl = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
    try:
        for _ in range(20):
            number = fcntl.ioctl(ctl, _LOOP_CTL_GET_FREE)
            device = f"/dev/loop{number}"
            if not os.path.exists(device):
                with contextlib.suppress(FileExistsError):
                    os.mknod(device, 0o660 | stat.S_IFBLK, os.makedev(_LOOP_MAJOR, number))
            loop_fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
            try:
                fcntl.ioctl(loop_fd, _LOOP_CONFIGURE, _loop_config(backing_fd))
            except OSError as exc:
                os.close(loop_fd)
                if exc.errno == errno.EBUSY:  # another process took it first
                    continue
                raise
            return device, loop_fd
    finally:
        os.close(ctl)
    raise DiskError("no free loop device")


def attached_loops(image: Path) -> list[str]:
    """The loop devices still backed by `image` (the kernel holds them until released)."""
    wanted = {str(image), f"{image} (deleted)"}
    found = []
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        with contextlib.suppress(OSError):
            if backing.read_text().strip() in wanted:
                found.append(backing.parent.parent.name)
    return found


def wait_released(image: Path, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while attached_loops(image):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def unmount(target: Path) -> None:
    """Detach whatever is mounted on `target` (lazily: live users keep their view)."""
    libc = _libc()
    while os.path.ismount(target):
        if libc.umount2(os.fsencode(target), _MNT_DETACH) != 0:
            err = ctypes.get_errno()
            if err == errno.EINVAL:
                return
            raise DiskError(f"cannot unmount {target}: {os.strerror(err)}")


def mount_image(image: Path, target: Path, owner: int) -> None:
    """Mount `image` on `target` and make its subdirectories the sandbox user's."""
    unmount(target)
    if not wait_released(image):
        raise DiskError(f"{image} is still in use by an earlier run of this sandbox")
    backing = os.open(image, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        device, loop_fd = _attach_loop(backing)
    finally:
        os.close(backing)
    try:
        flags = _MS_NOSUID | _MS_NODEV | _MS_NOATIME
        if _libc().mount(device.encode(), os.fsencode(target), b"ext4", flags, _MOUNT_OPTIONS) != 0:
            err = ctypes.get_errno()
            raise DiskError(f"cannot mount {image}: {os.strerror(err)}")
    finally:
        os.close(loop_fd)  # autoclear: from here the mount holds the loop device
    try:
        root = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            os.fchown(root, 0, 0)
            os.fchmod(root, 0o711)
            for name in SUBDIRS:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o700, dir_fd=root)
                sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=root)
                try:
                    os.fchown(sub, owner, owner)
                    os.fchmod(sub, 0o700)
                finally:
                    os.close(sub)
        finally:
            os.close(root)
    except BaseException:
        unmount(target)
        raise


def make_user_dirs(workspace: Path, relative_dirs: list[str], owner: int) -> None:
    """Create the project-relative `relative_dirs` (the parents of read-only mounts, such as
    `frontend` for `frontend/node_modules`) as the sandbox user's, so bwrap does not create
    them as the daemon's and lock the commands out.

    The workspace is the sandbox's to shape: no component is followed through a symlink.
    """
    for relative in relative_dirs:
        fd = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            for part in Path(relative).parts:
                created = False
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o700, dir_fd=fd)
                    created = True
                try:
                    sub = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                except OSError as exc:
                    raise DiskError(f"{relative} in the project is not a directory") from exc
                if created:
                    os.fchown(sub, owner, owner)
                os.close(fd)
                fd = sub
        finally:
            os.close(fd)


def mount_package_layers(stage: Path, mounts: dict[str, str], owner: int) -> dict[str, str]:
    """Overlay each package cache (project-relative path → host dir) with a writable layer
    on the sandbox's disk; returns project-relative path → the merged dir to bind.

    The caches' files are world-writable under a root-only dir (templates/cache.py), so
    through the overlay the sandbox may change them, each change copied up to its own
    disk; the merged dir itself is `upper`, the sandbox user's (`owner`). Mounted by the
    server (root), these need nothing of bwrap's; unmounting the stage detaches them with it.
    """
    merged_dirs = {}
    for relative, lower in sorted(mounts.items()):
        base = stage / "layers" / relative.replace("/", "_")
        upper, work, merged = base / "upper", base / "work", base / "merged"
        # The launcher (the sandbox's daemon uid) only passes through `base` to `merged`;
        # `upper` and `work` are reached by the overlay alone (all under `layers`, 0700).
        for directory, mode in ((base, 0o711), (upper, 0o755), (work, 0o700), (merged, 0o755)):
            if directory.is_symlink():
                directory.unlink()
            directory.mkdir(mode=mode, exist_ok=True)
            directory.chmod(mode)
        os.chown(upper, owner, owner)
        shutil.rmtree(work / "work", ignore_errors=True)  # overlayfs's scratch, from a crash
        options = f"lowerdir={lower},upperdir={upper},workdir={work},xino=off".encode()
        flags = _MS_NOSUID | _MS_NODEV
        if _libc().mount(b"overlay", os.fsencode(merged), b"overlay", flags, options) != 0:
            err = ctypes.get_errno()
            raise DiskError(f"cannot overlay {lower} for {relative}: {os.strerror(err)}")
        merged_dirs[relative] = str(merged)
    return merged_dirs


def prepare_stage(sandbox_id: str) -> Path:
    STAGE_ROOT.mkdir(mode=0o711, parents=True, exist_ok=True)
    os.chmod(STAGE_ROOT, 0o711)
    target = stage_dir(sandbox_id)
    target.mkdir(mode=0o711, exist_ok=True)
    return target


def release(sandbox_id: str, image: Path | None, wait: bool = True) -> None:
    """Unmount the stage of `sandbox_id`, remove it and wait for the loop device to go."""
    target = stage_dir(sandbox_id)
    unmount(target)
    with contextlib.suppress(OSError):
        target.rmdir()
    if wait and image is not None:
        wait_released(image)
