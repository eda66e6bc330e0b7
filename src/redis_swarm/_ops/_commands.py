"""The Redis commands each operation and each script sends: the one table the ACL roles are
built from (``_acl``), so that a role is an allowlist and a new operation cannot silently
widen one.

- ``OPERATIONS``: every operation (a public generator of ``_ops``), by name: the commands it
  sends itself, the scripts it calls, and whether a worker may run it. Shards and
  coordinators may run them all. A worker's operation may call some scripts only for a
  shard or coordinator (``shard_only``: a report without a token), which a worker's role
  does not get: Redis refuses them to it.
- ``SCRIPTS``: every file of ``lua/``: the commands it runs (``redis.call``). A script also
  runs what the files it includes run (``_prelude`` always, ``--#include _NAME``).
- ``TRANSPORT``: what the client shells and redis-py send around the operations (scripts run
  as FCALL/FCALL_RO of their own function, or by EVALSHA where Functions do not exist).
- ``WORKER_WRITES``: the only writes a worker may do, per key of the layout (``_keys.Keys``);
  a key not listed is read-only for workers (``WORKER_READ_ONLY`` lists them, so that a new
  key forces a decision). Redis checks every command a script runs against its caller's
  rights, so these are the writes the worker's scripts do.

Commands are lower case, a subcommand as ``container|sub`` (the ACL's spelling). The tests
check every row against what the operations really send and the scripts really run, and
prove with ``ACL DRYRUN`` over every command the server knows that a role allows nothing
else (tests/test_acl.py).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "OPERATIONS",
    "SCRIPTS",
    "SCRIPTS_BEFORE_FUNCTIONS",
    "SINCE",
    "TRANSPORT",
    "WORKER_READ_ONLY",
    "WORKER_WRITES",
    "Uses",
    "script_commands",
]


@dataclass(frozen=True)
class Uses:
    """What one operation sends."""

    commands: frozenset[str]
    scripts: frozenset[str]
    worker: bool
    # Of ``scripts``, those the operation calls only for a shard or coordinator: a worker's
    # role leaves them out even where it may run the operation.
    shard_only: frozenset[str] = frozenset()


def _uses(
    commands: str = "", scripts: str = "", *, worker: bool = False, shard_only: str = ""
) -> Uses:
    kept = frozenset(shard_only.split())
    return Uses(frozenset(commands.split()), frozenset(scripts.split()) | kept, worker, kept)


# What the doctor's read of every record sends (corrupt_records, record_damage).
_RECORD_DAMAGE = "hexists hget hgetall hkeys hscan hstrlen zcard zmscore zrange zscore"

OPERATIONS: dict[str, Uses] = {
    # server (info, config|get and function|list are optional: see _acl.WITHHELD)
    "ping": _uses("ping", worker=True),
    # (exists xinfo|stream zcard zrevrange: the swarm's streams, poisoned or not)
    "server_info": _uses(
        "info config|get function|list hello time exists xinfo|stream zcard zrevrange",
        "ping",
        worker=True,
    ),
    # the library each master holds (load_functions skips a load where it is current)
    "library_state": _uses("function|list", "ping", worker=True),
    "durability_plan": _uses("info config|get hello wait waitaof", worker=True),
    # tasks
    "post_task": _uses("", "task_post"),
    "post_tasks": _uses("", "task_post"),
    # (hexists: a worker named '-...' is refused unless registered: agents.register's rule)
    # (task_update: a task it leased whose data cannot be read is dead-lettered under its
    # lease, claiming.claimed; a report's claim_next, and the claim behind it, so too)
    # (lpush lrem: a wait on one queue stands on its waiters list while it waits)
    "claim": _uses("blpop hexists lpush lrem", "task_claim task_update", worker=True),
    "leave_waiters": _uses("lrem", worker=True),
    "claimed": _uses("", "task_update", worker=True),
    "taken_behind": _uses("", "task_update", worker=True),
    "give_up_damaged": _uses("", "task_update", worker=True),
    "renew": _uses("hget", "task_update", worker=True),
    "fail": _uses("hget", "task_update", worker=True),
    "add_failed_usage": _uses("hget", "task_update", worker=True),
    "release": _uses("hget", "task_update", worker=True),
    # (a cancelled claim or report releases what its reply leased)
    "give_back": _uses("hget", "task_update", worker=True),
    "cancel": _uses("hget", "task_update"),
    "requeue_dead": _uses("hget", "task_update"),
    # settling a whole pass or queue at once (swarm task cancel --pass, swarm task requeue
    # --pass) is a shard's or coordinator's decision, never a worker's: each run first calls
    # rs_counts_recount with no queue (it recounts nothing), which a worker's role lacks, so
    # Redis refuses a worker before anything changes (one task's cancel stays open to it)
    "cancel_tasks": _uses("hgetall hkeys hmget zcard zrange", "counts_recount task_update"),
    "requeue_tasks": _uses("hgetall hkeys hmget zcard zrange", "counts_recount task_update"),
    "reap": _uses("hkeys", "task_claim", worker=True),
    "reap_due": _uses("", "task_claim", worker=True),
    "get_task": _uses("hget", worker=True),
    "task_statuses": _uses("hmget", worker=True),
    "list_tasks": _uses("hgetall hmget", "index_page", worker=True),
    "configure_queue": _uses("hget hset"),
    "queue_stats": _uses("hgetall hmget", worker=True),
    "pass_stats": _uses("hmget", worker=True),
    "shard_stats": _uses("hmget zcard", worker=True),
    # (hget: a pass with no task is refused, named retired when retired_passes records it)
    "wait": _uses("hget hgetall hkeys hmget xread xrevrange", "task_claim", worker=True),
    # findings and syntheses
    # (a report without a token, task_report_unleased, completes any task no live lease
    # holds: a shard's, coordinator's or admin's, never a worker's; docs/security.md)
    "report": _uses(
        "hget hexists blpop llen lpush lrem",
        "task_report task_claim task_update",
        worker=True,
        shard_only="task_report_unleased",
    ),
    "get_finding": _uses("hget", worker=True),
    "findings": _uses("", "index_page", worker=True),
    # (hexists: a pass name with whitespace at an end is written only if already posted to)
    "synthesize": _uses("hexists", "synthesis_create"),
    "get_synthesis": _uses("hget", worker=True),
    "syntheses": _uses("", "index_page", worker=True),
    # ask and answer (questions are tasks; a worker asks for peer assist, see WORKER_WRITES)
    "ask": _uses(
        "hexists hget hmget hset xrevrange xread zadd",
        "index_page task_post task_update",
        worker=True,
    ),
    "answer": _uses("hget", "task_report", worker=True, shard_only="task_report_unleased"),
    "answers_for": _uses("zrangebyscore hget", worker=True),
    # contexts: workers read them, shards publish
    "publish_context": _uses(
        "",
        "chunk_acquire chunk_put chunk_release context_gc context_hold context_lookup "
        "context_publish",
    ),
    "gc": _uses("hkeys hstrlen", "chunk_release context_gc"),
    "get_context": _uses("getrange hget hmget zrange zrevrange", worker=True),
    "get_context_bytes": _uses("getrange hget hmget zrange zrevrange", worker=True),
    "context_info": _uses("hget zrange zrevrange", worker=True),
    "context_versions": _uses("hmget zrevrange", worker=True),
    "contexts": _uses("hgetall", worker=True),
    "read_context": _uses("hget hmget zrange zrevrange", worker=True),
    "search_context": _uses("getrange hget hmget zrange zrevrange", worker=True),
    # agents
    "register": _uses("hexists", "agent_register", worker=True),
    "join": _uses("hget zscore", "agent_register", worker=True),
    "heartbeat": _uses("", "agent_heartbeat", worker=True),
    "deregister": _uses("", "agent_deregister", worker=True),
    "deregister_if_read": _uses("", "agent_deregister", worker=True),
    "agents": _uses("hgetall hkeys hmget time zrange zrevrange", worker=True),
    "get_agent": _uses("hget time zscore", worker=True),
    "held": _uses("hkeys hmget zrevrange", worker=True),  # who holds the newest leases
    # (hmget: the tasks asked for by id; the rest: ``held``'s newest leases)
    "leases_of": _uses("hkeys hmget zrevrange", worker=True),
    # (hkeys hmget: the leases held, whose holders a sweep keeps)
    "sweep": _uses("hkeys hmget time zcount zrangebyscore", "agent_sweep", worker=True),
    "mark_stale": _uses("hget time zscore", "agent_swap", worker=True),
    "tally": _uses("hget time zscore", "agent_swap", worker=True),
    # messages
    "send": _uses("", "message_send", worker=True),
    "broadcast": _uses("", "message_send", worker=True),
    "inbox": _uses("xrevrange xread", "inbox_read", worker=True),
    "mark_read": _uses("hget", "inbox_read", worker=True),  # (hget: a message id's seq)
    "give_back_inbox": _uses("", "inbox_read", worker=True),
    "message_status": _uses("hget hgetall xrange", worker=True),  # (xrange: a tie, _receivers)
    "get_message": _uses("xrange", "message_get", worker=True),
    "request_synthesis": _uses("hexists", "message_send", worker=True),  # (a message to a shard)
    # events
    "events": _uses("xrange xrevrange", worker=True),
    "events_trimmed": _uses("xinfo|stream xrevrange", worker=True),  # (a future since)
    "last_event_id": _uses("xrevrange", worker=True),
    "follow_start": _uses("xrevrange", worker=True),
    "follow_step": _uses("xread", worker=True),
    # the task and event stores of a2a-sdk servers (redis_swarm.a2a): an A2A server's user
    # is a shard or coordinator of its swarm (workers neither read nor write them)
    "a2a_save": _uses("", "a2a_task_save"),
    "a2a_get": _uses("hmget"),
    "a2a_list": _uses("", "a2a_task_list"),
    "a2a_delete": _uses("", "a2a_task_delete"),
    "a2a_publish": _uses("", "a2a_event_publish"),
    "a2a_events": _uses("xread"),
    "a2a_destroy": _uses("del"),
    # webhooks (swarm a2a's push notifications)
    "set_webhook": _uses("hexists xrevrange hset hsetnx"),
    "webhooks": _uses("hgetall"),
    "delete_webhook": _uses("hdel"),
    "claim_webhook_event": _uses("", "webhook_claim"),
    # views
    "status": _uses("hgetall hkeys hmget time xrevrange zrange zrevrange", worker=True),
    "passes": _uses("hgetall", worker=True),
    "recent": _uses("hkeys hmget zrevrange", worker=True),
    # (zmscore hexists: the indexes against the records; hgetall hkeys zcard zrange zscore
    # hexists: every entry of every index against its record, the tasks against their
    # findings; hget: a task a queue's set lacks, read again; hstrlen: each chunk's length)
    "corrupt_records": _uses(_RECORD_DAMAGE, worker=True),
    "record_damage": _uses(_RECORD_DAMAGE, worker=True),
    # one task's lost result (swarm task show): its finding looked for, then its late reports
    "finding_lost": _uses("hexists hget", "index_page", worker=True),
    # its repair (swarm doctor --repair): a shard's, coordinator's or admin's, never a
    # worker's (a worker may add to some indexes, never remove from one: its role gets no
    # rs_index_repair, and the script asks for the right to remove before any write)
    "repair_indexes": _uses(_RECORD_DAMAGE, "index_repair"),
    # the status counters against the queues' sets (swarm doctor), and their recount (swarm
    # doctor --recount): a shard's, coordinator's or admin's, never a worker's (a worker may
    # forge the counters: docs/security.md)
    "check_counters": _uses("hgetall hmget zcard", worker=True),
    "recount_counters": _uses("hkeys", "counts_recount"),
    "task_costs": _uses("hget", "index_page", worker=True),
    "pass_costs": _uses("hgetall hget", "index_page", worker=True),
    # a self-reported finding priced with the run its pipeline kept for it (lineage)
    "priced_findings": _uses("hmget", worker=True),
    # retiring a settled pass (swarm retire) deletes work: a shard's or coordinator's, never
    # a worker's; the retirement records are read by lineage
    "retire_pass": _uses("hgetall hkeys hget hscan time zcard zrange", "pass_retire"),
    "retired_passes": _uses("hgetall", worker=True),
    # retiring settled questions (swarm retire --questions) too; lineage reads what went
    "retire_questions": _uses("hget hkeys hmget hscan time zcard zrange", "questions_retire"),
    # and a pipeline's settled bookkeeping (swarm pipeline retire), by the same script
    "retire_queues": _uses("hget hkeys hmget hscan time zcard zrange", "questions_retire"),
    "retired_questions": _uses("hgetall", worker=True),
    "retired_asked": _uses("hexists zrangebyscore", worker=True),
    # agent runs paid for that no other record holds: a pipeline's run (a shard's or
    # coordinator's) keeps them, and deletes them when it retires the pipeline; every
    # reader of what a pass cost reads them
    "record_unrecorded_run": _uses("hsetnx"),
    "unrecorded_runs": _uses("hgetall", worker=True),
    "drop_unrecorded_runs": _uses("hlen del"),
}

SCRIPTS: dict[str, frozenset[str]] = {
    name: frozenset(commands.split())
    for name, commands in {
        "_prelude": "time xadd",
        "_a2a_store": "xadd xrevrange",
        "a2a_event_publish": "pexpire",
        "a2a_task_delete": "del hdel hget zrem",
        "a2a_task_list": "hget hmget zlexcount zrevrangebylex",
        "a2a_task_save": "hget hset pexpire zadd zrem",
        "_tasks": (
            "exists hget hgetall hincrby hset hsetnx llen lpop ltrim pexpire rpush xadd zadd "
            "zpopmin zrange zrangebyscore zrem"
        ),
        "agent_deregister": (
            "del hdel hexists hget xlen zadd zrem zremrangebyrank zremrangebyscore zscore"
        ),
        "agent_heartbeat": "hexists hget hset zadd",
        "agent_register": "hexists hget hset xrevrange zadd",
        "agent_sweep": "del hdel hget xlen zrem zscore",
        "agent_swap": "hget hset",
        "chunk_acquire": "hset hstrlen",
        "chunk_put": "hset",
        "chunk_release": "del hdel hlen hstrlen",
        "_holds": "hget hset zadd zrangebyscore zrem",
        "context_gc": "hdel hget zrangebyscore zrem",
        "context_hold": "hset zadd",
        "context_lookup": "hget",
        "context_publish": "del hdel hget hset set zadd zcard zrange zrem zrevrange zscore",
        "counts_recount": "hget hset zcard",
        "inbox_read": "hdel hget hmget hset xadd xrange xrevrange xtrim",
        "index_page": "hget hmget zcard zcount zrange zrank",
        "index_repair": "hexists zadd zrem",
        "message_get": "hexists hget xrange",
        "message_send": "hdel hexists hget hlen hset lpop rpush xadd xlen xrevrange",
        "pass_retire": "del hdel hget hincrby hmget hset zcard zrange zrem",
        "questions_retire": "del hdel hget hincrby hset zadd zcard zcount zrange zrank zrem",
        "ping": "",
        "synthesis_create": "hexists hget hset zadd zscore",
        "task_claim": "hget hset lpop lrem ltrim",
        "task_post": "hget hincrby hset hsetnx zadd",
        "_report": "hget hsetnx pexpire rpush zadd zscore",
        "task_report": "",
        "task_report_unleased": "",
        "task_update": "hget zadd zrem",
        "webhook_claim": "hexists hget hset",
    }.items()
}

# Which file each script includes besides the prelude (its ``--#include`` lines).
_INCLUDES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(
        (
            "counts_recount",
            "index_repair",
            "pass_retire",
            "questions_retire",
            "task_claim",
            "task_post",
            "task_update",
        ),
        ("_tasks",),
    ),
    **dict.fromkeys(("task_report", "task_report_unleased"), ("_tasks", "_report")),
    **dict.fromkeys(("context_gc", "context_hold", "context_publish"), ("_holds",)),
    **dict.fromkeys(
        ("a2a_event_publish", "a2a_task_delete", "a2a_task_list", "a2a_task_save"),
        ("_a2a_store",),
    ),
}

# Around the operations: connecting (AUTH/HELLO, redis-py's CLIENT SETINFO, health-check
# PING), strict durability (WAIT, WAITAOF), and a cluster client's topology and redirections.
# Scripts run as FCALL / FCALL_RO of their function (rs_<script>, see _scripts), allowed one
# function at a time; FUNCTION LOAD is an admin's ('swarm up', 'swarm acl --apply').
_TRANSPORT = """auth hello ping select client|setinfo client|setname
    wait waitaof readonly asking cluster|slots cluster|shards command"""
TRANSPORT = frozenset(_TRANSPORT.split())
# Where Functions do not exist (Redis 6.2), scripts run by EVALSHA, loaded after NOSCRIPT.
SCRIPTS_BEFORE_FUNCTIONS = frozenset({"evalsha", "script|load"})

# Commands a server older than their version does not know (ACL SETUSER refuses them).
SINCE: dict[str, tuple[int, int]] = {
    "client|setinfo": (7, 2),
    "waitaof": (7, 2),
    "cluster|shards": (7, 0),
    "function|list": (7, 0),
}

WORKER_WRITES: dict[str, frozenset[str]] = {
    member: frozenset(commands.split())
    for member, commands in {
        # the work queue: claim, renew, fail, release, reap and report move tasks
        "tasks": "hset hsetnx",
        "pending": "zadd zrem zpopmin",
        "leases": "zadd zrem",
        "delayed": "zadd zrem",
        # (zrem: a report completes a task dead-lettered meanwhile, the first report wins;
        # requeue and drop of a dead task stay a shard's: task_update asks the caller's rights)
        "dead": "zadd zrem",
        "counts": "hincrby",
        "pass_counts": "hincrby",
        "wake": "blpop lpop rpush ltrim",
        # report's wait_s: a refusal ends the wait (pexpire); laid out as a queue's wake
        # list, so the wake lists' selector reaches it too (lpop, ltrim)
        "worker_wake": "blpop lpop ltrim pexpire rpush",
        # a wait on one queue pushes its worker's name, the claim behind it takes it out
        # (and gives on the tokens posts gave the worker meanwhile); a post pops the
        # names it gives a task's token (lua/_tasks.lua, wake)
        "waiters": "lpop lpush lrem ltrim",
        "waiter_wake": "blpop lpop ltrim pexpire rpush",  # (worker_wake's selector reaches it)
        # findings: report adds one (it never deletes or rewrites the index)
        "findings": "hsetnx",
        "finding_index": "zadd",
        "findings_by": "zadd",
        # ask posts its question with task_post: a question is a task (docs/security.md)
        "task_data": "hset",
        "task_index": "zadd",
        "dedupe": "hset",
        "asked": "zadd",  # the questions asked while working on a task (lineage)
        # agents: register, heartbeat, deregister and sweep
        "agents": "hset hsetnx hdel",
        "presence": "zadd zrem",
        "departures": "zadd zremrangebyscore zremrangebyrank",  # deregister answers a retry
        # messages: send, broadcast, and the two-step acknowledged read
        "inbox": "xadd xtrim del",
        "broadcast": "xadd",
        "cursors": "hset hdel",
        "messages": "hset hdel",  # the index of who read what (message_status)
        "message_order": "rpush lpop",
        # every script records what it did in the event log (XADD ... MAXLEN ~)
        "events": "xadd",
    }.items()
}

WORKER_READ_ONLY = frozenset(
    {
        "contexts",
        "context_manifests",
        "context_history",
        "context_copy",
        "chunk_refs",
        "chunk",
        "chunk_holds",  # the gc journal: publish and gc are a shard's
        "holds_publishing",
        "holds_releasing",
        "scratch",  # swarm bench's floor measurement
        "queue_settings",  # configure_queue is a shard's
        "pass_tasks",
        "syntheses",  # synthesize is a shard's
        "synthesis_index",
        # the a2a-sdk stores are an A2A server's (a shard's or coordinator's user)
        "a2a_records",
        "a2a_index",
        "a2a_events",
        "webhooks",  # swarm a2a's push notifications are a shard's or coordinator's
        "retired_passes",  # swarm retire is a shard's or coordinator's
        "retired_questions",
        "unrecorded_runs",  # a pipeline's run keeps them (a shard's or coordinator's)
    }
)


def script_commands(name: str) -> frozenset[str]:
    """Every command script ``name`` may run: its own, and those of the files it includes."""
    parts = ("_prelude", *_INCLUDES.get(name, ()), name)
    return frozenset().union(*(SCRIPTS[part] for part in parts))
