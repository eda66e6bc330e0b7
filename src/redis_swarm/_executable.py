"""The command line of this install's ``swarm``, which everything an agent is handed to run
names: the MCP client configs ``swarm mcp install`` writes, the hooks ``swarm hooks install``
writes and the commands they hand out, and the commands of ``swarm prompt``."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

__all__ = ["swarm_command"]


def swarm_command() -> list[str]:
    """The absolute command line of this install's ``swarm`` (an agent's shell may not have
    this install's bin/ on PATH).

    The script beside the running interpreter (a venv's bin/) comes first, then ``swarm`` on
    PATH, then ``python -m redis_swarm`` with this interpreter.
    """
    beside = Path(sys.executable).parent / "swarm"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside.absolute())]
    found = shutil.which("swarm")
    if found:
        return [str(Path(found).absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "redis_swarm"]
