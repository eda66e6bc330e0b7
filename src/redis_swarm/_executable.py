"""The command line of this install's ``swarm``, which everything an agent is handed to run
names: the MCP client configs ``swarm mcp install`` writes, the hooks ``swarm hooks install``
writes and the commands they hand out, and the commands of ``swarm prompt``; and what pins
the swarm it reaches (``reach_options``, ``reach_env``), said once for all of them."""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Literal

from ._config import Settings, handed_url
from ._env import ENV_HOME, ENV_NAME, ENV_URL

__all__ = ["Password", "reach_env", "reach_options", "swarm_command"]

# What ``reach_options`` does with a URL's password: leave the URL out (the other process reads
# SWARM_URL from its environment), or write it, password shown (asked for explicitly).
Password = Literal["leave-out", "show"]


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


def reach_options(
    settings: Settings, *, password: Password = "leave-out", same_machine: bool = True
) -> list[str]:
    """The global options of ``swarm`` that make another process reach the swarm of
    ``settings``: a hook entry an installer writes, a command a hook hands an agent, the
    commands of ``swarm prompt``. Each is given even when it is the default, since that
    process's environment may name another (SWARM_URL, SWARM_NAME, SWARM_HOME, of another
    project), which an option left out would let it follow:

    - ``--url``: the server. A URL holding a secret (``Settings.holds_secret``: a password,
      or a user name that may be one) is left out (settings files are often shared, commands
      end up in transcripts and the process list; that process reads SWARM_URL from its
      environment) unless ``password`` says to write it in clear. An
      embedded server's URL is ``embedded``: ``--home`` says which one.
    - ``--swarm``: the swarm's name.
    - ``--home``: the embedded server's home, and where this machine keeps the lease tokens
      its claims took; absolute, since that process may run in another folder. Left out for
      a network server when the command may run on another machine or as another user
      (``same_machine=False``: a prompt, pasted anywhere), where this home may not exist or
      be writable; that process keeps its tokens in its own home then.
    """
    url: list[str] = []
    if not settings.holds_secret or password == "show":
        written = handed_url(settings.render_url(mask=False))
        if settings.kind == "embedded":  # (its home, percent-encoded, holds no "?")
            _, mark, query = written.partition("?")
            written = f"embedded{mark}{query}"
        url = ["--url", written]
    home = ["--home", str(settings.home.absolute())]
    if not same_machine and settings.kind != "embedded":
        home = []
    return [*url, "--swarm", settings.swarm, *home]


def reach_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a ``swarm`` this process starts (an agent of ``swarm run``
    or of a pipeline) reach the swarm of ``settings``, as ``reach_options`` does: every one
    given, the URL with its password (an environment is that process's own, written to no
    file); and a PATH that finds this install's ``swarm`` first, when this one's does not."""
    env = {
        ENV_URL: handed_url(settings.render_url(mask=False)),
        ENV_NAME: settings.swarm,
        ENV_HOME: str(settings.home.absolute()),
    }
    path = _path_with_swarm(os.environ.get("PATH", ""))
    if path is not None:
        env["PATH"] = path
    return env


def _path_with_swarm(path: str) -> str | None:
    """``path`` with this install's bin/ first, when its ``swarm`` is a program there that
    ``path`` does not already find first (None: nothing to add). The prompts an agent is
    given (prompts/task.md, question.md) say ``swarm ...``: the runner's own PATH may not
    have the install's bin/ (a venv's ``swarm`` run by its path), and the agent's shell must
    then still find this install's ``swarm``, not another or none."""
    program = Path(swarm_command()[0])
    if program.name != "swarm":
        return None  # no swarm program (python -m redis_swarm): nothing a PATH could find
    found = shutil.which("swarm", path=path)
    with contextlib.suppress(OSError):
        if found is not None and os.path.samefile(found, program):
            return None  # (a pipx or uv tool install finds it through a symlink)
    return os.pathsep.join([_swarm_only_folder(program), *(p for p in path.split(os.pathsep) if p)])


@functools.cache
def _swarm_only_folder(program: Path) -> str:
    """A private folder holding only a link to ``program``, made once per process and removed
    at its exit: what goes first on an agent's PATH, not the install's whole bin/ (a venv's:
    its python, pip and pytest would shadow the agent's own)."""
    folder = tempfile.mkdtemp(prefix="swarm-bin-")
    os.symlink(program, os.path.join(folder, "swarm"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder
