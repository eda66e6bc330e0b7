"""A worker that closes deregisters only an identity it made itself: one whose id it
generated (no ``worker_id`` given) and that it joined (claimed, or sent a heartbeat). An
agent named by a ``worker_id`` given (an agent someone registered, a shard, another process's
worker) is the caller's and stays, with its inbox. A bad ``worker_id`` is refused at
construction; ``close()`` never raises for the leave. V1's ``RedisSwarmCoordinator``
deregisters the agents it registered that claimed through it. A claim that registers its
worker implicitly says so once in the event stream (``agent.joined``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from redis_swarm import (
    EphemeralWorker,
    RedisSwarmCoordinator,
    Swarm,
    SwarmMemoryShard,
    ValidationError,
    Worker,
)

from ._servers import RedisServer, ServerFactory

SWARM = "leave"
WORKERS = [EphemeralWorker, Worker]


@pytest.fixture
def core(redis_url: str) -> Iterator[Swarm]:
    """A handle on the swarm the workers of a test join (the shared ``swarm`` fixture runs
    each test on several kinds of handle: not needed here)."""
    with Swarm(redis_url, swarm=SWARM) as handle:
        yield handle


def _ids(core: Swarm) -> set[str]:
    return {a.id for a in core.agents()}


def _left(core: Swarm) -> list[str]:
    return [e.fields["agent"] for e in core.events(types="agent.left", limit=1000)]


def _joined(core: Swarm) -> list[str]:
    return [e.fields["agent"] for e in core.events(types="agent.joined", limit=1000)]


# --- an explicit worker_id is the caller's identity: close() leaves it


@pytest.mark.parametrize("kind", WORKERS, ids=lambda k: k.__name__)
def test_a_worker_leaves_only_an_identity_it_made(
    kind: type[Worker], redis_url: str, core: Swarm
) -> None:
    """Given a registered agent's id, a worker leaves that agent (its model, its unread
    messages) registered; with an id of its own, it leaves once it joined (a claim, a
    heartbeat), and a worker that joined nothing deregisters nothing."""
    core.register("worker", name="haiku-7", model="claude-haiku")
    core.send("haiku-7", "read me later", sender="sonnet")
    core.post_task("research", "one")
    core.post_task("research", "two")
    with kind(url=redis_url, swarm=SWARM, worker_id="haiku-7") as named:
        assert named.claim("research") is not None
        named.report({"summary": "done"})
        named.heartbeat()
    with kind(url=redis_url, swarm=SWARM) as claimer:
        assert claimer.claim("research") is not None
        claimer.report({"summary": "done"})
    with kind(url=redis_url, swarm=SWARM) as beating:
        beating.heartbeat()  # registered by its heartbeat: joined
    with kind(url=redis_url, swarm=SWARM) as idle:
        assert idle.claim("empty") is None  # registered nothing
    assert core.get_agent("haiku-7").model == "claude-haiku"
    assert [m.body for m in core.inbox("haiku-7")] == ["read me later"]
    assert _ids(core) == {"haiku-7"}
    assert _left(core) == [claimer.worker_id, beating.worker_id]
    assert claimer.worker_id.startswith("worker_") and idle.worker_id.startswith("worker_")


def test_a_worker_named_after_a_shard_leaves_the_shard(redis_url: str, core: Swarm) -> None:
    with SwarmMemoryShard(url=redis_url, swarm=SWARM, specialization="s") as shard:
        shard.spawn_worker_task("q", "one")
        with EphemeralWorker(url=redis_url, swarm=SWARM, worker_id=shard.agent_id) as worker:
            assert worker.claim_task("q") is not None
            worker.report_finding({"summary": "done"})
        assert core.get_agent(shard.agent_id).role == "shard"
        assert shard.get_all_findings()[0]["worker_id"] == shard.agent_id


def test_two_workers_sharing_an_id_leave_each_other_alone(redis_url: str, core: Swarm) -> None:
    core.post_task("q", "one")
    core.post_task("q", "two")
    with Worker(url=redis_url, swarm=SWARM, worker_id="w-shared") as first:
        held = first.claim("q")
        with Worker(url=redis_url, swarm=SWARM, worker_id="w-shared") as second:
            assert second.claim("q") is not None
            second.report({"summary": "two"})
        assert "w-shared" in _ids(core)  # the first still holds its lease, as itself
        assert held is not None and first.report({"summary": "one"}).task_id == held.id
    assert "w-shared" in _ids(core) and _left(core) == []


# --- the worker id is checked at once


@pytest.mark.parametrize("kind", WORKERS, ids=lambda k: k.__name__)
@pytest.mark.parametrize(
    ("bad", "said"),
    [("bad name", "contains ' '"), ("", "is empty"), ("w" * 65, "the limit is 64"), (7, "string")],
)
def test_a_bad_worker_id_is_refused_at_construction(
    kind: type[Worker], bad: object, said: str, redis_url: str
) -> None:
    with pytest.raises(ValidationError, match=f"worker_id.*{said}"):
        kind(url=redis_url, swarm=SWARM, worker_id=bad)  # type: ignore[arg-type]


# --- close() never raises for the leave


@pytest.fixture
def doomed(servers: ServerFactory) -> Iterator[RedisServer]:
    """A server of this test's own, which the test kills."""
    server = servers.start()
    yield server
    server.stop()


def test_close_with_the_server_gone_does_not_raise(doomed: RedisServer) -> None:
    url = doomed.url + ("&" if "?" in doomed.url else "?") + "retries=0"
    with Swarm(url, swarm=SWARM) as core:
        core.post_task("q", "one")
        core.post_task("q", "two")
    worker = EphemeralWorker(url=url, swarm=SWARM)
    assert worker.claim_task("q") is not None
    worker.report_finding({"summary": "done"})
    v1 = RedisSwarmCoordinator(url=url, swarm=SWARM)
    v1.register_agent("haiku_worker")
    task = v1.claim_task("queue:q")
    assert task is not None
    v1.complete_task(task["task_id"], {"summary": "done"})
    doomed.kill()
    worker.close()
    v1.close()
    worker.close()  # and closing again does nothing


# --- V1: the agents the handle registered and that claimed through it leave


def test_a_v1_worker_that_claimed_leaves_and_its_coordinator_stays(
    redis_url: str, core: Swarm
) -> None:
    with RedisSwarmCoordinator(url=redis_url, swarm=SWARM) as sonnet:
        sonnet_id = sonnet.register_agent("sonnet_coordinator")
        with RedisSwarmCoordinator(url=redis_url, swarm=SWARM) as haiku:
            haiku_id = haiku.register_agent("haiku_worker", parent_id=sonnet_id)
            idle = RedisSwarmCoordinator(url=redis_url, swarm=SWARM)
            with idle:
                idle.register_agent("haiku_worker")
                assert idle.claim_task("queue:empty") is None  # took nothing: not a worker
            sonnet.post_task("queue:q", "search", {"query": "retry"})
            task = haiku.claim_task("queue:q")
            assert task is not None
            haiku.complete_task(task["task_id"], {"summary": "3 retries"})
            sonnet.send_message(haiku_id, "thanks")
        assert haiku_id not in _ids(core)
        assert sonnet_id in _ids(core) and idle.agent_id in _ids(core)
        assert _left(core) == [haiku_id]
        assert core.findings().items[0].worker == haiku_id  # its finding keeps its name


# --- a claim's implicit registration says the worker joined, once


def test_an_implicit_worker_joins_once_at_its_first_claim(redis_url: str, core: Swarm) -> None:
    for n in range(5):
        core.post_task("q", f"task {n}")
    first = core.claim("q", worker="w-1")
    assert first is not None
    core.report(first.id, first.token, {"summary": "one"})
    with Swarm(redis_url, swarm=SWARM) as other:  # another handle: it registers again
        again = other.claim("q", worker="w-1")
        assert again is not None
        _, following = other.report(
            again.id, again.token, {"summary": "two"}, claim_next="q"
        )  # fmt: skip
        assert following is not None
    events = core.events(types=["agent", "task.claimed"], limit=1000)
    assert [e.type.value for e in events][:2] == ["agent.joined", "task.claimed"]
    assert events[0].fields == {"agent": "w-1", "role": "worker"}
    assert _joined(core) == ["w-1"]
    # one that claims nothing does not join; one registered already does not join again
    assert core.claim("empty", worker="w-2") is None
    core.register("worker", name="w-4", model="m")
    assert core.claim("q", worker="w-4") is not None
    assert _joined(core) == ["w-1", "w-4"]  # w-4's registration's, not its claim's
    assert core.get_agent("w-4").model == "m"
    # one that left joins again at its next claim
    core.deregister("w-1")
    assert core.claim("q", worker="w-1") is not None
    assert _joined(core) == ["w-1", "w-4", "w-1"]


def test_a_report_that_claims_next_for_a_new_worker_says_it_joined(core: Swarm) -> None:
    posted = core.post_task("q", "one")
    core.post_task("q", "two")
    _, following = core.report(posted.id, None, {"summary": "one"}, worker="w-3", claim_next="q")
    assert following is not None and following.worker == "w-3"
    assert _joined(core) == ["w-3"]
