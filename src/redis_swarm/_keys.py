"""Every Redis key redis-swarm uses, built here and nowhere else.

All coordination keys of one swarm share the hash tag ``{SWARM}``: ``rs:{SWARM}:...``, so that
every Lua script touches a single slot and stays atomic on a Redis Cluster. Records live in a
few per-swarm hashes (not one key per record), so scripts receive every key they touch through
KEYS and never build one, but for a waiting worker's wake list, which a post learns of as it
runs (``waiter_wake``). Large immutable context chunks carry their own tag, so that memory
spreads across cluster nodes.

Names that end up in keys (swarm, queue, agent, owner) are validated by ``_validate`` first;
free-text labels such as pass names are hashed, so any text can be a pass name.
"""

from __future__ import annotations

import hashlib

from ._errors import ValidationError
from ._validate import MAX_NAME, check_swarm_name

__all__ = [
    "ASK_PREFIX",
    "ASSIST_QUEUE",
    "PREFIX",
    "Keys",
    "ask_queue",
    "asked_owner",
    "chunk_key",
    "is_ask_queue",
    "label_id",
    "swarm_key_patterns",
]

PREFIX = "rs"


# The queue of the questions asked of an owner (a shard's context, an agent): ``ask.OWNER``.
ASK_PREFIX = "ask."
# The queue of peer assist: workers ask it when blocked, idle workers answer (swarm run
# --queue main --queue assist). A target of ``ask`` even before anything was posted to it.
ASSIST_QUEUE = "assist"


def ask_queue(owner: str) -> str:
    """The queue name of the questions asked of ``owner`` (``swarm ask`` / ``swarm serve``)."""
    return ASK_PREFIX + owner


def asked_owner(queue: str) -> str | None:
    """The owner whose questions ``queue`` holds (``ask_queue``'s inverse), None for any
    other queue (the peer-assist queue's are no shard's)."""
    return queue.removeprefix(ASK_PREFIX) if queue.startswith(ASK_PREFIX) else None


# The longest owner (or agent) that can be asked: its ask queue, ``ask.OWNER``, is a name.
MAX_ASKED_NAME = MAX_NAME - len(ASK_PREFIX)


def askable(name: str, what: str = "an owner or agent asked") -> str:
    """``name`` (checked as a name already) when its ask queue is a name short enough: the
    limit said in the owner's terms, never as the length of a queue the user never chose."""
    if len(name) > MAX_ASKED_NAME:
        raise ValidationError(
            f"{name[:40]}... is {len(name)} characters long: too long a name to be asked "
            f"(its questions go to the queue {ask_queue('OWNER')}, a name of at most "
            f"{MAX_NAME} characters): {what} has at most {MAX_ASKED_NAME} characters; "
            "publish its context under a shorter owner"
        )
    return name


def is_ask_queue(queue: str) -> bool:
    """True for a queue of questions: an owner's ask queue, or the peer-assist queue."""
    return queue.startswith(ASK_PREFIX) or queue == ASSIST_QUEUE


def label_id(label: str) -> str:
    """A short stable id for free text (pass names) that may hold any character."""
    return hashlib.blake2b(label.encode(), digest_size=8).hexdigest()


# The characters of a chunk's digest in its hash tag.
_CHUNK_TAG_CHARS = 16


def chunk_key(swarm: str, digest: str) -> str:
    """A context chunk, keyed by its content hash under a tag of its own."""
    return f"{PREFIX}:chunk:{{{swarm}.{digest[:_CHUNK_TAG_CHARS]}}}:{digest}"


def swarm_key_patterns(swarm: str) -> tuple[str, str]:
    """The SCAN patterns of every key of ``swarm``: its records (one hash tag) and its
    context chunks (a tag each, on any node of a cluster). The chunk pattern matches the
    tag's digest characters one by one: a ``*`` there would also match the chunks of a swarm
    whose name is this one's and more after a dot (``a`` and ``a.b``)."""
    name = check_swarm_name(swarm)
    return f"{PREFIX}:{{{name}}}:*", f"{PREFIX}:chunk:{{{name}.{'?' * _CHUNK_TAG_CHARS}}}:*"


class Keys:
    """Key builders bound to one swarm."""

    __slots__ = ("prefix", "swarm")

    def __init__(self, swarm: str) -> None:
        self.swarm = check_swarm_name(swarm)
        self.prefix = f"{PREFIX}:{{{swarm}}}:"

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # --- the event log: one capped stream, the truth that watch, dashboard and wait follow
    @property
    def events(self) -> str:
        return self._k("events")

    # --- tasks
    @property
    def tasks(self) -> str:
        """HASH task id -> task state (JSON)."""
        return self._k("tasks")

    @property
    def task_data(self) -> str:
        """HASH task id -> the task's immutable payload (JSON)."""
        return self._k("task_data")

    @property
    def task_index(self) -> str:
        """ZSET of every task id by creation time, for listing with a cursor."""
        return self._k("task_index")

    @property
    def dedupe(self) -> str:
        """HASH queue|dedupe_key -> task id."""
        return self._k("dedupe")

    @property
    def counts(self) -> str:
        """HASH queue|status -> count: queue_stats in O(queues); shard:NAME|status -> count of
        the tasks a shard posted (its ``parent``); ``#seq`` the posting sequence. Its fields
        also name every queue ever posted to (a post creates QUEUE|pending or |delayed)."""
        return self._k("counts")

    @property
    def queue_settings(self) -> str:
        """HASH queue|setting -> value: a queue's defaults for the tasks posted to it
        (``max_abandons``)."""
        return self._k("queue_settings")

    def pending(self, queue: str) -> str:
        """ZSET of claimable task ids of a queue, ordered by priority then age."""
        return self._k("q", queue, "pending")

    def delayed(self, queue: str) -> str:
        """ZSET task id -> not_before (ms) of tasks not yet eligible (delayed or backing off)."""
        return self._k("q", queue, "delayed")

    def wake(self, queue: str) -> str:
        """LIST of wake-up tokens of a queue (a hint, capped): every script that makes a task
        claimable pushes one, a waiting claim BLPOPs it, a claim that finds nothing clears it."""
        return self._k("q", queue, "wake")

    def waiters(self, queue: str) -> str:
        """LIST of the workers waiting for a task of this queue alone, the last to begin
        first (a waiting claim pushes its name right before its BLPOP; the claim script
        behind the wait takes it out, and keeps the newest 256). A post pushes each new
        task's token to the worker on top, to its ``waiter_wake`` list of the queue, instead
        of the queue's wake list, where Redis serves the waiter that began first: so one
        warm worker serves a stream of tasks while the others sleep (lua/_tasks.lua, wake).
        The name of a worker killed mid-wait stays until a post pops it (one token given to
        nobody, expiring with its list) or the cap drops it."""
        return self._k("q", queue, "waiters")

    def worker_wake(self, worker: str) -> str:
        """LIST, short-lived: the token a report that will not complete its task pushes for
        its own worker, whose wait is pipelined behind the report (``report``'s ``wait_s``),
        so that the wait ends at once; popped by that wait, else expiring within a minute.
        Laid out as a queue's wake list (a queue name holds no ':', so none is named
        ``worker:NAME``): one BLPOP waits on both, and an ACL selector must allow a command
        on all its keys at once (the worker's selector of wake lists does)."""
        return self._k("q", f"worker:{worker}", "wake")

    def waiter_wake(self, worker: str, queue: str) -> str:
        """LIST, short-lived: the token a post gives ``worker`` waiting on ``queue`` alone,
        on top of the queue's ``waiters``; popped by its wait, else expiring within a minute.
        One per queue: two processes sharing a worker name, waiting on two queues, each
        wake for their own queue's tasks only. Laid out as ``worker_wake`` (a name holds no
        '@'), so that the worker's selector of wake lists allows it. The one key a script
        builds itself (a post learns the waiting workers' names as it runs): lua/_tasks.lua's
        ``wake`` writes this layout again, and tests/test_tasks_waiters.py checks the two
        agree."""
        return self._k("q", f"worker:{worker}@{queue}", "wake")

    def leases(self, queue: str) -> str:
        """ZSET task id -> lease deadline (ms) of a queue's claimed tasks: a claim on the queue
        reclaims the expired ones from here (per queue, so that a claim never has to skip the
        expired leases of queues it was not given)."""
        return self._k("q", queue, "leases")

    def dead(self, queue: str) -> str:
        """ZSET of dead-lettered task ids of a queue, by time of death."""
        return self._k("q", queue, "dead")

    @property
    def pass_counts(self) -> str:
        """HASH pass-id|status -> count, and pass-id -> pass name."""
        return self._k("pass_counts")

    @property
    def retired_passes(self) -> str:
        """HASH pass name -> JSON {at, tasks, findings}: the passes ``retire_pass``
        removed (added up over its runs), so that a synthesis citing their findings says
        they were retired, not lost."""
        return self._k("retired_passes")

    @property
    def retired_questions(self) -> str:
        """HASH ask queue -> JSON {at, questions, findings, walked}: the questions
        ``retire_questions`` removed of each queue of questions (added up over its runs), and
        ``walked`` (ms), the creation time before which a completed run left no question of
        the queue: the next run walks the task index from there."""
        return self._k("retired_questions")

    def pass_tasks(self, pass_name: str) -> str:
        """ZSET of the task ids of a pass."""
        return self._k("pass", label_id(pass_name), "tasks")

    def asked(self, task_id: str) -> str:
        """ZSET question id -> time (ms): the questions asked by whoever works on a task
        (``ask`` with the asker's task), so that its lineage shows the answers it used. A
        question ``retire_questions`` removed stays, its score then minus when it was
        retired (so that lineage says it was retired, and when)."""
        return self._k("asked", task_id)

    def webhooks(self, task_id: str) -> str:
        """HASH of a task's webhooks (push notifications, ``swarm a2a``): webhook id -> its
        record, and ``id|sent`` -> the id of the last event claimed for delivery to it."""
        return self._k("webhooks", task_id)

    # --- findings and syntheses
    @property
    def findings(self) -> str:
        """HASH finding id -> finding (JSON)."""
        return self._k("findings")

    @property
    def finding_index(self) -> str:
        """ZSET of every finding id by time."""
        return self._k("finding_index")

    def findings_by(self, dimension: str, value: str) -> str:
        """ZSET of finding ids sharing a shard, queue or pass, by time."""
        return self._k("findings_by", dimension, label_id(value))

    @property
    def syntheses(self) -> str:
        """HASH synthesis id -> synthesis (JSON)."""
        return self._k("syntheses")

    @property
    def synthesis_index(self) -> str:
        """ZSET of every synthesis id by time."""
        return self._k("synthesis_index")

    # --- contexts
    @property
    def contexts(self) -> str:
        """HASH owner -> manifest (JSON) of the owner's current version: the pointer."""
        return self._k("contexts")

    @property
    def context_manifests(self) -> str:
        """HASH owner|version -> manifest (JSON) of every kept version."""
        return self._k("context_manifests")

    def context_history(self, owner: str) -> str:
        """ZSET version -> publish time of an owner's kept versions."""
        return self._k("ctx", owner, "history")

    def context_copy(self, owner: str) -> str:
        """STRING: the bytes of an owner's current version, kept whole beside its chunks when
        it is small enough (``Limits.context_copy_bytes``), so that a reader can fetch the
        pointer and them in one round trip; in the swarm's slot, as the pointer."""
        return self._k("ctx", owner, "current")

    @property
    def chunk_refs(self) -> str:
        """HASH chunk digest -> number of kept versions that use it."""
        return self._k("chunk_refs")

    def chunk(self, digest: str) -> str:
        return chunk_key(self.swarm, digest)

    @property
    def chunk_holds(self) -> str:
        """HASH holder token -> JSON list of the chunk digests it holds, for every token that
        is not a kept version's: a publish in flight, or a hold to release (the gc journal)."""
        return self._k("chunk_holds")

    @property
    def holds_publishing(self) -> str:
        """ZSET holder token -> start (ms) of the publishes in flight."""
        return self._k("holds_publishing")

    @property
    def holds_releasing(self) -> str:
        """ZSET holder token -> time (ms) from which its chunks are to be released."""
        return self._k("holds_releasing")

    # --- agents and messages
    @property
    def agents(self) -> str:
        """HASH agent id -> agent record (JSON)."""
        return self._k("agents")

    @property
    def presence(self) -> str:
        """ZSET agent id -> last heartbeat (ms)."""
        return self._k("presence")

    @property
    def departures(self) -> str:
        """ZSET agent|token -> time (ms) of recent deregistrations, so that a deregister sent
        again after its reply was lost is recognised (bounded in age and number)."""
        return self._k("departures")

    def inbox(self, agent: str) -> str:
        """STREAM of messages to one agent: the unread ones, and its newest read ones."""
        return self._k("inbox", agent)

    @property
    def broadcast(self) -> str:
        """STREAM of messages to every agent."""
        return self._k("broadcast")

    @property
    def cursors(self) -> str:
        """HASH agent id -> last broadcast id it read; agent|inbox -> last inbox id it read;
        agent|pending -> its acknowledged read not yet committed and how many read messages
        its inbox holds; agent|gap -> the broadcasts trimmed before it read them (the widest
        range lost; message_status counts none of them read by it) (see lua/inbox_read.lua)."""
        return self._k("cursors")

    @property
    def messages(self) -> str:
        """HASH message id -> its entry for message_status, of the newest messages sent:
        'TO STREAM_ID AT FROM READERS' and a broadcast's AGENT=COPY_ID tokens (the one
        account of the format: lua/inbox_read.lua's header)."""
        return self._k("messages")

    @property
    def message_order(self) -> str:
        """LIST of the ids in ``messages``, oldest first, so that the index stays bounded."""
        return self._k("message_order")

    # --- a2a-sdk task stores (redis_swarm.a2a): an A2A server's tasks, per owner (the SDK's
    # owner scope: the caller's user name, hashed, so that any name fits a key)
    def a2a_records(self, owner: str) -> str:
        """HASH ``t|TASK-ID`` -> the task (protobuf bytes), ``m|TASK-ID`` -> its meta (JSON:
        version, state, context digest, sort key, last write id), of one owner."""
        return self._k("a2a", label_id(owner), "records")

    def a2a_index(self, owner: str) -> str:
        """ZSET (lexicographic, scores 0) of one owner's tasks: each task once per listing it
        belongs to (all, its context, its state, both), in ListTasks order (lua/_a2a_store)."""
        return self._k("a2a", label_id(owner), "index")

    def a2a_events(self, task_id: str) -> str:
        """STREAM of one task's events, entry id = the task version the event produced, so
        that a replica reads on after any version (the SDK's TaskEventStream has no owner)."""
        return self._k("a2a", "events", label_id(task_id))

    # --- agent runs paid for that no other record holds (a pipeline's: _ops.unrecorded)
    def unrecorded_runs(self, owner: str) -> str:
        """HASH run key -> JSON {pass, what, usage, anchor}: the agent runs one owner (a
        pipeline's run, named by free text) paid for that no other record holds."""
        return self._k("unrecorded", label_id(owner))

    # --- scratch space (swarm bench)
    def scratch(self, name: str) -> str:
        """A key ``swarm bench`` may write and delete (its floor measurement)."""
        return self._k("scratch", name)
