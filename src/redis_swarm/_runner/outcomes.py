"""What became of one claimed task (``TaskOutcome``), and how a run's outcome is made."""

from __future__ import annotations

import enum
import errno
import time
from dataclasses import dataclass
from typing import Any

from .._config import SENTINEL_DOCS
from .._errors import ConnectionFailed, NotFound
from .._hints import REQUEUE_TASK, said_of
from .._models import Finding
from .._printable import printable
from .._usage import Usage
from .child import NUL_IN_PROMPT, ChildResult

__all__ = [
    "GONE_WHY",
    "REQUEUE_DEAD",
    "Ending",
    "OutcomeStatus",
    "TaskOutcome",
    "dead_now",
    "exited_first",
    "lease_unknown",
    "not_started",
    "overtaken_note",
    "swarm_refused",
    "task_gone",
]


class OutcomeStatus(str, enum.Enum):
    """What became of one claimed task."""

    COMPLETED = "completed"  # its finding is stored (or the agent reported it itself)
    FAILED = "failed"  # crashed, timed out, printed nothing: failed, so the queue retries it
    RELEASED = "released"  # interrupted, or not runnable: back to its queue, not a failure
    LOST = "lost"  # cancelled, completed elsewhere, its lease taken over, or refused


@dataclass(frozen=True)
class TaskOutcome:
    """What became of one claimed task, and why; ``usage``: what its agent run cost, as the
    CLI printed it (None: it did not say), whether or not the swarm recorded it;
    ``warnings``: what was amiss in its output (``AgentOutput.warnings``; ``detail`` says
    them where the run's line does), for a view that says each kind once (a pipeline);
    ``agent_ran``: an agent run stands behind it (not one the shell could not start,
    ``ChildResult.cannot_run``, or one given up before its agent ran), which the pool's
    count of agent runs counts."""

    task_id: str
    worker: str
    status: OutcomeStatus
    detail: str
    duration_s: float
    finding_id: str | None = None
    returncode: int | None = None
    usage: Usage | None = None
    warnings: tuple[str, ...] = ()
    agent_ran: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "worker": self.worker,
            "status": self.status.value,
            "detail": self.detail,
            "duration_s": round(self.duration_s, 3),
            "finding_id": self.finding_id,
            "returncode": self.returncode,
            "usage": self.usage.to_dict() if self.usage is not None else None,
        }


@dataclass(frozen=True)
class Ending:
    """Makes the outcome of one agent run."""

    task_id: str
    worker: str
    started: float
    result: ChildResult | None  # None when the agent could not be started
    usage: Usage | None = None  # what the run cost, as its CLI printed it
    warnings: tuple[str, ...] = ()  # what was amiss in its output
    said: str = ""  # added to every outcome's detail (how the run ended, when it matters)

    def __call__(
        self, status: OutcomeStatus, detail: str, finding_id: str | None = None
    ) -> TaskOutcome:
        result = self.result
        detail += self.said
        if result is not None and result.left_behind:
            detail += f"; killed {result.left_behind} process(es) it left running"
        return TaskOutcome(
            self.task_id,
            self.worker,
            status,
            detail,
            time.monotonic() - self.started,
            finding_id,
            result.returncode if result is not None else None,
            self.usage,
            self.warnings,
            result is not None and result.cannot_run is None,
        )


def exited_first(lost: list[str], result: ChildResult) -> str:
    """What the outcome of a run whose task was found lost (``lost``: why) after its agent
    had exited adds to its detail ("" when the task was not lost, or the agent was stopped
    for it): a renewal blocked through an outage, then refused, is not the agent's end, so
    its finished run is reported all the same (a late report, which the core takes:
    completing the task, or kept superseded), not thrown away to be paid for again."""
    if not lost or result.killed:
        return ""
    return f"; the agent had exited before its task was found lost ({lost[-1]})"


def overtaken_note(stored: Finding, *, what: str = "task", deed: str = "report") -> str:
    """What the outcome of a run whose finding (``stored``, as the report returned it)
    completed its task under a lease that had run out, the task leased again since, adds to
    its detail: the core's words (``Finding.overtaken_said``); "" when its lease was the
    current one."""
    said = stored.overtaken_said(what=what, deed=deed)
    return "" if said is None else f"; {printable(said)}"


def swarm_refused(exc: Exception, task_id: str | None = None) -> str:
    """Why a run ended lost when the swarm refused what the pool did with its task
    (``task_id``), or could not be reached for it (the outcome of a ``SwarmError`` no step of
    the task's work answers itself); a task that no longer exists is ``task_gone``."""
    if isinstance(exc, ConnectionFailed):
        return f"Redis could not be reached for it: {exc}"
    if isinstance(exc, NotFound) and task_id is not None:
        return task_gone(task_id)
    return f"the swarm refused: {exc}"


# Why a task the pool's own claim leased no longer exists (``task_gone``, and the run's
# summary of such tasks): its id is no typo.
GONE_WHY = "deleted, or the server lost its data (restarted without persistence, or flushed)"


# REQUEUE_TASK as ``swarm run``, a worker's command, says it: a worker's user may not
# requeue a dead task (docs/security.md), so the words say whose may.
REQUEUE_DEAD = REQUEUE_TASK.replace(" ID)", " ID, as a shard or coordinator: a worker may not)")


def dead_now(task_id: str) -> str:
    """What the failure of a task's last attempt adds to its outcome: the core
    dead-lettered it (its queue retries it no more), and how to run it again (and by whom:
    not by the worker's user the pool runs as)."""
    return f"out of attempts, it is dead now {said_of(REQUEUE_DEAD, task_id)}"


def task_gone(task_id: str) -> str:
    """Why a run ended lost when its task no longer exists on the server (a report, a
    renewal, a failure or a release of it refused as NotFound): the pool's own claim
    leased it, so its id is no typo (the core's "check the id" does not apply); it was
    deleted, or the server lost its data. The pool counts these (``PoolState.gone``)."""
    return (
        f"task {task_id} is gone from the server: {GONE_WHY}; nothing of this run was "
        "stored: post its work again if it is still wanted"
    )


# What exec says of a program that cannot be run: it is not there, or not a program.
_NO_PROGRAM = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EACCES, errno.ENOEXEC, errno.ELOOP})


def not_started(exc: OSError, prompt: str, shell: str) -> str:
    """Why the agent could not be started (the failure of its task, or of a pipeline's
    planner or synthesizer run: the one wording of it), naming ``shell`` (the program that
    runs the agent command) when that is what could not be run: the bare "No such file or
    directory" names no file. (Not any file: the run's temporary folder has a new name every
    run, and the same failure must read the same to stop the pool.) A prompt ``{prompt}``
    cannot carry (too long, or holding a NUL byte) says to give it another way."""
    reason = f"cannot start the agent: {exc.strerror or exc}"
    if exc.errno in _NO_PROGRAM and exc.filename == shell:
        reason = f"cannot start the agent: its shell {shell!r} could not be run: {exc.strerror}"
    if exc.errno == errno.E2BIG:
        size = len(prompt.encode("utf-8"))
        reason += (
            f" (the prompt is {size:,} bytes, more than one argument or environment variable "
            f"may hold: {_OTHER_WAY})"
        )
    elif exc.strerror == NUL_IN_PROMPT:
        reason += f" ({_OTHER_WAY})"
    return reason


# What to do with a prompt ``{prompt}`` cannot carry (``not_started``).
_OTHER_WAY = "give it on stdin or in {prompt_file} rather than {prompt}"


def lease_unknown(task_id: str) -> str:
    """Why a run ended lost when Redis refused its report (or its lease's renewal) as made
    with a token it never issued. The pool presents only tokens its own claims returned, so
    the server issued it and then lost it: the core's advice ("use the token its claim
    returned") does not apply. Redis loses acknowledged writes in a failover (those a
    demoted master took before Sentinel made it a replica, or the last ones before a master
    died) and in a restart that lost the last second of its AOF."""
    return (
        f"Redis has no record of the lease this pool's claim of {task_id} returned (it "
        "refused the token as never issued): the server lost that claim (or this report's "
        "earlier try), as a failover or a restart can lose the last writes a master "
        "acknowledged. Nothing of this run was stored; the task runs again, here or "
        "elsewhere, unless another worker completed it. Behind Sentinel, set "
        f"min-replicas-to-write ({SENTINEL_DOCS})"
    )
