"""The command line of this install's ``swarm``, which everything an agent is handed to run
names: the MCP client configs ``swarm mcp install`` writes, the hooks ``swarm hooks install``
writes and the commands they hand out, and the commands of ``swarm prompt``; and what pins
the swarm it reaches (``reach_options``, ``reach_env``), said once for all of them."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Literal

from ._config import Settings

__all__ = ["Password", "reach_env", "reach_options", "swarm_command"]

# What ``reach_options`` does with a URL's password: leave the URL out (the other process reads
# SWARM_URL from its environment), or write it with the password masked as *** or shown.
Password = Literal["leave-out", "mask", "show"]


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


def reach_options(settings: Settings, *, password: Password = "leave-out") -> list[str]:
    """The global options of ``swarm`` that make another process reach the swarm of
    ``settings``: a hook entry an installer writes, a command a hook hands an agent, the
    commands of ``swarm prompt``. Each is given even when it is the default, since that
    process's environment may name another (SWARM_URL, SWARM_NAME, SWARM_HOME, of another
    project), which an option left out would let it follow:

    - ``--url``: the server. A URL holding a password is left out (settings files are often
      shared; that process reads SWARM_URL from its environment) unless ``password`` says to
      write it masked (a prompt, which tells the agent to fill it in) or in clear. An
      embedded server's URL is ``embedded``: ``--home`` says which one.
    - ``--swarm``: the swarm's name.
    - ``--home``: the embedded server's home, and where this machine keeps the lease tokens
      its claims took; absolute, since that process may run in another folder.
    """
    url: list[str] = []
    if not settings.password or password != "leave-out":
        written = settings.render_url(mask=password != "show")
        if settings.kind == "embedded":  # (its home, percent-encoded, holds no "?")
            _, mark, query = written.partition("?")
            written = f"embedded{mark}{query}"
        url = ["--url", written]
    return [*url, "--swarm", settings.swarm, "--home", str(settings.home.absolute())]


def reach_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a ``swarm`` this process starts (an agent of ``swarm run``)
    reach the swarm of ``settings``, as ``reach_options`` does: every one given, the URL with
    its password (an environment is that process's own, written to no file)."""
    return {
        "SWARM_URL": settings.render_url(mask=False),
        "SWARM_NAME": settings.swarm,
        "SWARM_HOME": str(settings.home.absolute()),
    }
