"""Which files ``publish_context(path=...)`` may read on the server's machine.

An agent names the path, so the server must not read whatever its own user can: a path is
resolved (links followed) and must stay under one root (``--root``, default the directory the
server started in); only a regular file is read (no device, FIFO, socket or directory, nothing
under /proc, /sys or /dev); and the file actually opened is checked again, so a link swapped in
between is caught. Over HTTP, where the agents are on other machines, reading files is off
unless the operator turns it on (``--allow-paths``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .._errors import ValidationError

__all__ = ["FileAccess"]

# Pseudo filesystems whose "regular files" are the kernel's view of processes and devices.
_PSEUDO = (Path("/proc"), Path("/sys"), Path("/dev"))


class FileAccess:
    """Reads regular files under ``root``; with ``root=None`` reading files is off."""

    def __init__(self, root: Path | None, *, off_reason: str = "") -> None:
        self.root = Path(os.path.realpath(root)) if root is not None else None
        self.off_reason = off_reason

    def read(self, path: str, max_bytes: int) -> bytes:
        """The bytes of the file at ``path`` (relative paths start at the root)."""
        if self.root is None:
            raise ValidationError(
                f"this MCP server does not read files{self.off_reason}: pass the text itself "
                "(or its operator starts it with --allow-paths)"
            )
        if "\x00" in path:  # (the system calls refuse it with a ValueError, not an OSError)
            raise ValidationError(
                f"{path!r} holds a NUL byte, which no file name can: name the file without it"
            )
        given = Path(path).expanduser()
        named = Path(os.path.normpath(self.root / given))  # where it points, no link followed
        real = Path(os.path.realpath(named))
        self._check_inside(path, named, real)
        try:  # opening a device or a FIFO can itself do something: look first
            regular = stat.S_ISREG(os.stat(real).st_mode)
        except OSError:
            regular = True  # the open below says what is wrong
        if not regular:
            raise _not_regular(path)
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(real, flags)
        except OSError as exc:
            raise ValidationError(
                f"cannot read {path!r}: {exc.strerror} (paths are resolved under {self.root})"
            ) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise _not_regular(path)
            opened = _opened_path(fd)
            if opened is not None:
                self._check_inside(path, named, opened)
            if info.st_size > max_bytes:
                raise ValidationError(
                    f"{path!r} is {info.st_size:,} bytes; a context may hold {max_bytes:,}: "
                    "split it into several contexts"
                )
            chunks: list[bytes] = []
            size = 0
            while size <= max_bytes:
                chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def _check_inside(self, given: str, named: Path, real: Path) -> None:
        """Refuse ``given`` unless ``real`` (where it leads) is a file under the root that is
        no kernel file. The refusal quotes ``given`` and says why, never ``real``: where a path
        or a link leads out of the root (another user's home, the server's own pid under
        /proc) is not the caller's to learn."""
        assert self.root is not None
        if not real.is_relative_to(self.root):
            how = (  # (``named``: the path as written, ``..`` folded, no link followed)
                "leads out of it through a link"
                if named.is_relative_to(self.root)
                else "names a place outside it"
            )
            raise ValidationError(
                f"{given!r} is outside the directory this MCP server may read ({self.root}): "
                f"it {how}; publish a file under it, or pass the text itself"
            )
        if any(real == p or real.is_relative_to(p) for p in _PSEUDO):
            raise ValidationError(
                f"{given!r} is a kernel file (under /proc, /sys or /dev), not a document: "
                "publish a regular file"
            )


def _not_regular(path: str) -> ValidationError:
    return ValidationError(
        f"{path!r} is not a regular file (a directory, device, FIFO or socket): publish a "
        "file, or pass the text itself"
    )


def _opened_path(fd: int) -> Path | None:
    """Where the open file really is (Linux), or None where the system cannot say."""
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return None
