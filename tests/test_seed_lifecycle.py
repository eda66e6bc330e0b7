"""The seed's classes over their lifetime: the agent names they make, a heartbeat that brings
a swept agent back, one task at a time, ``close()`` and ``with``; V1's messages of any JSON
value; wrong types refused with what to pass; and the examples of docs/seed.md, run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import (
    Conflict,
    Coordinator,
    EphemeralWorker,
    MemoryShard,
    NotFound,
    RedisSwarmCoordinator,
    SonnetCoordinator,
    Swarm,
    SwarmMemoryShard,
    ValidationError,
    Worker,
)
from redis_swarm.roles import SupersededFinding
from redis_swarm.roles._base import _agent_name

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "seed.md"


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url) as made:
        yield made


@pytest.fixture
def make(redis_url: str) -> Iterator[Callable[..., Any]]:
    """Makes role objects on the test's server, closed at the end (not with ``with``: the
    tests of other fixes pass or fail on their own)."""
    made: list[Any] = []

    def new(kind: Any, **options: Any) -> Any:
        made.append(kind(url=redis_url, **options))
        return made[-1]

    yield new
    for role in made:
        role.close()


# --- agent names


@pytest.mark.parametrize(
    ("label", "middle"),
    [
        ("recherche-été 研究", "recherche-ete"),
        ("Ünïcödé  spaces and: punctuation!", "Unicode__spaces_and__punctuation"),
        ("ﬁnance", "finance"),  # a ligature NFKD spells out
        ("研究", None),  # nothing left: the seed's shape without a label
        ("🚀 launch", "launch"),
        ("session_history", "session_history"),
    ],
)
def test_a_specialization_in_any_script_makes_a_valid_agent_name(
    label: str, middle: str | None, make: Callable[..., Any], swarm: Swarm
) -> None:
    shard = make(SwarmMemoryShard, specialization=label)
    expected = "memory_" + (f"{re.escape(middle)}_" if middle else "") + "[0-9a-f]{8}"
    assert re.fullmatch(expected, shard.agent_id)
    agent = swarm.get_agent(shard.agent_id)
    assert agent.specialization == label  # the text itself is kept as given


def test_the_longest_specialization_makes_a_name_within_the_bound(swarm: Swarm) -> None:
    # The longest label the core keeps (a specialization), behind the longest prefix.
    label = "é" * 200
    for prefix in ("memory", "worker", "coordinator"):
        name = _agent_name(prefix, label)
        assert swarm.register("shard", name=name, specialization=label).id == name


# --- a heartbeat brings a swept agent back


def sweep_everyone(swarm: Swarm) -> list[str]:
    return list(swarm.sweep(0))  # what V1's cleanup_stale_agents(0) does


def test_a_swept_shard_comes_back_at_its_heartbeat(make: Callable[..., Any], swarm: Swarm) -> None:
    shard = make(SwarmMemoryShard, specialization="long lived")
    task_id = shard.spawn_worker_task("analysis", "Read it", {})
    shard.collect_worker_finding(task_id, {"summary": "x"})
    before = swarm.get_agent(shard.agent_id)
    coordinator = make(SonnetCoordinator)
    assert shard.agent_id in sweep_everyone(swarm)
    assert coordinator.get_swarm_status()["total_shards"] == 0

    shard.heartbeat()

    agent = swarm.get_agent(shard.agent_id)
    assert agent.alive
    profile = ("role", "specialization", "model", "capacity_tokens", "parent", "metadata")
    assert {k: getattr(agent, k) for k in profile} == {k: getattr(before, k) for k in profile}
    [entry] = coordinator.get_swarm_status()["shards"]
    assert (entry["shard_id"], entry["findings_count"]) == (shard.agent_id, 1)
    assert coordinator.request_synthesis(shard.agent_id, "P1", "summarise")
    shard.heartbeat()  # present: a heartbeat, no new registration
    joined = [e for e in swarm.events(limit=1000) if e.type == "agent.joined"]
    assert [e.fields.get("agent") for e in joined].count(shard.agent_id) == 2


def test_a_removed_worker_comes_back_at_its_heartbeat_and_renews_its_lease(
    make: Callable[..., Any], swarm: Swarm
) -> None:
    swarm.post_task("analysis", "Read it", lease_s=60)
    worker = make(EphemeralWorker)
    task = worker.claim_task("analysis")
    assert task is not None
    deadline = swarm.get_task(task["task_id"]).lease_deadline
    # a sweep keeps a worker holding a live lease (its task is still its own) ...
    assert worker.worker_id not in sweep_everyone(swarm)
    swarm.deregister(worker.worker_id)  # ... so it is removed another way
    worker.heartbeat()
    assert swarm.get_agent(worker.worker_id).role == "worker"
    renewed = swarm.get_task(task["task_id"]).lease_deadline
    assert deadline is not None and renewed is not None and renewed >= deadline
    worker.report_finding({"summary": "done"})
    worker.heartbeat()  # nothing held: presence only


def test_a_swept_coordinator_comes_back_at_its_heartbeat(
    make: Callable[..., Any], swarm: Swarm
) -> None:
    coordinator = make(SonnetCoordinator)
    assert coordinator.agent_id in sweep_everyone(swarm)
    coordinator.heartbeat()
    assert swarm.get_agent(coordinator.agent_id).role == "coordinator"


def test_a_swept_v1_agent_comes_back_at_its_heartbeat(
    make: Callable[..., Any], swarm: Swarm
) -> None:
    parent, v1 = make(RedisSwarmCoordinator), make(RedisSwarmCoordinator)
    parent_id = parent.register_agent("sonnet_coordinator")
    me = v1.register_agent("haiku", 5000, parent_id, {"model": "haiku", "team": ["a"]})
    parent.send_message(me, "unread when swept")
    assert {me, parent_id} <= set(parent.cleanup_stale_agents(0))
    # Only heartbeat() registers again; reading the swept agent's inbox says so.
    with pytest.raises(NotFound, match=r"swept as stale.*went with it.*heartbeat\(\)"):
        v1.get_messages()
    # (its parent, swept too, is no agent now: the core refuses a parent no agent is, so
    # the profile comes back without it, and a warning says so)
    with pytest.warns(UserWarning, match="without its parent"):
        v1.heartbeat()
    agent = swarm.get_agent(me)
    assert (agent.role, agent.capacity_tokens, agent.parent) == ("haiku", 5000, None)
    v1.heartbeat()  # (its parent still gone: nothing changes)
    assert swarm.get_agent(me).parent is None
    parent.heartbeat()  # the parent comes back at its own heartbeat...
    v1.heartbeat()  # ...and the next heartbeat links the agent back to it
    agent = swarm.get_agent(me)
    assert (agent.role, agent.capacity_tokens, agent.parent) == ("haiku", 5000, parent_id)
    assert (agent.model, agent.metadata) == ("haiku", {"model": "haiku", "team": ["a"]})
    assert v1.get_messages() == []
    # A claim after a sweep registers a bare worker; the heartbeat restores the profile.
    assert me in parent.cleanup_stale_agents(0)
    parent.post_task("work", "t", {})
    assert v1.claim_task("work") is not None
    assert swarm.get_agent(me).implicit
    # Another agent's profile (the parent, swept too) is not this coordinator's to restore.
    with pytest.raises(NotFound, match="not registered"):
        v1.heartbeat(parent_id)
    parent.heartbeat()  # (its own object brings it back: first, so the profile keeps it)
    v1.heartbeat()
    assert (swarm.get_agent(me).role, swarm.get_agent(me).implicit) == ("haiku", False)
    assert swarm.get_agent(me).parent == parent_id


# --- V1 messages: a text, a dict, or any JSON value


def v1_pair(make: Callable[..., Any]) -> tuple[Any, Any, str]:
    """A sender and a recipient, registered; the recipient's id."""
    a, b = make(RedisSwarmCoordinator), make(RedisSwarmCoordinator)
    a.register_agent("a")
    return a, b, b.register_agent("b")


@pytest.mark.parametrize(
    "message",
    ["", "   ", "plain text", [1, 2], 42, 1.5, None, True, {"type": "", "n": 1}, {"n": [1]}],
    ids=repr,
)
def test_v1_sends_any_json_value_and_gets_it_back(message: Any, make: Callable[..., Any]) -> None:
    a, b, bid = v1_pair(make)
    a.send_message(bid, message)
    [got] = b.get_messages()
    assert got["content"] == message
    assert type(got["content"]) is type(message)


def test_v1_a_long_value_is_sent_whole_with_a_short_text(
    make: Callable[..., Any], swarm: Swarm
) -> None:
    a, b, bid = v1_pair(make)
    a.send_message(bid, list(range(1000)))
    [shown] = swarm.inbox(bid, ack=False)
    assert shown.body.startswith("[0,1,2,") and len(shown.body) < 300
    assert b.get_messages()[0]["content"] == list(range(1000))


def test_v1_a_value_that_is_not_json_is_refused_with_what_is_accepted(
    make: Callable[..., Any],
) -> None:
    a, _, bid = v1_pair(make)
    with pytest.raises(ValidationError, match=r"a text, a dict or another JSON value.*set"):
        a.send_message(bid, {1, 2})
    with pytest.raises(ValidationError, match="not JSON-serialisable"):
        a.send_message(bid, {"when": object()})


# --- wrong types: a ValidationError saying what to pass


class Seed:
    """One of each seed class, on one server, for the wrong-type calls."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.five: Any = 5  # (a wrong type for any argument)
        self.shard = SwarmMemoryShard(url=url)
        self.worker = EphemeralWorker(url=url)
        self.v1 = RedisSwarmCoordinator(url=url)

    def close(self) -> None:
        for role in (self.shard, self.worker, self.v1):
            role.close()


WRONG: list[tuple[str, Callable[[Any], object]]] = [
    (
        "specialization must be a string, not int",
        lambda s: SwarmMemoryShard(specialization=s.five, url=s.url),
    ),
    ("queue name is a string.*not int", lambda s: s.shard.spawn_worker_task(5, "d")),
    (
        "sources must be a list of finding ids, not str",
        lambda s: s.shard.synthesize_findings("P", "t", "f-abc"),
    ),
    (
        "sources must be a list of finding ids, not int",
        lambda s: s.shard.synthesize_findings("P", "t", 5),
    ),
    ("queue name is a string.*not int", lambda s: s.shard.get_all_findings(5)),
    ("queue name.*or a list of them, not int", lambda s: s.worker.claim_task(5)),
    ("queue name.*or a list of them, not NoneType", lambda s: s.worker.claim_task(None)),
    ("queue name is a string.*not int", lambda s: s.v1.post_task(5, "t", {})),
    ("metadata must be a mapping", lambda s: s.v1.register_agent("r", metadata=[1])),
]


@pytest.mark.parametrize(("expected", "call"), WRONG, ids=[str(n) for n in range(len(WRONG))])
def test_a_wrong_type_is_a_validation_error_saying_what_to_pass(
    expected: str, call: Callable[[Seed], object], redis_url: str
) -> None:
    seed = Seed(redis_url)
    with pytest.raises(ValidationError, match=expected):
        call(seed)
    seed.close()


# --- close() and with


ROLES = [
    SwarmMemoryShard,
    EphemeralWorker,
    SonnetCoordinator,
    RedisSwarmCoordinator,
    MemoryShard,
    Worker,
    Coordinator,
]


@pytest.mark.parametrize("kind", ROLES, ids=lambda kind: kind.__name__)
def test_every_role_is_a_context_manager_and_refuses_calls_once_closed(
    kind: Any, redis_url: str
) -> None:
    with kind(url=redis_url) as role:
        role.swarm.ping()
    with pytest.raises(Conflict, match=rf"this {type(role).__name__} is closed: make a new one"):
        role.swarm.ping()
    role.close()  # closing again does nothing


def test_calls_after_close_raise_instead_of_reconnecting(redis_url: str) -> None:
    shard = SwarmMemoryShard(url=redis_url)
    shard.close()
    for call in (
        lambda: shard.spawn_worker_task("analysis", "d"),
        shard.heartbeat,
        shard.get_all_findings,
    ):
        with pytest.raises(Conflict, match="is closed"):
            call()
    worker = EphemeralWorker(url=redis_url)
    worker.close()
    with pytest.raises(Conflict, match="EphemeralWorker is closed"):
        worker.claim_task("analysis")


def test_closing_a_worker_gives_its_claimed_task_back(redis_url: str, swarm: Swarm) -> None:
    task_id = swarm.post_task("analysis", "Read it").id
    with EphemeralWorker(url=redis_url) as worker:
        assert worker.claim_task("analysis") is not None
    back = swarm.get_task(task_id)
    assert (back.status.value, back.failures, back.abandons) == ("pending", 0, 0)
    with EphemeralWorker(url=redis_url) as other:  # at once, not after the lease
        claimed = other.claim_task("analysis")
        assert claimed is not None and claimed["task_id"] == task_id
        other.report_finding({"summary": "done"})
    assert swarm.get_task(task_id).status.value == "completed"  # reported: nothing given back


def test_a_worker_holds_one_task_at_a_time(redis_url: str, swarm: Swarm) -> None:
    first, second = (swarm.post_task("analysis", f"t{n}").id for n in range(2))
    with EphemeralWorker(url=redis_url) as worker:
        assert worker.claim_task("analysis") is not None
        with pytest.raises(
            Conflict, match=rf"still holds task {first}.*report_finding\(\) or release_task\(\)"
        ):
            worker.claim_task("analysis")
        with pytest.raises(Conflict, match="still holds"):
            next(worker.claim_tasks("analysis"))
        assert swarm.get_task(second).status.value == "pending"  # the refusal took nothing
        assert worker.release_task() == first
        assert worker.release_task() is None
        assert swarm.get_task(first).status.value == "pending"
        task = worker.claim_task("analysis")
        assert task is not None and task["task_id"] == first  # given back: first in line
        worker.report_finding({"summary": "done"})
        task = worker.claim_task("analysis")  # reported: the next claim is free
        assert task is not None and task["task_id"] == second
    assert swarm.get_task(second).status.value == "pending"
    with Worker(url=redis_url) as typed:  # the typed class names its own methods
        assert typed.claim("analysis") is not None
        with pytest.raises(Conflict, match=r"still holds.*report\(\) or release\(\) first"):
            typed.claim("analysis")


def test_a_report_of_a_settled_task_frees_the_worker(redis_url: str, swarm: Swarm) -> None:
    task_id = swarm.post_task("analysis", "t").id
    with EphemeralWorker(url=redis_url) as worker:
        assert worker.claim_task("analysis") is not None
        swarm.cancel(task_id)
        with pytest.warns(SupersededFinding):  # kept superseded, as the seed allows
            worker.report_finding({"summary": "late"})
        assert worker.held is None
        assert worker.claim_task("analysis") is None


def test_closing_a_worker_in_its_loop_gives_back_every_task_it_holds(
    redis_url: str, swarm: Swarm
) -> None:
    ids = [swarm.post_task("loop", f"t{n}").id for n in range(4)]
    worker = EphemeralWorker(url=redis_url)
    loop = worker.claim_tasks("loop")
    assert next(loop)["task_id"] == ids[0]  # skipped: moved on from unreported
    assert next(loop)["task_id"] == ids[1]
    worker.report_finding({"summary": "one"})  # leases ids[2] for the loop
    worker.close()
    statuses = [swarm.get_task(t).status.value for t in ids]
    assert statuses == ["pending", "completed", "pending", "pending"]
    with pytest.raises(Conflict, match="is closed"):
        next(loop)


def test_closing_v1_gives_back_the_tasks_it_claimed_and_did_not_complete(
    redis_url: str, swarm: Swarm
) -> None:
    with RedisSwarmCoordinator(url=redis_url) as v1:
        v1.register_agent("worker")
        done, kept = (v1.post_task("search", "t", {"n": n}) for n in range(2))
        assert v1.claim_task("search") is not None
        assert v1.claim_task("search") is not None
        v1.complete_task(done, {"summary": "done"})
    assert swarm.get_task(done).status.value == "completed"
    back = swarm.get_task(kept)
    assert (back.status.value, back.failures, back.abandons) == ("pending", 0, 0)


# --- docs/seed.md


def python_blocks() -> list[str]:
    text = DOC.read_text() if DOC.exists() else ""
    return re.findall(r"```python\n(.*?)\n```", text, re.S)


def test_the_seed_guide_is_there_with_examples_and_linked() -> None:
    assert len(python_blocks()) >= 3

    assert "(docs/seed.md)" in (ROOT / "README.md").read_text()
    assert "(seed.md)" in (ROOT / "docs" / "tasks.md").read_text()


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_the_seed_guide_examples_run(index: int, redis_url: str, tmp_path: Path) -> None:
    """Each Python block of docs/seed.md, as written, in its own interpreter (the classes
    read SWARM_URL and SWARM_NAME, as a user's agents would)."""
    code = python_blocks()[index]
    env = {**os.environ, "SWARM_URL": redis_url, "SWARM_NAME": f"doc{index}"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
        timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"docs/seed.md block {index + 1}:\n{result.stderr}"


def test_the_seed_guide_examples_run_in_order_in_one_swarm_and_spare_its_live_agents(
    redis_url: str, tmp_path: Path
) -> None:
    """As the page says to run them: every block in order, in the one swarm it names, where a
    live agent already is (a `swarm serve` slot): no block fails for what the blocks before
    it left there (shards still alive), and the one that sweeps with a max_age of 0 (which
    removes every agent of its swarm) sweeps only a swarm of its own."""
    blocks = python_blocks()
    assert "SWARM_NAME=seed-docs" in DOC.read_text()
    env = {**os.environ, "SWARM_URL": redis_url, "SWARM_NAME": "seed-docs"}
    with Swarm(redis_url, swarm="seed-docs") as docs:
        docs.register("worker", name="serve-slot-1")
        for index, code in enumerate(blocks):
            result = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, env=env,
                cwd=tmp_path, timeout=60, check=False,
            )  # fmt: skip
            assert result.returncode == 0, f"docs/seed.md block {index + 1}:\n{result.stderr}"
        assert docs.get_agent("serve-slot-1").alive


def test_a_redis_host_holding_a_port_is_refused_naming_both_keywords() -> None:
    from redis_swarm._errors import ConfigError
    from redis_swarm.roles._base import _url_host

    with pytest.raises(ConfigError, match=r"redis_host '127.0.0.1:6380' holds a port: pass "
                       r"redis_host='127.0.0.1', redis_port=6380"):  # fmt: skip
        SwarmMemoryShard(redis_host="127.0.0.1:6380", specialization="x")
    assert _url_host("::1") == "[::1]" and _url_host("[::1]") == "[::1]"
    assert _url_host("redis.example") == "redis.example" and _url_host(None) == "localhost"


def test_a_shared_handle_outlives_the_roles_given_it(swarm: Swarm) -> None:
    """docs/seed.md offers ``swarm=Swarm(...)`` to share one handle: closing the first role
    closed it for good, and every other role on it was refused ("this Swarm is closed")."""
    task_id = swarm.post_task("analysis", "Read it").id
    shard = SwarmMemoryShard(swarm=swarm)
    with EphemeralWorker(swarm=swarm) as worker:
        assert worker.claim_task("analysis") is not None
        worker.report_finding({"summary": "done"})
    assert shard.get_all_findings() == []  # the worker's close left the shared handle open
    shard.close()
    with pytest.raises(Conflict, match="SwarmMemoryShard is closed"):
        shard.get_all_findings()  # the role itself is closed, as before
    assert swarm.get_task(task_id).status.value == "completed"  # the handle's owner still uses it
