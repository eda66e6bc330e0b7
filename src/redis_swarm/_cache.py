"""The cache of context texts, keyed by content hash: in the process, and optionally on disk.

A context version is immutable and named by the hash of its bytes (BLAKE3; SHA-256 for
versions published before it: ``_digest``), so a cached copy never
goes stale: an unchanged context costs one small round trip (read the pointer) and no
transfer. The on-disk layer (opt-in: ``ContextCache(directory=...)``) lets short-lived agent
processes (a ``claude -p`` per task) share what an earlier one fetched; files are checked
against their hash when read, so a damaged or tampered file is ignored, never served. The CLI
keeps one by default (``cli/_app``, under the swarm home).

Many processes share one directory at once: a file is written whole (a temporary file of its
own, renamed: a reader sees all of it or nothing), every process evicts by the files' times
(the least recently read go first), and whatever fails on the disk (unreadable, full, gone)
makes the cache a miss, never an error.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from . import _digest
from ._files import write_whole

__all__ = ["ContextCache"]

_VERSION = re.compile(r"[0-9a-f]{64}")
# A file being written (``write_whole``: ``.NAME.`` and mkstemp's random letters).
_TEMP = re.compile(r"\.[0-9a-f]{64}\.\w+")
# Values derived from a version (its decoded text, its line index) for the few versions in use.
_DERIVED_KEPT = 6
# Owners whose last read version is remembered (``may_hold``).
_OWNERS_KEPT = 1024
# A temporary file (``write_whole``'s ``.VERSION.xxxx``) older than this was left by a writer
# that died mid-write (a few MiB take milliseconds): eviction removes it.
_STALE_TEMP_S = 3600

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Text:
    """A version kept as its text; ``len`` is the size of its bytes (what the bound counts)."""

    text: str
    size: int

    def __len__(self) -> int:
        return self.size


DEFAULT_DISK_BYTES = 1024**3  # what ``directory`` holds at most unless told


class ContextCache:
    """A byte-bounded LRU of ``version -> bytes``; safe to share between threads. A version
    read as text is kept as its text alone (``put_text``), its bytes made from it on demand.

    ``directory``: also keep versions as files there (created if missing), up to
    ``max_disk_bytes`` (the least recently used files are removed beyond that).
    """

    def __init__(
        self,
        max_bytes: int = 256 * 1024 * 1024,
        *,
        directory: str | os.PathLike[str] | None = None,
        max_disk_bytes: int = DEFAULT_DISK_BYTES,
    ) -> None:
        self.max_bytes = max_bytes
        self.directory = Path(directory).expanduser() if directory is not None else None
        self.max_disk_bytes = max_disk_bytes
        # Set once a write to ``directory`` failed (a read-only home, a full disk, another
        # user's files): what is fetched now is not kept there, so nothing is fetched for it.
        self._disk_failed = False
        # A version read as text is kept as that text alone (``put_text``): its bytes are
        # made again from it if they are asked for.
        self._items: OrderedDict[str, bytes | _Text] = OrderedDict()
        self._size = 0
        self._derived: OrderedDict[tuple[str, str], Any] = OrderedDict()
        # owner (any string naming one: the swarm's key of it) -> the version last read
        self._owners: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, version: str) -> bytes | None:
        with self._lock:
            kept = self._items.get(version)
            if kept is not None:
                self._items.move_to_end(version)
                self.hits += 1
                if isinstance(kept, _Text):
                    kept = self._items[version] = kept.text.encode()
                return kept
        data = self._disk_get(version)
        with self._lock:
            if data is None:
                self.misses += 1
            else:
                self.hits += 1
        if data is not None:
            self._memory_put(version, data)
        return data

    def put(self, version: str, data: bytes) -> None:
        self._memory_put(version, data)
        self._disk_put(version, data)

    def put_text(self, version: str, text: str, data: bytes) -> None:
        """``put`` of ``data``, whose UTF-8 text is ``text``: memory keeps the text alone
        (half the memory, and the bytes are not kept alive), the disk the bytes."""
        self._memory_put(version, _Text(text, len(data)))
        self._disk_put(version, data)

    def known(self, version: str, kind: str) -> Any:
        """The ``derived`` value of that kind when it is kept (a hit on the version), else
        None: nothing is made."""
        with self._lock:
            value = self._derived.get((version, kind))
            if value is not None and version in self._items:
                self._derived.move_to_end((version, kind))
                self._items.move_to_end(version)
                self.hits += 1
            return value

    def derived(self, version: str, kind: str, make: Callable[[], T]) -> T:
        """A value computed from a version (decoded text, line index), kept for reuse while
        the version's bytes are cached in memory."""
        key = (version, kind)
        with self._lock:
            if key in self._derived:
                self._derived.move_to_end(key)
                return self._derived[key]  # type: ignore[no-any-return]
        value = make()
        with self._lock:
            if version not in self._items:
                return value
            self._derived[key] = value
            while len(self._derived) > _DERIVED_KEPT:
                self._derived.popitem(last=False)
        return value

    def read(self, owner: str, version: str) -> None:
        """Note that ``version`` was read as the current one of ``owner``."""
        with self._lock:
            self._owners[owner] = version
            self._owners.move_to_end(owner)
            while len(self._owners) > _OWNERS_KEPT:
                self._owners.popitem(last=False)

    def may_hold(self, owner: str) -> bool:
        """Whether this cache may hold the current version of ``owner``: the version last
        read of it is still in memory, or files on disk may hold it. A reader asks for the
        pointer first only then (the version unchanged, that is all it transfers); else it
        asks for the pointer and the bytes together."""
        if self.directory is not None:
            return True
        with self._lock:
            version = self._owners.get(owner)
            return version is not None and version in self._items

    def clear(self) -> None:
        """Forget the in-memory copies (files on disk stay)."""
        with self._lock:
            self._items.clear()
            self._derived.clear()
            self._owners.clear()
            self._size = 0

    def __contains__(self, version: object) -> bool:
        with self._lock:
            return version in self._items

    def __len__(self) -> int:
        return len(self._items)

    def _memory_put(self, version: str, data: bytes | _Text) -> None:
        if len(data) > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(version, None)
            if old is not None:
                self._size -= len(old)
            self._items[version] = data
            self._size += len(data)
            while self._size > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._size -= len(evicted)

    # --- the optional disk layer: one file per version, named by its hash
    def keeps_on_disk(self) -> bool:
        """Whether a version fetched now would be kept in ``directory``: one is set, no
        write to it failed in this process, and it (or the folder that would hold it) may be
        written. A caller fetches more than it needs only for a cache that keeps it."""
        if self.directory is None or self._disk_failed:
            return False
        folder = self.directory
        while not folder.exists() and folder.parent != folder:
            folder = folder.parent
        return os.access(folder, os.W_OK | os.X_OK)

    def _path(self, version: str) -> Path | None:
        if self.directory is None or not _VERSION.fullmatch(version):
            return None
        return self.directory / version

    def _disk_get(self, version: str) -> bytes | None:
        path = self._path(version)
        if path is None:
            return None
        try:
            with path.open("rb") as file:
                read = os.fstat(file.fileno())
                data = file.read()
        except OSError:
            return None
        if not _digest.names(data, version):
            self._drop_damaged(path, read)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # mark as recently used
        return data

    @staticmethod
    def _drop_damaged(path: Path, read: os.stat_result) -> None:
        """Remove the damaged file read, unless another process has renamed a good one over
        it meanwhile (that one is kept)."""
        with contextlib.suppress(OSError):
            now = os.stat(path)
            if (now.st_dev, now.st_ino) == (read.st_dev, read.st_ino):
                path.unlink()

    def _disk_put(self, version: str, data: bytes) -> None:
        path = self._path(version)
        if path is None or len(data) > self.max_disk_bytes:
            return
        if path.exists():  # written by another process meanwhile, or not ours to read
            self._disk_failed |= not os.access(path, os.R_OK)
            return
        assert self.directory is not None
        try:
            # Private: contexts may be confidential (files are 0600, as mkstemp makes them).
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_whole(path, data)  # readers see the whole file or none
        except OSError:
            self._disk_failed = True  # a cache that cannot write is only slower
            return
        self._disk_evict()

    def _disk_evict(self) -> None:
        """Bring the directory under ``max_disk_bytes``, the least recently used files first,
        and remove temporary files that dead writers left. Other processes evict at the same
        time: a file gone under this one is skipped, not an error."""
        assert self.directory is not None
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return
        files: list[tuple[float, int, str]] = []
        stale = time.time() - _STALE_TEMP_S
        for entry in entries:
            try:
                stat = entry.stat(follow_symlinks=False)
            except OSError:  # removed by another process meanwhile
                continue
            if _VERSION.fullmatch(entry.name):
                files.append((stat.st_mtime, stat.st_size, entry.path))
            elif _TEMP.fullmatch(entry.name) and stat.st_mtime < stale:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.max_disk_bytes:
                break
            with contextlib.suppress(OSError):
                os.unlink(path)
            total -= size
