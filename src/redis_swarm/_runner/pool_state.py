"""What every part of the pool shares: its swarm and options, the tally of what became of its
tasks, the switches that stop it (``drain``, ``abort``, an error it cannot get past), and the
writes that ride out an outage."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from .._errors import ConnectionFailed, ValidationError
from .child import check_command, check_program
from .options import RunOptions, default_worker_prefix
from .outcomes import OutcomeStatus, TaskOutcome

if TYPE_CHECKING:
    from .._client import Swarm

__all__ = ["WRITE_RETRIES", "PoolState"]

T = TypeVar("T")

WRITE_RETRIES = 5  # a report, fail or release is tried this many times through an outage


@dataclass
class _Counts:
    claimed: int = 0
    running: int = 0
    ended: dict[OutcomeStatus, int] = field(default_factory=lambda: dict.fromkeys(OutcomeStatus, 0))
    errors: list[str] = field(default_factory=list)


class PoolState:
    """The pool's options, tally and stop switches (see ``Runner``)."""

    def __init__(
        self,
        swarm: Swarm,
        options: RunOptions,
        *,
        on_outcome: Callable[[TaskOutcome], None] | None = None,
    ) -> None:
        if not options.queues:
            raise ValidationError("name at least one queue to claim from (--queue)")
        if options.concurrency < 1:
            raise ValidationError("concurrency must be at least 1")
        if not options.command.strip():
            raise ValidationError("the agent command is empty: pass it with --exec")
        check_command(options.command)
        check_program(options.command, shell=options.shell)
        self.swarm = swarm
        self.options = options
        self.prefix = options.worker or default_worker_prefix()
        self.outcomes: list[TaskOutcome] = []
        self._on_outcome = on_outcome
        self._counts = _Counts()
        self._lock = threading.Lock()
        self._draining = threading.Event()
        self._aborting = threading.Event()
        self._done = threading.Event()  # until_done: a claimer found the queues settled
        self._fatal: str | None = None
        self.crash: BaseException | None = None  # an unexpected error in a slot (a bug)

    # --- control

    def drain(self) -> None:
        """Claim nothing more; let the running processes finish."""
        self._draining.set()

    def abort(self) -> None:
        """Claim nothing more; kill the running processes and release their tasks."""
        self._draining.set()
        self._aborting.set()

    @property
    def draining(self) -> bool:
        return self._draining.is_set()

    @property
    def fatal(self) -> str | None:
        """Why the pool stopped on its own (an error it cannot get past), if it did."""
        return self._fatal

    def _claims_over(self) -> bool:
        """True once the pool claims nothing more: drained, aborted, or done (``until_done``
        and its queues settled)."""
        return self._draining.is_set() or self._done.is_set()

    def _stop(self, reason: str) -> None:
        """Stop on an error the pool cannot get past: kill the running agents."""
        self._set_fatal(reason)
        self.abort()

    def _halt(self, reason: str) -> None:
        """Stop on an error that is not the running agents' doing: claim nothing more, let
        them finish (their work is real, and may have cost)."""
        self._set_fatal(reason)
        self.drain()

    def _set_fatal(self, reason: str) -> None:
        with self._lock:
            if self._fatal is None:
                self._fatal = reason

    # --- the tally

    def counts(self) -> dict[str, int]:
        with self._lock:
            c = self._counts
            return {
                "claimed": c.claimed,
                "running": c.running,
                **{status.value: n for status, n in c.ended.items()},
            }

    @property
    def errors(self) -> list[str]:
        with self._lock:
            return list(self._counts.errors)

    def _error(self, message: str) -> None:
        with self._lock:
            self._counts.errors.append(message)

    def _finish(self, outcome: TaskOutcome) -> None:
        with self._lock:
            self._counts.running -= 1
            self._counts.ended[outcome.status] += 1
            self.outcomes.append(outcome)
        if self._on_outcome is not None:
            self._on_outcome(outcome)

    # --- outages

    def _persist(self, call: Callable[[], T]) -> T:
        """Make a call the pool must not lose survive a short outage (the client already
        retries for a few seconds; this adds about half a minute)."""
        for attempt in range(WRITE_RETRIES):
            try:
                return call()
            except ConnectionFailed as exc:
                if attempt == WRITE_RETRIES - 1:
                    raise
                self._error(f"call failed (retrying): {exc}")
                time.sleep(min(2**attempt, 8))
        raise AssertionError("unreachable")  # pragma: no cover
