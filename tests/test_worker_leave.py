"""A worker that closes deregisters only an identity it made itself: one whose id it
generated (no ``worker_id`` given) and that it joined (claimed, or sent a heartbeat). An
agent named by a ``worker_id`` given (an agent someone registered, a shard, another process's
worker) is the caller's and stays, with its inbox. A bad ``worker_id`` is refused at
construction; ``close()`` never raises for the leave, nor for a held task the server could
not be asked to give back (a warning names it: its lease brings it back), and a worker whose
claims took nothing asks the server nothing as it closes. V1's ``RedisSwarmCoordinator``
deregisters the agents it registered that claimed through it. A claim that registers its
worker implicitly says so once in the event stream (``agent.joined``)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from redis_swarm import (
    EphemeralWorker,
    RedisSwarmCoordinator,
    Swarm,
    SwarmMemoryShard,
    ValidationError,
    Worker,
)

from ._raw import command_calls, reset_stats, script_calls
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


def _no_retries(server: RedisServer) -> str:
    """``server``'s URL without retries: a request to it once killed fails at once."""
    return server.url + ("&" if "?" in server.url else "?") + "retries=0"


def _posted(url: str, *descriptions: str) -> None:
    with Swarm(url, swarm=SWARM) as core:
        for description in descriptions:
            core.post_task("q", description)


def _close_warnings(close: Callable[[], object]) -> list[str]:
    """The warnings ``close`` gave (it must not raise)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        close()
    return [str(w.message) for w in caught]


def _says_the_lease_brings_back(said: str, *task_ids: str) -> None:
    for task_id in task_ids:
        assert task_id in said
    assert "lease runs out" in said and "goes back to its queue by itself" in said
    assert "ConnectionFailed" in said


@pytest.mark.parametrize("leaving", ["close", "with"])
@pytest.mark.parametrize("kind", WORKERS, ids=lambda k: k.__name__)
def test_a_held_task_the_server_cannot_take_back_is_warned_of_not_raised(
    kind: type[Worker], leaving: str, doomed: RedisServer
) -> None:
    """Holding a task when the server is gone: close() (or leaving ``with``) does not raise,
    warns once, naming the task and that its lease brings it back; closing again is quiet."""
    url = _no_retries(doomed)
    _posted(url, "one")
    worker = kind(url=url, swarm=SWARM)
    task = worker.claim("q")
    assert task is not None
    doomed.kill()

    def leave() -> None:
        with worker:
            pass

    said = _close_warnings(worker.close if leaving == "close" else leave)
    assert len(said) == 1
    _says_the_lease_brings_back(said[0], task.id)
    assert kind.__name__ in said[0]
    assert _close_warnings(worker.close) == []


def test_leaving_with_on_an_error_raises_that_error_not_the_give_back(
    doomed: RedisServer,
) -> None:
    url = _no_retries(doomed)
    _posted(url, "one")
    worker = EphemeralWorker(url=url, swarm=SWARM)
    assert worker.claim_task("q") is not None
    doomed.kill()

    def fail_inside() -> None:
        with worker:
            raise RuntimeError("the caller's")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the give-back's, checked above)
        with pytest.raises(RuntimeError, match="the caller's"):
            fail_inside()


def test_a_loop_that_holds_several_tasks_names_them_all_in_one_warning(
    doomed: RedisServer,
) -> None:
    """Inside ``tasks()``, a task skipped (stays leased) and the next one: one warning names
    both, and once the server could not be reached, close() asks it nothing more."""
    url = _no_retries(doomed)
    _posted(url, "one", "two")
    worker = Worker(url=url, swarm=SWARM)
    loop = worker.tasks("q", lease_s=600)
    skipped = next(loop)  # moved on from without a report: kept leased by the loop
    following = next(loop)
    doomed.kill()
    said = _close_warnings(worker.close)
    assert len(said) == 1
    _says_the_lease_brings_back(said[0], skipped.id, following.id)
    assert "tasks" in said[0]
    loop.close()


def test_a_v1_claimed_task_the_server_cannot_take_back_is_warned_of_not_raised(
    doomed: RedisServer,
) -> None:
    url = _no_retries(doomed)
    _posted(url, "one")
    v1 = RedisSwarmCoordinator(url=url, swarm=SWARM)
    v1.register_agent("haiku_worker")
    task = v1.claim_task("queue:q")
    assert task is not None
    doomed.kill()
    said = _close_warnings(v1.close)
    assert len(said) == 1
    _says_the_lease_brings_back(said[0], task["task_id"])
    assert "RedisSwarmCoordinator" in said[0]


# --- a worker whose claims took nothing was never registered: its close asks nothing


@pytest.mark.parametrize("kind", WORKERS, ids=lambda k: k.__name__)
def test_a_worker_whose_claims_took_nothing_sends_no_deregister(
    kind: type[Worker], redis_url: str, raw: Any
) -> None:
    with kind(url=redis_url, swarm=SWARM) as idle:
        assert idle.claim("empty") is None
        assert list(idle.tasks("empty")) == []
        reset_stats(raw)
    assert script_calls(command_calls(raw)) == 0


def test_a_worker_with_a_model_registered_at_its_claim_leaves(redis_url: str, core: Swarm) -> None:
    """A worker with a model registers itself at its first claim: it joined, though its claim
    took nothing, and leaves."""
    with Worker(url=redis_url, swarm=SWARM, model="claude-haiku") as modelled:
        assert modelled.claim("empty") is None
        assert core.get_agent(modelled.worker_id).model == "claude-haiku"
    assert _left(core) == [modelled.worker_id]


def test_a_v1_handle_whose_claims_took_nothing_sends_no_deregister(
    redis_url: str, raw: Any
) -> None:
    with RedisSwarmCoordinator(url=redis_url, swarm=SWARM) as idle:
        idle.register_agent("haiku_worker")
        assert idle.claim_task("queue:empty") is None
        reset_stats(raw)
    assert script_calls(command_calls(raw)) == 0


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
            assert [m["content"] for m in haiku.get_messages()] == ["thanks"]  # read: it leaves
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
