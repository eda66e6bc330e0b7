"""Bad input against the real API (both shells): every refusal is one clear SwarmError that
says what to do, nothing half-stored, and the swarm's invariants hold after every case.

Explicit cases first (names, payloads, wrong types, unknown ids, forged and stale tokens,
concurrent publishes, a port that is not Redis), then property tests with hypothesis.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from redis_swarm import (
    AlreadyCompleted,
    AsyncSwarm,
    ConfigError,
    Conflict,
    ConnectionFailed,
    LeaseLost,
    NotFound,
    PayloadTooLarge,
    Settings,
    Swarm,
    SwarmError,
    Task,
    TaskStatus,
    ValidationError,
)
from redis_swarm._keys import Keys
from redis_swarm._validate import MAX_JSON_DEPTH, begins_like_option

from ._handles import must, untyped
from ._invariants import check_swarm
from ._servers import RedisServer

# A refusal says what to do: an instruction after the description of the problem.
_ADVICE = re.compile(
    r"\b(use|shorten|check|give|pass|fix|store|publish|flatten|register|raise|put|name|"
    r"report|split|list|stop|move on|must be|say|send|try|allow|point|read|retry|"
    r"broadcast|deregister|requeue|lower|at most|at least|between|needs?|only|the limit is|"
    r"not both|has \d+)\b",
    re.IGNORECASE,
)

# A token of the right shape that no claim issued: the call fails for another reason.
WELL_FORMED_TOKEN = "1.aaaaaaaaaaaaaaaaaaaaaa"


def assert_clear(exc: BaseException) -> None:
    """A SwarmError whose message says what went wrong and what to do next."""
    assert isinstance(exc, SwarmError), f"{type(exc).__name__}: {exc}"
    text = str(exc)
    assert len(text) >= 20, text
    explained = re.search(r"[:;] *\S+ \S+ \S+", text)  # a problem, then what to know or do
    assert _ADVICE.search(text) or explained, f"no advice in: {text}"
    assert "Traceback" not in text and "redis.exceptions" not in text


def attempt(call: Callable[[], Any]) -> tuple[Any, SwarmError | None]:
    """The result of ``call``, or the SwarmError it raised."""
    try:
        return call(), None
    except SwarmError as exc:
        return None, exc


def refused(call: Callable[[], Any], kind: type[SwarmError] = ValidationError) -> SwarmError:
    """Run ``call``; it must raise ``kind`` with a clear message. Returns the error."""
    with pytest.raises(SwarmError) as info:
        call()
    assert isinstance(info.value, kind), f"{type(info.value).__name__}: {info.value}"
    assert_clear(info.value)
    return info.value


@pytest.fixture
def raw(redis_server: RedisServer, redis_url: str) -> Iterator[redis.Redis]:
    client = redis_server.client()
    yield client
    client.close()


@dataclass
class World:
    """A swarm with an agent, a pending task, a claimed task and a context."""

    swarm: Swarm
    raw: redis.Redis
    pending: Task
    claimed: Task
    adds_keys: bool = False  # a test that stores something on purpose says so

    @property
    def loose(self) -> Any:
        """The handle with its types off, for the calls that pass wrong types on purpose."""
        return untyped(self.swarm)


@pytest.fixture
def world(swarm: Swarm, raw: redis.Redis) -> Iterator[World]:
    swarm.register("worker", name="w1")
    swarm.publish_context("s1", "line one\nline two\n", source="test")
    swarm.post_task("q", "claimed one", {"n": 1}, pass_name="p", parent="s1")
    claimed = must(swarm.claim("q", worker="w1", lease_s=60))
    pending = swarm.post_task("q", "pending one", {"n": 2}, pass_name="p", parent="s1")
    before = raw.dbsize()
    world = World(swarm, raw, pending, claimed)
    yield world
    # Whatever was refused, the swarm is consistent afterwards, and nothing was added.
    check_swarm(raw, "test")
    assert world.adds_keys or raw.dbsize() == before


# --- names: anything that goes into a key

BAD_NAMES = {
    "colon": "a:b",
    "open-brace": "a{b",
    "close-brace": "a}b",
    "star": "a*",
    "glob": "a?[b]",
    "space": "a b",
    "nul": "a\x00b",
    "newline": "a\nb",
    "escape": "\x1b[31mred",
    "accent": "café",
    "cjk": "日本語",
    "emoji": "agent😀",
    "empty": "",
    "10KB": "a" * 10_240,
    "surrogate": "a\ud800",
}

NAME_CALLS: dict[str, Callable[[World, str], Any]] = {
    "queue": lambda w, n: w.swarm.post_task(n, "work"),
    "claim queue": lambda w, n: w.swarm.claim(n, worker="w1"),
    "worker": lambda w, n: w.swarm.claim("q", worker=n),
    "parent": lambda w, n: w.swarm.post_task("q", "work", parent=n),
    "role": lambda w, n: w.swarm.register(n),
    "agent name": lambda w, n: w.swarm.register("worker", name=n),
    "heartbeat": lambda w, n: w.swarm.heartbeat(n),
    "recipient": lambda w, n: w.swarm.send(n, "hello"),
    "sender": lambda w, n: w.swarm.send("w1", "hello", sender=n),
    "message kind": lambda w, n: w.swarm.send("w1", "hello", kind=n),
    "inbox": lambda w, n: w.swarm.inbox(n),
    "owner": lambda w, n: w.swarm.publish_context(n, "text", source="s"),
    "read owner": lambda w, n: w.swarm.get_context(n),
    "shard": lambda w, n: w.swarm.findings(shard=n),
    "synthesis shard": lambda w, n: w.swarm.synthesize(n, "p", "text", []),
    "task id": lambda w, n: w.swarm.get_task(n),
    "renew id": lambda w, n: w.swarm.renew(n, WELL_FORMED_TOKEN),
    "report id": lambda w, n: w.swarm.report(n, WELL_FORMED_TOKEN, {"summary": "x"}),
    "finding id": lambda w, n: w.swarm.get_finding(n),
    "report finding id": lambda w, n: w.swarm.report(
        w.claimed.id, w.claimed.token, {"summary": "x"}, finding_id=n
    ),
    "list queue": lambda w, n: w.swarm.list_tasks(queue=n),
}


@pytest.mark.parametrize("bad", list(BAD_NAMES))
@pytest.mark.parametrize("where", list(NAME_CALLS))
def test_a_bad_name_is_refused_before_anything_is_stored(
    world: World, where: str, bad: str
) -> None:
    error = refused(lambda: NAME_CALLS[where](world, BAD_NAMES[bad]))
    assert re.search(r"use only ASCII letters|is empty|the limit is|characters long", str(error))


@pytest.mark.parametrize("bad", list(BAD_NAMES))
def test_a_bad_swarm_name_is_a_clear_error(redis_url: str, bad: str) -> None:
    refused(lambda: Swarm(redis_url, swarm=BAD_NAMES[bad]))
    refused(lambda: Settings.from_url(redis_url, swarm=BAD_NAMES[bad]))


# --- free text: labels may hold any character (they are hashed), but are bounded

ODD_TEXT = 'a:b {c} *d* e f\t"g" \\ 日本語 😀 \x1b[0m'
# A new pass name holds no control character (check_label's new): the odd text but those.
ODD_PASS = 'a:b {c} *d* e f "g" \\ 日本語 😀 [0m'


def test_free_text_labels_round_trip_exactly(world: World) -> None:
    s = world.swarm
    task = s.post_task("q", ODD_TEXT, {ODD_TEXT: ODD_TEXT}, pass_name=ODD_PASS,
                       dedupe_key=ODD_TEXT)  # fmt: skip
    assert s.get_task(task.id) == task
    assert (task.description, task.pass_name, task.dedupe_key) == (ODD_TEXT, ODD_PASS, ODD_TEXT)
    assert task.data == {ODD_TEXT: ODD_TEXT}
    assert s.pass_stats(ODD_PASS)["pending"] == 1
    world.adds_keys = True


def test_free_text_labels_are_bounded(world: World) -> None:
    s = world.swarm
    for label in ("pass_name", "dedupe_key"):
        for value in ("x" * 10_240, "", "a\ud800"):
            refused(functools.partial(world.loose.post_task, "q", "work", **{label: value}))
    refused(lambda: s.post_task("q", "a\ud800"))
    refused(lambda: s.post_task("q", "   "))
    refused(lambda: s.post_task("q", "x" * 70_000), PayloadTooLarge)
    refused(lambda: s.report(world.claimed.id, world.claimed.token, {"summary": "x" * 2001}))


# --- payloads


def deep_list(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def deep_dict(depth: int) -> Any:
    value: Any = {}
    for _ in range(depth):
        value = {"k": value}
    return value


class Opaque:
    pass


NOT_JSON = {
    "object": Opaque(),
    "set": {1, 2},
    "bytes": b"\x00\xff",
    "nan": math.nan,
    "infinity": math.inf,
    "function": len,
    "tuple key": {(1, 2): 3},
    "surrogate": {"text": "\udc80"},
    "nested 10,000 deep list": deep_list(10_000),
    "nested 10,000 deep dict": deep_dict(10_000),
    "nested just too deep": deep_dict(MAX_JSON_DEPTH + 1),
}

PAYLOAD_CALLS: dict[str, Callable[[World, Any], Any]] = {
    "task data": lambda w, v: w.swarm.post_task("q", "work", v),
    "batch data": lambda w, v: w.swarm.post_tasks(
        [{"queue": "q", "description": "ok"}, {"queue": "q", "description": "bad", "data": v}]
    ),
    "finding extra": lambda w, v: w.swarm.report(
        w.claimed.id, w.claimed.token, {"summary": "x", "extra": v}
    ),
    "message data": lambda w, v: w.swarm.send("w1", "hello", data={"v": v}),
    "agent metadata": lambda w, v: w.swarm.register("worker", name="w2", metadata={"v": v}),
}


@pytest.mark.parametrize("value", list(NOT_JSON))
@pytest.mark.parametrize("where", list(PAYLOAD_CALLS))
def test_a_payload_that_is_not_json_is_refused(world: World, where: str, value: str) -> None:
    error = refused(lambda: PAYLOAD_CALLS[where](world, NOT_JSON[value]))
    if "nested" in value:
        assert "nested" in str(error) and "flatten" in str(error)
    assert world.swarm.get_task(world.claimed.id).status is TaskStatus.CLAIMED


def test_nesting_up_to_the_limit_is_accepted(world: World) -> None:
    value = deep_dict(MAX_JSON_DEPTH - 1)
    task = world.swarm.post_task("q", "deep but fine", value)
    assert world.swarm.get_task(task.id).data == value
    world.adds_keys = True


@functools.cache
def hundred_mb() -> str:
    return "x" * 100_000_000


@pytest.mark.parametrize(
    "where",
    ["task data", "finding", "message", "context text", "context bytes", "agent metadata"],
)
def test_a_100_mb_payload_is_refused_with_its_size_and_limit(world: World, where: str) -> None:
    s = world.swarm
    HUNDRED_MB = hundred_mb()
    calls: dict[str, Callable[[], Any]] = {
        "task data": lambda: s.post_task("q", "work", {"blob": HUNDRED_MB}),
        "finding": lambda: s.report(
            world.claimed.id, world.claimed.token, {"summary": "x", "details": HUNDRED_MB}
        ),
        "message": lambda: s.send("w1", HUNDRED_MB),
        "context text": lambda: s.publish_context("s1", HUNDRED_MB, source="big"),
        "context bytes": lambda: s.publish_context("s1", HUNDRED_MB.encode(), source="big"),
        "agent metadata": lambda: s.register("worker", name="w2", metadata={"b": HUNDRED_MB}),
    }
    error = refused(calls[where], PayloadTooLarge)
    assert re.search(r"[\d,]{11}", str(error)), "the size is given"
    assert "limit" in str(error)


# --- wrong types and out-of-range values

WRONG: dict[str, Callable[[World], Any]] = {
    "queue int": lambda w: w.loose.post_task(123, "work"),
    "queue None": lambda w: w.loose.post_task(None, "work"),
    "description None": lambda w: w.loose.post_task("q", None),
    "description int": lambda w: w.loose.post_task("q", 5),
    "priority str": lambda w: w.loose.post_task("q", "w", priority="high"),
    "priority bool": lambda w: w.loose.post_task("q", "w", priority=True),
    "priority float": lambda w: w.loose.post_task("q", "w", priority=1.5),
    "priority huge": lambda w: w.loose.post_task("q", "w", priority=10**6),
    "max_attempts 0": lambda w: w.loose.post_task("q", "w", max_attempts=0),
    "lease 0": lambda w: w.loose.post_task("q", "w", lease_s=0),
    "lease negative": lambda w: w.loose.post_task("q", "w", lease_s=-5),
    "lease infinite": lambda w: w.loose.post_task("q", "w", lease_s=math.inf),
    "not_before str": lambda w: w.loose.post_task("q", "w", not_before="tomorrow"),
    "spec int": lambda w: w.loose.post_tasks([5]),
    "spec unknown field": lambda w: w.loose.post_tasks([{"queue": "q", "bogus": 1}]),
    "spec no description": lambda w: w.loose.post_tasks([{"queue": "q"}]),
    "claim no queues": lambda w: w.loose.claim([], worker="w1"),
    "claim queues int": lambda w: w.loose.claim(5, worker="w1"),
    "claim 65 queues": lambda w: w.loose.claim([f"q{i}" for i in range(65)], worker="w1"),
    "claim wait negative": lambda w: w.loose.claim("q", worker="w1", wait_s=-1),
    "claim lease nan": lambda w: w.loose.claim("q", worker="w1", lease_s=math.nan),
    "token str": lambda w: w.loose.renew(w.claimed.id, "1"),
    "token int": lambda w: w.loose.renew(w.claimed.id, 1),
    "token None": lambda w: w.loose.renew(w.claimed.id, None),
    "token no secret": lambda w: w.loose.renew(w.claimed.id, "1."),
    "token negative": lambda w: w.loose.renew(w.claimed.id, -1),
    "token huge": lambda w: w.loose.renew(w.claimed.id, 2**40),
    "fail error int": lambda w: w.loose.fail(w.claimed.id, w.claimed.token, 42),
    "finding list": lambda w: w.loose.report(w.claimed.id, w.claimed.token, ["x"]),
    "finding str": lambda w: w.loose.report(w.claimed.id, w.claimed.token, "found it"),
    "finding None": lambda w: w.loose.report(w.claimed.id, w.claimed.token, None),
    "finding no summary": lambda w: w.loose.report(w.claimed.id, w.claimed.token, {}),
    "summary int": lambda w: w.loose.report(w.claimed.id, w.claimed.token, {"summary": 1}),
    "summary empty": lambda w: w.loose.report(w.claimed.id, w.claimed.token, {"summary": " "}),
    "confidence 2": lambda w: w.loose.report(
        w.claimed.id, w.claimed.token, {"summary": "x", "confidence": 2}
    ),
    "sources str": lambda w: w.loose.report(
        w.claimed.id, w.claimed.token, {"summary": "x", "sources": "a.py"}
    ),
    "sources ints": lambda w: w.loose.report(
        w.claimed.id, w.claimed.token, {"summary": "x", "sources": [1]}
    ),
    "details int": lambda w: w.loose.report(
        w.claimed.id, w.claimed.token, {"summary": "x", "details": 5}
    ),
    "finding int key": lambda w: w.loose.report(
        w.claimed.id, w.claimed.token, {"summary": "x", 1: "y"}
    ),
    "wait timeout str": lambda w: w.loose.wait(timeout_s="1"),
    "wait both": lambda w: w.loose.wait(pass_name="p", queue="q"),
    "list limit 0": lambda w: w.loose.list_tasks(limit=0),
    "list status": lambda w: w.loose.list_tasks(status="bogus"),
    "list cursor int": lambda w: w.loose.list_tasks(cursor=5),
    "list cursor forged": lambda w: w.loose.list_tasks(cursor="zz:{}*"),
    "findings since negative": lambda w: w.loose.findings(since=-1),
    "events type": lambda w: w.loose.events(types="bogus"),
    "events since": lambda w: w.loose.events(since="abc"),
    "events limit": lambda w: w.loose.events(limit=0),
    "read lines reversed": lambda w: w.loose.read_context("s1", lines=(5, 1)),
    "read lines zero": lambda w: w.loose.read_context("s1", lines=(0, 1)),
    "read past the end": lambda w: w.loose.read_context("s1", lines=(100, 200)),
    "read both": lambda w: w.loose.read_context("s1", lines=(1, 1), offset=0),
    "search regex": lambda w: w.loose.search_context("s1", "(", regex=True),
    "search hits": lambda w: w.loose.search_context("s1", "x", max_hits=10**6),
    "version garbage": lambda w: w.loose.get_context("s1", version="zz"),
    "context int": lambda w: w.loose.publish_context("s1", 123, source="s"),
    "source None": lambda w: w.loose.publish_context("s1", "text", source=None),
    "source control": lambda w: w.loose.publish_context("s1", "text", source="a\nb"),
    "media type": lambda w: w.loose.publish_context("s1", "t", source="s", media_type="bad"),
    "compression": lambda w: w.loose.publish_context("s1", "t", source="s", compression="lz"),
    "capacity negative": lambda w: w.loose.register("worker", capacity_tokens=-1),
    "model control": lambda w: w.loose.register("worker", model="a\nb"),
    "metadata list": lambda w: w.loose.register("worker", metadata=[1]),
    "body None": lambda w: w.loose.send("w1", None),
    "message data list": lambda w: w.loose.send("w1", "x", data=[1]),
    "inbox limit": lambda w: w.loose.inbox("w1", limit=0),
    "stale negative": lambda w: w.loose.agents(stale_after_s=-1),
    "synthesis sources str": lambda w: w.loose.synthesize("s1", "p", "t", "f-1"),
    "synthesis text empty": lambda w: w.loose.synthesize("s1", "p", "", []),
    "request synthesis pass": lambda w: w.loose.request_synthesis("w1", "", "go"),
}


@pytest.mark.parametrize("case", list(WRONG))
def test_a_wrong_type_or_value_is_a_validation_error(world: World, case: str) -> None:
    refused(lambda: WRONG[case](world))


def test_a_bad_url_or_setting_is_a_config_error() -> None:
    for url in ("", "http://x", "redis://h:99999", "redis://h:port", "redis+sentinel://h:1"):
        refused(functools.partial(Settings.from_url, url), ConfigError)
    refused(lambda: Settings.from_url("redis://h:1", durability="maybe"), ConfigError)
    refused(lambda: Settings.from_url("redis://h:1", bogus=1), ConfigError)


# --- unknown ids

UNKNOWN: dict[str, Callable[[Any], Any]] = {
    "get task": lambda s: s.get_task("t-0000000000nothing"),
    "renew": lambda s: s.renew("t-0000000000nothing", WELL_FORMED_TOKEN),
    "fail": lambda s: s.fail("t-0000000000nothing", WELL_FORMED_TOKEN, "x"),
    "release": lambda s: s.release("t-0000000000nothing", WELL_FORMED_TOKEN),
    "cancel": lambda s: s.cancel("t-0000000000nothing"),
    "requeue": lambda s: s.requeue_dead("t-0000000000nothing"),
    "report": lambda s: s.report("t-0000000000nothing", WELL_FORMED_TOKEN, {"summary": "x"}),
    "get finding": lambda s: s.get_finding("f-0000000000nothing"),
    "get synthesis": lambda s: s.get_synthesis("s-0000000000nothing"),
    "synthesis cites": lambda s: s.synthesize("s1", "p", "t", ["f-0000000000nothing"]),
    "get agent": lambda s: s.get_agent("nobody"),
    "heartbeat": lambda s: s.heartbeat("nobody"),
    "deregister": lambda s: s.deregister("nobody"),
    "send": lambda s: s.send("nobody", "hello"),
    "inbox": lambda s: s.inbox("nobody"),
    "request synthesis": lambda s: s.request_synthesis("nobody", "p", "go"),
    "get context": lambda s: s.get_context("nobody"),
    "context info": lambda s: s.context_info("nobody"),
    "read context": lambda s: s.read_context("nobody", lines=(1, 2)),
    "search context": lambda s: s.search_context("nobody", "x"),
    "unknown version": lambda s: s.get_context("s1", version="0123456789abcdef"),
}


@pytest.mark.parametrize("case", list(UNKNOWN))
def test_an_unknown_id_is_not_found(world: World, case: str) -> None:
    refused(lambda: UNKNOWN[case](world.swarm), NotFound)


def test_invalid_state_changes_are_refused(world: World) -> None:
    s = world.swarm
    refused(lambda: s.requeue_dead(world.pending.id), Conflict)
    done = must(s.claim("q", worker="w1"))
    s.report(done.id, done.token, {"summary": "done"})
    refused(lambda: s.cancel(done.id), Conflict)
    world.adds_keys = True


# --- forged and stale tokens


def test_forged_tokens_are_refused_and_store_nothing(world: World) -> None:
    s, task = world.swarm, world.claimed
    assert task.token is not None
    secret = task.token.split(".", 1)[1]
    # a guessed secret; the right secret on another attempt; an attempt never made
    for token in (f"1.{'A' * 22}", f"2.{secret}", f"99.{secret}"):
        error = refused(functools.partial(s.report, task.id, token, {"summary": "x"}), LeaseLost)
        assert "never issued" in str(error)
        refused(functools.partial(s.renew, task.id, token), LeaseLost)
        refused(functools.partial(s.fail, task.id, token, "x"), LeaseLost)
        refused(functools.partial(s.release, task.id, token), LeaseLost)
    assert s.get_task(task.id).status is TaskStatus.CLAIMED
    assert len(s.findings()) == 0


def test_stale_tokens_lose_the_lease_but_a_late_finding_is_kept(world: World) -> None:
    s = world.swarm
    task = s.post_task("stale", "work")
    first = must(s.claim("stale", worker="w1", lease_s=0.05))
    time.sleep(0.1)
    second = must(s.claim("stale", worker="w2", lease_s=60))
    assert (first.id, first.attempts, second.attempts) == (task.id, 1, 2)
    error = refused(lambda: s.renew(task.id, first.token), LeaseLost)
    assert "attempt 2 holds it" in str(error)
    refused(lambda: s.release(task.id, first.token), LeaseLost)
    refused(lambda: s.fail(task.id, first.token, "x"), LeaseLost)
    # The first report wins whatever its token's age (the work is real) ...
    s.report(task.id, first.token, {"summary": "late but first"})
    # ... and the current holder's report is kept, superseded, with its id in the error.
    late = refused(lambda: s.report(task.id, second.token, {"summary": "second"}),
                   AlreadyCompleted)  # fmt: skip
    assert isinstance(late, AlreadyCompleted) and late.finding_id
    assert s.get_finding(late.finding_id).superseded
    refused(lambda: s.renew(task.id, second.token), LeaseLost)
    world.adds_keys = True


def test_a_finding_id_of_another_task_is_a_conflict(world: World) -> None:
    s = world.swarm
    other = must(s.claim("q", worker="w1"))
    finding = s.report(other.id, other.token, {"summary": "mine"})
    refused(
        lambda: s.report(
            world.claimed.id, world.claimed.token, {"summary": "x"}, finding_id=finding.id
        ),
        Conflict,
    )
    assert s.get_task(world.claimed.id).status is TaskStatus.CLAIMED
    world.adds_keys = True


# --- concurrency


def test_concurrent_publishes_of_one_context_keep_it_whole(
    redis_url: str, raw: redis.Redis
) -> None:
    texts = [f"publisher {n} line\n" * (20_000 + n) for n in range(8)]
    errors: list[BaseException] = []

    def publish(n: int) -> None:
        try:
            with Swarm(redis_url, swarm="test") as mine:
                for round_ in range(4):
                    mine.publish_context("shared", texts[(n + round_) % 8], source=f"p{n}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    async def publish_async() -> None:
        async with AsyncSwarm(redis_url, swarm="test") as mine:
            for text in texts[:4]:
                await mine.publish_context("shared", text, source="async")

    threads = [threading.Thread(target=publish, args=(n,)) for n in range(6)]
    threads.append(threading.Thread(target=lambda: asyncio.run(publish_async())))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    with Swarm(redis_url, swarm="test") as swarm:
        current = swarm.get_context("shared")
        assert current in texts
        versions = swarm.context_versions("shared")
        assert 1 <= len(versions) <= 3
        for info in versions:
            assert swarm.get_context("shared", version=info.version) in texts
    check_swarm(raw, "test")


# --- a port that is not Redis


class FakeServer:
    """A TCP server on a free port that answers like something other than Redis."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.listener.settimeout(0.1)
        self.closing = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        held: list[socket.socket] = []
        try:
            self._serve(held)
        finally:
            for conn in held:
                conn.close()

    def _serve(self, held: list[socket.socket]) -> None:
        while not self.closing:
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.behaviour == "silent":
                held.append(conn)  # accepts, reads nothing, says nothing
                continue
            if self.behaviour == "http":
                conn.recv(1024)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            elif self.behaviour == "ssh":
                conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
            elif self.behaviour == "binary":
                conn.recv(1024)
                conn.sendall(bytes(range(256)))
            conn.close()  # "hangup": accept and close at once

    def close(self) -> None:
        self.closing = True
        self.listener.close()
        self.thread.join(5)


@pytest.mark.parametrize("behaviour", ["http", "ssh", "binary", "hangup", "silent"])
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_port_that_is_not_redis_is_a_clear_connection_error(behaviour: str, kind: str) -> None:
    fake = FakeServer(behaviour)
    url = f"redis://127.0.0.1:{fake.port}"
    config = Settings.from_url(url, swarm="test", retries=1, socket_timeout=0.5)
    started = time.monotonic()
    try:
        if kind == "sync":
            with Swarm(config) as swarm:
                error = refused(lambda: swarm.post_task("q", "work"), ConnectionFailed)
        else:

            async def attempt() -> None:
                async with AsyncSwarm(config) as swarm:
                    await swarm.post_task("q", "work")

            error = refused(lambda: asyncio.run(attempt()), ConnectionFailed)
    finally:
        fake.close()
    assert f"127.0.0.1:{fake.port}" in str(error)
    assert time.monotonic() - started < 10


# --- property tests: whatever comes in, a result or a clear refusal, never a crash

PROPERTY = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=80)
json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | any_text
)
not_json_leaf = st.sampled_from([b"bytes", frozenset({1}), Opaque(), (1, 2)])
payloads = st.recursive(
    json_leaf | not_json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(any_text | st.integers(), inner, max_size=4)
    ),
    max_leaves=20,
)


def _reset(raw: redis.Redis) -> None:
    for key in raw.scan_iter(match="rs:*"):
        raw.delete(key)


@PROPERTY
@given(name=st.from_regex(r"[A-Za-z0-9._-]{1,20}", fullmatch=True) | any_text)
@example(name="..")  # (a queue may be named so; a new worker may not)
def test_any_text_as_a_name_is_accepted_exactly_or_refused(
    swarm: Swarm, raw: redis.Redis, name: str
) -> None:
    _reset(raw)
    valid = bool(re.fullmatch(r"[A-Za-z0-9._-]{1,128}", name))
    task, error = attempt(lambda: swarm.post_task(name, "work", parent=name if valid else None))
    if error is not None:
        assert not valid and isinstance(error, ValidationError)
        assert_clear(error)
    else:
        assert valid and task.queue == name
        # (a new worker named like an option, or only dots, is refused:
        # tests/test_claim_worker_dash.py, tests/test_agents_review_names.py)
        worker = "w" + name[:127] if begins_like_option(name) else name[:128]
        claimed = swarm.claim(name, worker=worker)
        assert claimed is not None and claimed.id == task.id
        swarm.report(claimed.id, claimed.token, {"summary": name})
    check_swarm(raw, "test")


def _key_not_a_string(value: Any) -> bool:
    if isinstance(value, dict):
        return any(type(k) is not str or _key_not_a_string(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_key_not_a_string(item) for item in value)
    return False


@PROPERTY
@given(value=payloads)
def test_any_payload_round_trips_or_is_refused(swarm: Swarm, raw: redis.Redis, value: Any) -> None:
    _reset(raw)
    try:
        expected = json.loads(json.dumps(value, allow_nan=False, ensure_ascii=False).encode())
    except (TypeError, ValueError, RecursionError):
        expected = ValidationError
    if _key_not_a_string(value):  # (json writes 1 as "1" without a word: refused, named)
        expected = ValidationError
    task, error = attempt(lambda: swarm.post_task("q", "work", value))
    if error is not None:
        assert expected is ValidationError, f"refused a JSON value: {error}"
        assert_clear(error)
    else:
        assert expected is not ValidationError, "stored a value that is not JSON"
        assert task.data == expected and swarm.get_task(task.id).data == expected
        claimed = must(swarm.claim("q", worker="w"))
        finding = swarm.report(claimed.id, claimed.token, {"summary": "s", "value": value})
        assert finding.extra == {"value": expected}
        assert swarm.get_finding(finding.id).extra == {"value": expected}
    check_swarm(raw, "test")


@PROPERTY
@given(body=any_text, pass_name=any_text, description=any_text)
def test_any_text_round_trips_or_is_refused(
    swarm: Swarm, raw: redis.Redis, body: str, pass_name: str, description: str
) -> None:
    _reset(raw)
    swarm.register("worker", name="w1")
    cases: list[tuple[Callable[[], Any], Callable[[Any], bool]]] = [
        (lambda: swarm.send("w1", body), lambda got: swarm.inbox("w1")[0].body == body),
        (
            lambda: swarm.post_task("q", description, pass_name=pass_name),
            lambda got: (got.description, got.pass_name) == (description, pass_name),
        ),
        (
            lambda: swarm.publish_context("o", body or "x", source="s"),
            lambda got: swarm.get_context("o") == (body or "x"),
        ),
    ]
    for call, check in cases:
        got, error = attempt(call)
        if error is not None:
            assert isinstance(error, ValidationError), error
            assert_clear(error)
        else:
            assert check(got)
    check_swarm(raw, "test")


def test_keys_of_this_module_stay_in_their_families(raw: redis.Redis) -> None:
    """The checker itself: a key outside every family is reported."""
    raw.set(Keys("test").prefix + "stray", 1)
    with pytest.raises(AssertionError, match="orphan key"):
        check_swarm(raw, "test")
    raw.delete(Keys("test").prefix + "stray")
