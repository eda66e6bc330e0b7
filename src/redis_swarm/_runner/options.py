"""How ``swarm run`` works (``RunOptions``: the queues, the agent command, how many at a time,
when to stop), and the names its slots claim as."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._finding_text import SUMMARY_LIMIT
from .._validate import DEFAULT_POLL_S, DEFAULT_TIMEOUT_S

if TYPE_CHECKING:
    from .._config import Settings

__all__ = ["RunOptions", "default_worker_prefix", "slot_name"]


@dataclass(frozen=True)
class RunOptions:
    """How ``swarm run`` works; see docs/cli.md."""

    queues: tuple[str, ...]
    command: str
    concurrency: int = 1
    max_tasks: int | None = None
    idle_exit_s: float | None = None
    until_done: bool = False  # stop when no task of the queues is pending, delayed or claimed
    lease_s: float | None = None  # the lease asked at claim and renewal (default: the task's)
    timeout_s: float = DEFAULT_TIMEOUT_S  # the most a process may run, whatever lease_s is
    worker: str | None = None  # worker name prefix; slot i is PREFIX-i
    model: str | None = None  # recorded on findings (default: the one the agent's output names)
    summary_limit: int = SUMMARY_LIMIT
    grace_s: float = 5.0
    # The longest a claim waits before it looks again: at Ctrl-C (drain), and with until_done
    # at the queues, for a task settled by another process (the pool's own slots' wake it).
    poll_s: float = DEFAULT_POLL_S
    shell: str = "/bin/sh"
    # Where the user gave the agent command, as an error telling them to fix it names it (a
    # pipeline's: its plan's ``[workers] exec``).
    exec_named: str = "--exec"
    # The placeholders the face fills in the command itself, besides ``{prompt}`` and
    # ``{prompt_file}`` (``swarm serve --session``'s ``{session}``): any other ``{word}`` is
    # refused (``child.check_command``).
    placeholders: tuple[str, ...] = ()
    # The swarm the agents reach (their SWARM_URL...: ``task_env``), when not the pool's own:
    # a pipeline's worker user's URL, while the pool claims and reports as the run's user.
    agents_settings: Settings | None = None


def default_worker_prefix() -> str:
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:40] or "host"
    return f"run-{host}-{os.getpid()}"


def slot_name(prefix: str, index: int) -> str:
    """The agent id of a pool's slot ``index`` (1-based) under the worker prefix ``prefix``
    (``--worker``): what that slot claims and reports as."""
    return f"{prefix}-{index}"
