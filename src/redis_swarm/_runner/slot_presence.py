"""The presence of the pool's slots: a slot running an agent is an agent of the swarm, alive
and working on its task, whichever slot's claim leased that task.

A batch claim (``claim(..., n=)``) leases every task of the batch to the claiming slot: each
task's ``worker`` is that slot (the holder of its lease, which its renewals keep), and only
that slot is registered and marked present by the claim. The slot running a task says so
itself, with heartbeats naming it (``current_task``): one at the first tick of the run (within
a second of its start; a run shorter than that costs nothing), then one per lease renewal or
``BEAT_EVERY_S``, whichever comes sooner, so that a run of minutes stays alive in ``swarm
agents``, ``swarm status`` and the dashboard; and one clearing the task when the slot goes
idle (none when its report leased its next task: that run's first beat names it). A slot no
claim registered (handed its task by another slot's batch) is registered at its first beat,
with the role a claim gives (``worker``).

Best effort: presence is what the views show, never a reason to stop an agent, so a beat
refused or unanswered is tried again at the next one. Each beat is made through the pool, or
the pipeline running a planner or synthesizer (``ask``): bounded by its abort, and watched as
its other requests are, so that a beat kept waiting by the client's retries through an outage
(up to a minute on a Cluster URL) is said within seconds, not silently
(``RequestWatch.told_if_unanswered``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._errors import NotFound, SwarmError
from .._models import BEAT_EVERY_S

if TYPE_CHECKING:
    from .._client import Swarm

__all__ = ["BEAT_EVERY_S", "SlotPresence"]

SLOT_ROLE = "worker"  # as a claim registers a worker (implicitly)


@dataclass
class SlotPresence:
    """What one slot's agent record says it works on, kept by that slot's thread only."""

    swarm: Swarm
    worker: str
    # How a beat naming a task (None: none) is made: ``ask(task_id, beat)`` calls ``beat``,
    # raising its SwarmError (``AgentRuns._slot_beat``, ``OneShotAgents._beat``; else made as
    # it is)
    ask: Callable[[str | None, Callable[[], None]], None] = lambda _, beat: beat()
    role: str = SLOT_ROLE  # what a beat registers it as when no claim did (a pipeline's own)
    said: str | None = None  # the task the slot's last beat named (None: none, or cleared)
    _due: float = field(default=0.0, init=False)  # monotonic time of the next beat
    _tried: str | None = field(default=None, init=False)  # the task the last try named

    def running(self, task_id: str, every_s: float) -> None:
        """On a tick of the run of ``task_id``: a beat naming it, unless the last one did
        less than ``every_s`` (at most ``BEAT_EVERY_S``) ago."""
        now = time.monotonic()
        # (a beat that failed is tried again at the next due time too, not at every tick:
        # each try may wait out the client's retries, and the tick also watches the agent)
        if self._tried == task_id and now < self._due:
            return
        self._due = now + min(every_s, BEAT_EVERY_S)
        self._tried = task_id
        self._say(task_id)

    def idle(self) -> None:
        """The slot runs nothing now: its record names no task (one beat, if it named one)."""
        self._tried = None  # (the same task run again is beaten for at once)
        if self.said is not None:
            self._say(None)

    def _say(self, task_id: str | None) -> None:
        with contextlib.suppress(SwarmError):
            self.ask(task_id, lambda: self._beat(task_id))
            self.said = task_id

    def _beat(self, task_id: str | None) -> None:
        """Mark the slot present, working on ``task_id`` (None: on nothing), registering it
        first when no claim did; NotFound when the task no longer exists."""
        try:
            self.swarm.heartbeat(self.worker, current_task=task_id or "")
            return
        except NotFound:
            if self._registered():  # the task no longer exists (its renewal stops the agent)
                raise
        self.swarm.register(self.role, name=self.worker)
        self.swarm.heartbeat(self.worker, current_task=task_id or "")

    def _registered(self) -> bool:
        """Whether the slot is registered (a beat naming no task: it is marked present)."""
        try:
            self.swarm.heartbeat(self.worker)
        except NotFound:
            return False
        return True
