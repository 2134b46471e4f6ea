"""The toolbox daemon's file operations: read, write, delete and list in the project dir.

Part of the daemon (toolbox.py loads it from next to itself), so standard library only.
Every operation walks its path one directory at a time with O_NOFOLLOW and only ever opens
regular files, so a symlink or FIFO planted by a command can neither lead it elsewhere nor
hang it. Under full isolation the daemon does all this as the commands' user (its fsuid),
so it reaches exactly what commands reach.
"""

from __future__ import annotations

import binascii
import contextlib
import errno
import os
import posixpath
import stat
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .. import wire
else:
    import sandforge_wire as wire  # toolbox.py loads it before this module

LIST_LIMIT = 5000

Reply = dict[str, Any]


def parts(path: Any) -> list[str]:
    """The components of a path relative to the project dir, refusing any way out."""
    if not isinstance(path, str) or not path or "\x00" in path or path.startswith("/"):
        raise wire.Failure("path_escape", f"{path!r} is not a path relative to the project dir")
    clean = posixpath.normpath(path)
    if clean == ".":
        return []
    if clean == ".." or clean.startswith("../"):
        raise wire.Failure("path_escape", f"{path!r} points outside the project dir")
    return clean.split("/")


class Files:
    def __init__(self, root: str, max_file_bytes: int, skipped_dirs: frozenset[str]) -> None:
        self.root = root
        self.max_file_bytes = max_file_bytes
        self.skipped_dirs = skipped_dirs

    def _open_dir(self, names: list[str], create: bool = False) -> int:
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for name in names:
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(name, 0o755, dir_fd=fd)
                try:
                    child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                except OSError as exc:
                    if _is_symlink(name, fd):
                        raise wire.Failure(
                            "path_escape",
                            f"{name!r} is a symlink; file operations do not follow symlinks",
                        ) from exc
                    raise path_error(exc, name) from exc
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def read_file(self, req: dict[str, Any], fds: list[int]) -> Reply:
        names = parts(req["path"])
        if not names:
            raise wire.Failure("is_directory", "the project dir itself is not a file")
        dfd = self._open_dir(names[:-1])
        try:
            fd = os.open(names[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
        except OSError as exc:
            raise path_error(exc, req["path"]) from exc
        finally:
            os.close(dfd)
        with os.fdopen(fd, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if stat.S_ISDIR(mode):
                raise wire.Failure("is_directory", f"{req['path']!r} is a directory")
            if not stat.S_ISREG(mode):
                raise wire.Failure("not_a_file", f"{req['path']!r} is not a regular file")
            data = f.read(self.max_file_bytes + 1)
        if len(data) > self.max_file_bytes:
            raise wire.Failure(
                "file_too_large",
                f"{req['path']!r} is over the {self.max_file_bytes}-byte file limit",
            )
        return {"content_b64": binascii.b2a_base64(data, newline=False).decode()}

    def write_file(self, req: dict[str, Any], fds: list[int]) -> Reply:
        names = parts(req["path"])
        if not names:
            raise wire.Failure("is_directory", "the project dir itself is not a file")
        data = _b64decode(req["content_b64"])
        if len(data) > self.max_file_bytes:
            raise wire.Failure(
                "file_too_large",
                f"{len(data)} bytes is over the {self.max_file_bytes}-byte file limit",
            )
        dfd = self._open_dir(names[:-1], create=True)
        try:
            existed = True
            try:
                st = os.stat(names[-1], dir_fd=dfd, follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    raise wire.Failure(
                        "path_escape",
                        f"{req['path']!r} is a symlink; file operations do not follow symlinks",
                    )
            except FileNotFoundError:
                existed = False
            flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
            try:
                fd = os.open(names[-1], flags, 0o644, dir_fd=dfd)
            except OSError as exc:
                raise path_error(exc, req["path"]) from exc
        finally:
            os.close(dfd)
        with os.fdopen(fd, "wb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise wire.Failure("not_a_file", f"{req['path']!r} is not a regular file")
            try:
                f.truncate(0)
                f.write(data)
                f.flush()
            except OSError as exc:
                raise path_error(exc, req["path"]) from exc
        return {"created": not existed}

    def delete_file(self, req: dict[str, Any], fds: list[int]) -> Reply:
        names = parts(req["path"])
        if not names:
            raise wire.Failure("path_escape", "refusing to delete the project dir itself")
        dfd = self._open_dir(names[:-1])
        try:
            st = os.stat(names[-1], dir_fd=dfd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                import shutil  # only here: its import would slow every sandbox's start

                shutil.rmtree(names[-1], dir_fd=dfd)
            else:
                os.unlink(names[-1], dir_fd=dfd)
        except OSError as exc:
            raise path_error(exc, req["path"]) from exc
        finally:
            os.close(dfd)
        return {}

    def list_files(self, req: dict[str, Any], fds: list[int]) -> Reply:
        names = parts(req.get("path") or ".")
        dfd = self._open_dir(names)
        prefix = "/".join(names)
        entries: list[dict[str, Any]] = []
        try:
            for top, dirs, files, topfd in os.fwalk(".", dir_fd=dfd, follow_symlinks=False):
                dirs[:] = sorted(d for d in dirs if d not in self.skipped_dirs)
                rel_top = posixpath.normpath(posixpath.join(prefix, top)) if prefix else top
                for name in dirs + sorted(files):
                    rel = posixpath.normpath(posixpath.join(rel_top, name))
                    try:
                        st = os.stat(name, dir_fd=topfd, follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    is_dir = stat.S_ISDIR(st.st_mode)
                    entries.append(
                        {"path": rel, "size": 0 if is_dir else st.st_size, "is_dir": is_dir}
                    )
                    if len(entries) >= LIST_LIMIT:
                        return {"entries": entries, "truncated": True}
        finally:
            os.close(dfd)
        return {"entries": entries, "truncated": False}


def _b64decode(text: str) -> bytes:
    try:
        return binascii.a2b_base64(text)
    except binascii.Error as exc:
        raise wire.Failure("bad_request", f"content is not base64: {exc}") from exc


def path_error(exc: OSError, path: str) -> wire.Failure:
    if exc.errno == errno.ELOOP:
        return wire.Failure(
            "path_escape", f"{path!r} is a symlink; file operations do not follow symlinks"
        )
    if exc.errno == errno.ENOENT:
        return wire.Failure("file_not_found", f"{path!r} does not exist")
    if exc.errno == errno.ENOTDIR:
        return wire.Failure("file_not_found", f"{path!r} is not a directory")
    if exc.errno == errno.EISDIR:
        return wire.Failure("is_directory", f"{path!r} is a directory")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return wire.Failure("disk_full", f"{path!r}: the sandbox's disk is full")
    if exc.errno == errno.EFBIG:
        return wire.Failure("file_too_large", f"{path!r}: over the sandbox's file size limit")
    if exc.errno == errno.ENXIO:
        return wire.Failure("not_a_file", f"{path!r} is not a regular file")
    return wire.Failure("os_error", f"{path!r}: {exc.strerror}")


def _is_symlink(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False
