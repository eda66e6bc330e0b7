"""One run of the agent command for a claimed task: its environment, a scratch folder, its
lease renewed meanwhile, and the agent stopped when the task is cancelled or lost."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from .._config import Settings
from .._context_records import ContextInfo
from .._errors import ConnectionFailed, NotFound
from .._executable import reach_env
from .._models import Task
from .cancels import CancelWatch
from .child import ChildResult, build_command, run_child
from .lease_renewal import LeaseRenewal
from .pool_state import PoolState
from .request_watch import MARK_IDLE, READ_CONTEXT, RENEW_LEASE, TAKE_BEAT
from .slot_presence import SLOT_ROLE, SlotPresence

__all__ = ["AgentRuns", "task_env"]


def task_env(task: Task, settings: Settings, context: ContextInfo | None = None) -> dict[str, str]:
    """What an agent process learns from its environment (besides the runner's own): the
    swarm it reaches (``reach_env``: URL, name and home, so that the ``swarm ...`` of its
    prompt reaches the runner's swarm and keeps lease tokens in the runner's home, whatever
    the runner's own environment names), and its task."""
    env = {
        **reach_env(settings),
        "SWARM_TASK_ID": task.id,
        "SWARM_TASK_TOKEN": task.token or "",
        "SWARM_TASK_QUEUE": task.queue,
    }
    if task.parent:
        env["SWARM_CONTEXT_OWNER"] = task.parent
    if context is not None:
        env["SWARM_CONTEXT_VERSION"] = context.version
    return env


class AgentRuns(PoolState):
    """The pool's agent runs, and the one follower of the event log's cancels they share."""

    # The role a slot's record is registered with when no claim registered it (a claim
    # registers a ``worker``); a pool that registers its slots itself says its own.
    slot_role = SLOT_ROLE

    def _set_up(self) -> None:
        super()._set_up()
        # (kills the agent of a cancelled task; its reads watched as the pool's others are)
        self._cancels = CancelWatch(self.swarm, self._error, self)
        self._presences: dict[str, SlotPresence] = {}  # slot (worker name) -> its presence

    def _presence(self, worker: str) -> SlotPresence:
        """What the agent record of slot ``worker`` says it works on (see ``slot_presence``)."""
        with self._lock:
            return self._presences.setdefault(
                worker, SlotPresence(self.swarm, worker, self._slot_beat, role=self.slot_role)
            )

    def _slot_beat(self, task_id: str | None, beat: Callable[[], None]) -> None:
        """A beat of a slot (``SlotPresence.ask``): running ``task_id`` (None: idle), given
        up at an abort, said if Redis does not answer it (``unless_aborted``)."""
        if task_id is None:
            self.unless_aborted(beat, MARK_IDLE)
        else:
            self.unless_aborted(beat, TAKE_BEAT, task_id)

    def _slot_idle(self, worker: str) -> None:
        """Slot ``worker`` runs no agent now: its record names no task (not tried while a
        task of the pool waits for Redis: the slot's next look tries again; best effort,
        given up at an abort)."""
        presence = self._presence(worker)
        if not self._holding() and presence.said is not None:  # (else no beat to make)
            presence.idle()

    def _context(self, task: Task) -> ContextInfo | None:
        parent = task.parent
        if not parent:
            return None
        try:
            return self._persist(lambda: self.swarm.context_info(parent), task, READ_CONTEXT)
        except NotFound:
            return None

    def _run_agent(
        self,
        task: Task,
        worker: str,
        context: ContextInfo | None,
        prompt: str,
        lost: list[str],
        *,
        command: str | None = None,
        env: dict[str, str] | None = None,
    ) -> ChildResult:
        """Run the agent for ``task`` in slot ``worker`` (``command``, default the pool's, with
        ``env`` added), renewing its lease meanwhile, the slot marked present working on it
        (``slot_presence``: whichever slot's claim leased it); a cancel read in the event
        log (``cancels``: within about a second), or a renewal that finds the task gone
        (cancelled, completed elsewhere, back in its queue, leased to another worker: see
        ``LeaseRenewal``), adds to ``lost`` and stops it."""
        opts = self.options
        renew = LeaseRenewal(
            self.swarm,
            task,
            opts.lease_s,
            lost,
            token=lambda: self._token(task),
            on_outage=lambda exc: self._wait_for_redis(task.id, RENEW_LEASE, exc),
            on_back=lambda: self._redis_back(task.id),
            adopt=lambda now: self._adopt_orphan(task, now),
            on_kept=self._note,
        )
        presence = self._presence(worker)

        def tick() -> str | None:
            # (bounded by an abort: a stop during a stall must not wait out a renewal or a
            # beat, then the exit's own requests, in turn)
            try:
                why = self.unless_aborted(renew, RENEW_LEASE, task.id)
                if why is None and not self._holding():  # (no beat to wait on in an outage)
                    presence.running(task.id, renew.every_s)  # (best effort: see _slot_beat)
            except ConnectionFailed:
                if not self._aborting.is_set():
                    raise
                return None  # (given up at the abort: the agent is stopped next)
            return why

        workdir = Path(tempfile.mkdtemp(prefix="swarm-run-"))
        try:
            built = build_command(command or opts.command, prompt, workdir, shell=opts.shell)
            reach = opts.agents_settings or self.swarm.settings
            extra = {**task_env(task, reach, context), **(env or {})}
            with self._agent_running(task), self._cancels.watch(task.id) as cancelled:

                def halt() -> str | None:
                    why = cancelled()
                    if why is not None:
                        lost.append(why)
                    return why

                return run_child(
                    built.argv,
                    stdin=built.stdin,
                    env={**os.environ, **extra, **built.env},
                    timeout_s=opts.timeout_s,
                    tick_s=renew.tick_s,
                    on_tick=tick,
                    halt=halt,
                    stop=self._aborting,
                    grace_s=opts.grace_s,
                )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
