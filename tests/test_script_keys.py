"""Every Lua script touches only the keys it is given in KEYS (issue 9).

That is what makes a script correct on a Redis Cluster: the client routes it by its KEYS, and
all the keys of one swarm share one hash tag, so a script runs atomically on one node. Redis
itself only refuses a key of *another* slot; a key built inside a script from the swarm's tag
would pass unnoticed. So here every script runs with a checking prologue that shadows
``redis.call`` and ``redis.pcall`` and refuses any key that is not in KEYS, while a workload
drives every script through the real operations, on the standalone server and on the cluster.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from redis_swarm import AlreadyCompleted, LibraryReplaced, Limits, NotFound, Swarm, SwarmError
from redis_swarm import _scripts as scripts
from redis_swarm._keys import Keys
from redis_swarm._protocol import Batch, Call, Cmd, Operation
from redis_swarm._transport import Scripting

from ._a2a_ops import a2a_workload
from ._handles import must

# Every script runs with a local ``redis`` that checks the key of each call (every key of
# DEL) against its KEYS, then forwards to the real one; the prelude's helpers follow it.
# The library defines its helpers once, at its top (see _scripts): there a ``redis`` local that
# each call's prologue (CHECK_CALL) replaces with one checking that call's KEYS, so that the
# helpers and the script follow it. (The real one is the global, read at call time: a library
# is loaded without ``redis.call``, ``setmetatable`` or ``string``, and registers its
# functions with the ``redis`` it has then.)
CHECK_LIBRARY = """
local function _real_redis() return redis end
local redis = _real_redis()  -- while loading: the API that registers the functions
local function _check_keys(keys)
  local declared = {}
  for _, k in ipairs(keys) do declared[k] = true end
  local real = _real_redis()
  local function check(cmd, ...)
    local name = string.upper(cmd)
    if name == 'TIME' then return end
    local last = (name == 'DEL' or name == 'EXISTS' or name == 'UNLINK') and select('#', ...) or 1
    for i = 1, last do
      local key = select(i, ...)
      if not declared[key] then
        error('UNDECLARED_KEY ' .. name .. ' ' .. tostring(key) .. ' is not in KEYS')
      end
    end
  end
  redis = setmetatable({
    call = function(...) check(...) return real.call(...) end,
    pcall = function(...) check(...) return real.pcall(...) end,
  }, {__index = real})
end
"""
CHECK_CALL = "_check_keys(KEYS)\n"
# A script run by EVALSHA is self-contained: the same check, made and applied at its top.
CHECK_KEYS = CHECK_LIBRARY + CHECK_CALL


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[set[str]]:
    """The names of the scripts called while the test runs; every script (in the library, or
    by EVALSHA) runs with the key check. The checked library is another version: loading it
    over the real one, and the real one back at the end, is on purpose (``LibraryReplaced``
    not said), so that the tests after these find the server as it was."""
    names: set[str] = set()
    real_source, real_names, real_wire = scripts.script_source, scripts.script_names, Scripting.wire
    real_body, real_helpers = scripts.script_body, scripts.helpers_source
    builds_a_key = "return redis.call('GET', 'rs:{keys}:' .. ARGV[1])"  # for the check's own test

    def checked(name: str) -> str:
        return CHECK_KEYS + (builds_a_key if name == "builds_a_key" else real_source(name))

    def checked_body(name: str) -> str:
        return CHECK_CALL + (builds_a_key if name == "builds_a_key" else real_body(name))

    def recorded(self: Scripting, item: Cmd | Call) -> tuple[Any, ...]:
        if isinstance(item, Call):
            names.add(item.script)
        return real_wire(self, item)

    monkeypatch.setattr(scripts, "script_source", checked)
    monkeypatch.setattr(scripts, "script_body", checked_body)
    monkeypatch.setattr(scripts, "helpers_source", lambda: CHECK_LIBRARY + real_helpers())
    monkeypatch.setattr(scripts, "script_names", lambda: [*real_names(), "builds_a_key"])
    monkeypatch.setattr(Scripting, "wire", recorded)
    scripts.library.cache_clear()
    scripts.script_sha.cache_clear()
    url = next(request.getfixturevalue(f) for f in URLS if f in request.fixturenames)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LibraryReplaced)
        yield names
        monkeypatch.undo()
        scripts.library.cache_clear()
        scripts.script_sha.cache_clear()
        with Swarm(url, swarm="keys") as swarm:
            swarm.load_functions()


URLS = ("server_url", "redis_url")  # (the server a test of ``ran`` uses)


def call(script: str, keys: tuple[str, ...], args: tuple[Any, ...]) -> Operation[Any]:
    reply = yield Call(script, keys, args)
    return reply


def sent(*cmds: Cmd) -> Operation[Any]:
    reply = yield Batch(cmds)
    return reply


def workload(swarm: Swarm) -> None:
    """Every operation that runs a script, including the refusals and the cleanups."""
    shard = swarm.register("shard", name="shard-1", model="m")
    swarm.post_task("beats", "the task a heartbeat names", task_id="t")
    swarm.heartbeat(shard.id, current_task="t")  # (it checks that the task exists)
    swarm.ping()
    text = "".join(f"line {i}\n" for i in range(2000))
    swarm.publish_context(shard.id, text, source="a.md")
    for n in range(4):  # past the kept versions: pruned chunks are released
        swarm.publish_context(shard.id, text + f"v{n}\n", source="a.md")
    swarm.publish_context(shard.id, text + "v2\n", source="a.md")  # a kept one again
    posted = swarm.post_tasks(
        [
            {"queue": "q", "description": f"d{i}", "pass_name": "P1", "parent": shard.id}
            for i in range(4)
        ]
    )
    swarm.post_task("q2", "later", not_before=2**40, dedupe_key="k")
    task = must(swarm.claim(["q", "q2"], worker="w-1"))
    swarm.renew(task.id, task.token)
    finding = swarm.report(task.id, task.token, {"summary": "s"}, worker="w-1")
    with pytest.raises(AlreadyCompleted):
        swarm.report(task.id, task.token, {"summary": "late"})
    second = must(swarm.claim("q", worker="w-2"))
    swarm.fail(second.id, second.token, "boom", retry=False)
    swarm.requeue_dead(second.id)
    third = must(swarm.claim("q", worker="w-2"))
    swarm.release(third.id, third.token)
    swarm.cancel(posted[3].id)
    swarm.reap()
    swarm.synthesize(shard.id, "P1", "all", [finding.id])
    unleased = swarm.post_task("q3", "run by the shard itself").id  # task_report_unleased
    swarm.report(unleased, None, {"summary": "s"}, worker="w-3")
    assert swarm.findings(pass_name="P1").items
    assert swarm.list_tasks(queue="q").items
    assert swarm.syntheses().items
    worker = swarm.register("worker", name="w-9")
    hi = swarm.send(worker.id, "hi", sender=shard.id)
    swarm.broadcast("all", sender=shard.id)
    swarm.request_synthesis(shard.id, "P1", "please", sender=worker.id)
    with pytest.raises(NotFound):
        swarm.send("nobody", "hi")
    assert swarm.inbox(worker.id)
    assert swarm.get_message(worker.id, hi.id) == hi
    assert swarm.tally(worker.id, "loop_claims", "s1") == 1  # agent_swap
    swarm.mark_stale(worker.id)
    swarm.deregister(worker.id)
    swarm.sweep(0.0)
    a2a_workload(swarm)
    hook = swarm.set_webhook(task.id, "http://127.0.0.1:9/hook", token="t")
    assert swarm.claim_webhook_event(task.id, hook.id, "9999999999999-0")  # webhook_claim
    swarm.cancel(swarm.post_task("q", "settled", pass_name="P-retire").id)
    assert swarm.retire_pass("P-retire").tasks == 1
    with pytest.raises(SwarmError):  # unanswered: withdrawn, then retired
        swarm.ask("assist", "help?", timeout_s=0.01)
    assert swarm.retire_questions("assist", older_than_s=0).questions >= 1
    assert swarm.recount_counters() == ()  # counts_recount: nothing forged here
    swarm._run(sent(Cmd("ZREM", swarm.keys.task_index, task.id)))  # (an entry lost by hand)
    repaired = {e.index: e.lacking for e in swarm.repair_indexes()}  # index_repair
    assert task.id in repaired[swarm.keys.task_index]


def test_every_script_touches_only_its_keys(ran: set[str], server_url: str) -> None:
    limits = Limits(context_chunk_bytes=2048)  # many chunks, on several cluster nodes
    with Swarm(server_url, swarm="keys", limits=limits) as swarm:
        workload(swarm)
        assert swarm._run(call("ping", (), (5,))) == 5
    assert ran == set(scripts.script_names()) - {"builds_a_key"}


def test_the_check_refuses_a_key_built_in_the_script(ran: set[str], redis_url: str) -> None:
    """Same slot, so Redis would run it even on a cluster: the check does not."""
    keys = Keys("keys")
    with Swarm(redis_url, swarm="keys") as swarm:
        assert swarm._run(call("builds_a_key", (keys.tasks,), ("tasks",))) is None  # declared
        with pytest.raises(SwarmError, match=re.escape("UNDECLARED_KEY GET rs:{keys}:tasks")):
            swarm._run(call("builds_a_key", (keys.events,), ("tasks",)))
