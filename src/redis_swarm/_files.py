"""A file written whole: what the context cache's disk copies and the hooks' lease-token
files share."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["write_whole"]


def write_whole(path: Path, data: bytes) -> None:
    """Put ``data`` at ``path`` whole: written to a temporary file of its own beside it (mode
    0600, as ``mkstemp`` makes it), then renamed over it, so that a reader sees the old file
    or the new, never half of one. A failure leaves no temporary file behind and is raised."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
