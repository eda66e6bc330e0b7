"""How the pool's slots get their tasks, in as few round trips as it can: idle slots claim
together, one of them for all (``claim(..., n=)``), the others taking the tasks it hands
over; a slot's report leases its next task in the same call (``claim_next``). Each task
claimed takes one ticket of ``max_tasks``."""

from __future__ import annotations

import enum
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .._errors import ConnectionFailed, SwarmError
from .._models import Finding, Task, TaskStatus
from .._translate import said_retrying
from .pool_state import PoolState
from .request_watch import CLAIM_TASKS, COUNT_TASKS, TAKE_RELEASE, TAKE_REPORT

__all__ = ["Claiming"]


class _Open(enum.Enum):
    """What an ``until_done`` claimer that found nothing to claim finds open."""

    NOTHING = "nothing"  # every task of the queues settled: the pool is done
    LEASED = "leased"  # only leased tasks: nothing is claimable until one ends (or a post)
    CLAIMABLE = "claimable"  # pending or delayed tasks (or not known: an outage)


class Claiming(PoolState):
    """The claims of the pool's slots, the tasks handed from slot to slot, and the tickets."""

    def _set_up(self) -> None:
        super()._set_up()
        self._tickets = 0
        # Claims shared by the idle slots (see _claim): one slot claims for all that wait.
        self._claims = threading.Condition()
        self._claiming = False  # an idle slot is claiming for every idle slot
        self._live = 0  # slots not stopped
        self._handed: deque[Task] = deque()  # tasks of a batch, not yet taken by a slot
        self._next: dict[str, Task] = {}  # slot -> the task its last report leased

    # --- tickets: one per task claimed, max_tasks in all

    def _take_ticket(self) -> bool:
        return self._take_tickets(1) == 1

    def _tickets_left(self) -> bool:
        with self._lock:
            return self.options.max_tasks is None or self._tickets < self.options.max_tasks

    def _take_tickets(self, n: int) -> int:
        """Take up to ``n`` tickets (one per task claimed, ``max_tasks`` in all); how many."""
        with self._lock:
            if self.options.max_tasks is not None:
                n = min(n, self.options.max_tasks - self._tickets)
            n = max(0, n)
            self._tickets += n
            return n

    def _return_ticket(self, n: int = 1) -> None:
        with self._lock:
            self._tickets -= n

    def _out_of_tickets(self) -> bool:
        """True when a slot has no task to look forward to: every ticket taken, none held by
        an idle slots' claim. Such a claim takes a ticket for every idle slot, this one
        too: the slot waits for its batch, which hands it a task or gives tickets back (a
        slot that stopped there left the pool a slot short, and a task handed over for it
        leased, unrenewed, until another slot was free)."""
        if self._tickets_left():
            return False
        with self._claims:
            self._claims.wait_for(lambda: bool(self._handed) or not self._claiming)
            return not self._handed and not self._tickets_left()

    # --- the claims of idle slots

    def _handed_over(self) -> Task | None:
        """A task another slot's batch claim leased for an idle slot (its ticket taken)."""
        with self._claims:
            return self._handed.popleft() if self._handed else None

    def _claim(self, worker: str, wait: float) -> Task | None:
        """A task for an idle slot. One idle slot at a time claims, for itself and every
        other idle slot (one round trip, ``n`` = the idle slots, a ticket taken for each), and
        hands the other tasks over; the others wait for its batch, and one that finds no task
        left claims in turn. None: nothing to claim, or no ticket left."""
        with self._claims:
            self._claims.wait_for(lambda: bool(self._handed) or not self._claiming)
            if self._handed:
                return self._handed.popleft()
            if self._claims_over():
                return None
            self._claiming = True
        with self._lock:
            idle = self._live - self._counts.running - len(self._next)
        n = self._take_tickets(max(1, idle))
        batch: list[Task] = []
        try:
            if n > 0:
                batch = self._claim_batch(worker, n, wait)
            if batch and self._claims_over():  # the pool stopped during the wait: not run
                for task in batch:
                    self._give_back(task)
                batch = []
        finally:
            with self._claims:  # (tickets back first: see _out_of_tickets)
                self._return_ticket(n - len(batch))
                self._claiming = False
                self._handed.extend(batch[1:])
                self._claims.notify_all()
        return batch[0] if batch else None

    def _claim_batch(self, worker: str, n: int, wait: float) -> list[Task]:
        """Up to ``n`` tasks, waiting up to ``wait`` for one (``until_done``: see
        ``_claim_until_done``)."""

        def claim(wait_s: float) -> list[Task]:
            try:
                with self._saying_dead_lettered():
                    tasks = self.told_if_unanswered(  # (said past its own wait)
                        None,
                        CLAIM_TASKS,
                        lambda: self.swarm.claim(
                            list(self.options.queues),
                            worker=worker,
                            lease_s=self.options.lease_s,
                            wait_s=wait_s,
                            n=n,
                        ),
                        waits_s=wait_s,
                    )
            except ConnectionFailed as exc:  # Redis may have run it, leasing tasks no slot knows
                self._claim_unanswered(worker, exc.lease_secrets)
                raise
            # The client's own retry of a claim sends the same secrets: a first try whose
            # reply was lost may have leased a task with the secret a task returned holds.
            self._claim_unanswered(worker, [t.token.partition(".")[2] for t in tasks if t.token])
            return tasks

        if self.options.until_done:
            return self._claim_until_done(claim, wait)
        return claim(wait)

    def _claim_until_done(self, claim: Callable[[float], list[Task]], wait: float) -> list[Task]:
        """The claim of an ``until_done`` pool: it claims without waiting and, finding nothing,
        looks at the queues. Settled: the pool is done, every slot with it, at once (a slot
        that waited ``wait`` before looking kept the others waiting, one poll interval per
        slot). Tasks pending or delayed: it waits in a claim, which a task made claimable
        wakes. Only tasks leased (the pool's running agents', say): nothing would wake a
        claim when one of them settles (nothing becomes claimable), so it waits on the pool
        instead, and looks again as soon as one of its slots lets go of a task: the run ends
        as its last task settles, not up to ``wait`` later. What it cannot see from here (a
        task another process settled, or failed, or posted) it sees at its next look, within
        ``wait``."""
        deadline = time.monotonic() + wait
        while not self._claims_over():
            self._let_go_of_one.clear()  # (before looking: a let-go from now on is not missed)
            batch = claim(0.0)
            if batch:
                return batch
            still_open = self._still_open()
            if still_open is _Open.NOTHING:
                self._done.set()
                return []
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            if still_open is _Open.CLAIMABLE:
                return claim(left)
            # (a drain between the loop's check and the clear above is seen here)
            if self._claims_over() or not self._let_go_of_one.wait(left):
                return []
        return []

    def _still_open(self) -> _Open:
        """Which tasks of the pool's queues are open (a running one may still fail and come
        back, so the pool waits for it)."""
        try:
            stats = self.told_if_unanswered(None, COUNT_TASKS, self.swarm.queue_stats)
        except ConnectionFailed as exc:  # an outage: not known to be settled, claim again
            self._error(f"queue stats failed (retrying): {said_retrying(exc)}")
            return _Open.CLAIMABLE

        def count(status: TaskStatus) -> int:
            return sum(stats.get(q, {}).get(status.value, 0) for q in self.options.queues)

        if count(TaskStatus.PENDING) or count(TaskStatus.DELAYED):
            return _Open.CLAIMABLE
        return _Open.LEASED if count(TaskStatus.CLAIMED) else _Open.NOTHING

    def _give_back(self, task: Task) -> None:
        """Release a task leased for this pool that no slot will run (unless a slot works on
        it already and its lease ran out: then the lease is that slot's, see ``_adopted``)."""
        if not self._adopted(task):
            return
        try:
            self._persist(lambda: self.swarm.release(task.id, task.token), task, TAKE_RELEASE)
        except SwarmError as exc:  # its lease will expire and give it back anyway
            self._error(f"release of {task.id} failed: {exc}")
        finally:
            self._let_go(task)

    # --- a report that leases the slot's next task

    def _report_leasing_next(
        self, task: Task, worker: str, send: Callable[[dict[str, Any]], Any]
    ) -> Finding:
        """Send the report of ``task`` (``report`` or ``answer``, riding out an outage) that,
        when the pool takes more, leases this slot's next task in the same call: ``send`` gets
        the keywords that ask for it (``claim_next``, ``next_lease_s``), or none.

        Through an outage the report is tried again without them: a claim of the pool then
        might lease again a task of its own whose lease ran out meanwhile (its report waits
        too, or its agent runs on). Once the report is taken, it is sent once more with them,
        which answers the lease the first try took if Redis applied it but its reply was lost,
        and never leases another task (the same finding id: docs/tasks.md)."""
        going_on = not self._claims_over() and not self._holding() and self._take_ticket()
        following: Task | None = None
        try:
            if not going_on:
                alone: Finding = self._persist(lambda: send({}), task)
                return alone
            more = {"claim_next": list(self.options.queues), "next_lease_s": self.options.lease_s}
            stored: Finding
            try:
                with self._saying_dead_lettered():
                    stored, following = self.told_if_unanswered(
                        task.id, TAKE_REPORT, lambda: send(more)
                    )
            except ConnectionFailed as exc:
                # (its lease is asked again below, the same finding id getting it back; a
                # renewal that meets that lease first proves it by the next task's lease
                # secret, which the report's error carries)
                self._claim_unanswered(worker, exc.lease_secrets)
                self._wait_for_redis(task.id, TAKE_REPORT, exc)
                stored = self._persist(lambda: send({}), task)
                with self._saying_dead_lettered():
                    _, following = self._persist(lambda: send(more), task)
                self._redis_back(task.id)
        finally:
            if going_on and following is None:
                self._return_ticket()
        if following is not None:
            self._next[worker] = following
        return stored
