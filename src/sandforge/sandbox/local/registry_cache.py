"""The package bridge's disk cache, held under a size limit by evicting what was used least
recently.

Each entry is a body file named by its key and a `<key>.type` file beside it. Which entries
were used last is kept in memory, seeded from the files' mtimes when the bridge starts, so a
hit costs no disk write. An entry being served while it is evicted stays readable to that
reader (the file is only unlinked).
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from pathlib import Path

TYPE_SUFFIX = ".type"
PARTIAL_SUFFIX = ".part"
EVICT_TO = 0.9
"""Evicting goes a little below the limit, so a full cache does not evict on every fetch."""


class RegistryCache:
    """Bodies and content types of what the bridge fetched, at most `limit_bytes` in all."""

    def __init__(self, directory: Path, limit_bytes: int) -> None:
        self.directory = directory
        self.limit_bytes = limit_bytes
        self._sizes: OrderedDict[str, int] = OrderedDict()
        """key → bytes on disk (body and type), least recently used first."""
        self.total_bytes = 0
        # `added` runs in a worker thread while the event loop marks hits (`used`).
        self._lock = threading.Lock()

    def body(self, key: str) -> Path:
        return self.directory / key

    def content_type(self, key: str) -> Path:
        return self.directory / f"{key}{TYPE_SUFFIX}"

    def load(self) -> None:
        """Create the dir, drop unfinished downloads and index what is there, oldest first."""
        self.directory.mkdir(parents=True, exist_ok=True)
        entries: list[tuple[float, str, int]] = []
        for path in self.directory.iterdir():
            if path.name.endswith(PARTIAL_SUFFIX):
                with contextlib.suppress(OSError):
                    path.unlink()
            elif not path.name.endswith(TYPE_SUFFIX):
                with contextlib.suppress(OSError):
                    entries.append((path.stat().st_mtime, path.name, self._size_on_disk(path.name)))
        self._sizes.clear()
        self.total_bytes = 0
        for _, key, size in sorted(entries):
            self._sizes[key] = size
            self.total_bytes += size
        self.evict()

    def used(self, key: str) -> None:
        """`key` was just served: it is the last to go."""
        with self._lock:
            if key in self._sizes:
                self._sizes.move_to_end(key)

    def added(self, key: str) -> None:
        """`key` was just written; evicts older entries if the cache is now over its limit."""
        size = self._size_on_disk(key)
        with self._lock:
            self.total_bytes -= self._sizes.pop(key, 0)
            self._sizes[key] = size
            self.total_bytes += size
        self.evict(keep=key)

    def evict(self, keep: str | None = None) -> list[str]:
        """Remove the least recently used entries until the cache fits; returns their keys.
        `keep` (the entry being served) stays even when it alone is over the limit."""
        target = int(self.limit_bytes * EVICT_TO)
        evicted = []
        with self._lock:
            if self.total_bytes <= self.limit_bytes:
                return []
            for key in list(self._sizes):
                if self.total_bytes <= target:
                    break
                if key != keep:
                    self.total_bytes -= self._sizes.pop(key)
                    evicted.append(key)
        for key in evicted:
            for path in (self.body(key), self.content_type(key)):
                with contextlib.suppress(OSError):
                    path.unlink()
        return evicted

    def _size_on_disk(self, key: str) -> int:
        size = 0
        for path in (self.body(key), self.content_type(key)):
            with contextlib.suppress(OSError):
                size += path.stat().st_size
        return size
