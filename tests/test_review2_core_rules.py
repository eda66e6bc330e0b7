"""Two rules the faces held, now the core's, said once (review 2).

An unknown parent is refused by ``lua/agent_register.lua`` as it writes (no face's
check-then-register race, every face alike: the Python API, ``join`` behind the hooks and the
MCP server), unless the record holds that parent already (an agent registered again keeps
it after its parent left) or the parent owns a context (``swarm serve``'s slots); a role object
rejoining after a sweep whose parent went too rejoins without it, warned.

A broadcast that reached nobody is said by the core: ``broadcast`` returns the readers
``message_send`` counted (``Message.receivers``), and ``Message.unreached`` is the one wording
the CLI, the seed, the typed ``Coordinator`` and the MCP tool give, with no second round trip."""

from __future__ import annotations

import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from redis_swarm import Coordinator, NotFound, RedisSwarmCoordinator, SonnetCoordinator, Swarm
from redis_swarm._runner import ServeOptions, Server
from redis_swarm.mcp_server import build_server

from . import _fake_claude
from ._cli import Cli
from .mcp_server._helpers import connect

REFUSED = "is registered to be the parent of"


@pytest.fixture
def core(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


# --- 1. an unknown parent is refused, by the core


def test_register_refuses_a_parent_no_agent_is_registered_as(swarm: Swarm) -> None:
    with pytest.raises(NotFound) as refused:
        swarm.register("worker", name="w1", parent="ghost")
    said = str(refused.value)
    assert f"no agent ghost {REFUSED} w1" in said, said
    assert "register the parent first" in said and "leave the parent out" in said, said
    with pytest.raises(NotFound):
        swarm.get_agent("w1")  # nothing was registered
    assert not swarm.events(types="agent.joined")
    swarm.register("lead", name="boss")
    assert swarm.register("worker", name="w1", parent="boss").parent == "boss"


def test_join_refuses_an_unknown_parent_as_register_does(swarm: Swarm) -> None:
    """``join`` is what the hooks and the MCP server register with."""
    with pytest.raises(NotFound, match=REFUSED):
        swarm.join("w1", lambda _stored: {"role": "worker", "parent": "ghost"})
    with pytest.raises(NotFound):
        swarm.get_agent("w1")


def test_a_parent_the_record_holds_is_kept_once_that_parent_left(swarm: Swarm) -> None:
    swarm.register("lead", name="boss")
    swarm.register("worker", name="w1", parent="boss")
    swarm.deregister("boss")
    # a second session joining, the agent registered again in its life: its parent stays
    joined = swarm.join("w1", lambda stored: {"role": "worker", "parent": stored and stored.parent})
    assert joined.parent == "boss"
    assert swarm.register("worker", name="w1", parent="boss").parent == "boss"
    # a parent that changes is checked all the same
    with pytest.raises(NotFound, match=REFUSED):
        swarm.register("worker", name="w1", parent="ghost")
    assert swarm.get_agent("w1").parent == "boss"  # refused: the record stays


def test_a_context_owner_may_be_a_parent_as_swarm_serve_slots_have(swarm: Swarm) -> None:
    swarm.publish_context("lib", "some text\n", source="lib.md")
    slot = swarm.join("serve-lib-1", lambda _stored: {"role": "answerer", "parent": "lib"})
    assert slot.parent == "lib"


def test_swarm_serve_of_an_owner_that_is_nothing_yet_still_registers_answerers(
    core: Swarm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``swarm serve OWNER`` before OWNER registers or publishes: its slots are answerers,
    of no parent (the core refuses that one); a served context owner is their parent."""
    monkeypatch.setenv("FAKE_STATE", str(tmp_path))
    command = f"{sys.executable} {_fake_claude.SOURCE} -p --output-format json"
    for owner, parent in (("later", None), ("lib", "lib")):
        if parent:
            core.publish_context(owner, "some text\n", source="lib.md")
        server = Server(core, ServeOptions(owner=owner, command=command, poll_s=0.2))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while f"serve-{owner}-1" not in {a.id for a in core.agents()}:
                assert time.monotonic() < deadline, "the slot never registered"
                time.sleep(0.02)
            slot = core.get_agent(f"serve-{owner}-1")
            assert (slot.role, slot.parent) == ("answerer", parent)
        finally:
            server.drain()
            thread.join(30)
        assert not thread.is_alive() and server.crash is None and server.fatal is None


def test_the_cli_says_the_cores_refusal(cli: Cli, core: Swarm) -> None:
    out = cli("agents", "register", "w1", "--role", "worker", "--parent", "ghost", expect=None)
    assert out.code != 0 and f"no agent ghost {REFUSED} w1" in out.stderr, out
    with pytest.raises(NotFound):
        core.get_agent("w1")


def test_the_seed_says_the_cores_refusal(redis_url: str, core: Swarm) -> None:
    with RedisSwarmCoordinator(url=redis_url, swarm="test") as v1:
        with pytest.raises(NotFound, match=REFUSED):
            v1.register_agent("worker", parent_id="ghost")
        assert v1.agent_id is None
    assert not core.agents()


def test_a_swept_agent_whose_parent_went_too_rejoins_without_it(
    redis_url: str, core: Swarm
) -> None:
    with RedisSwarmCoordinator(url=redis_url, swarm="test") as v1:
        parent = v1.register_agent("lead")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (the second agent of one handle: warned)
            child = v1.register_agent("worker", parent_id=parent)
        core.deregister(child)  # both swept meanwhile
        core.deregister(parent)
        with pytest.warns(UserWarning, match=f"without its parent {parent}"):
            v1.heartbeat()  # it is alive: registered again, its parent left out
        back = core.get_agent(child)
        assert back.alive and back.parent is None and back.role == "worker"


# --- 2. a broadcast that reached nobody, said by the core


def test_broadcast_returns_how_many_agents_receive_it(swarm: Swarm) -> None:
    alone = swarm.broadcast("anyone?", sender="lead")
    assert alone.receivers == 0
    assert alone.unreached is not None and f"broadcast {alone.id} reached nobody" in alone.unreached
    swarm.register("lead", name="lead")
    assert swarm.broadcast("still alone", sender="lead").receivers == 0  # its sender aside
    swarm.register("worker", name="w1")
    heard = swarm.broadcast("hello", sender="lead")
    assert heard.receivers == 1 and heard.unreached is None
    swarm.deregister("w1")  # it reached w1, who left since: no warning said later either
    assert heard.to_dict()["receivers"] == 1
    direct = swarm.send("lead", "hi")
    assert direct.receivers is None and direct.unreached is None
    (shown,) = swarm.inbox("lead")
    assert shown.receivers is None  # (not known in an inbox)


def test_the_cli_warns_in_the_cores_words(cli: Cli, core: Swarm) -> None:
    out = cli("msg", "broadcast", "anyone?", "--json")
    sent = out.json()
    assert sent["receivers"] == 0
    said = (
        f"warning: no other agent is registered, so broadcast {sent['id']} reached nobody (an "
        "agent that registers later does not receive it): send it again once agents have joined"
    )
    assert out.stderr.strip() == said, out
    core.register("worker", name="w1")
    heard = cli("msg", "broadcast", "hello", "--json")
    assert heard.json()["receivers"] == 1 and "warning" not in heard.stderr


def test_the_typed_coordinator_and_the_seed_warn_in_the_cores_words(
    redis_url: str, core: Swarm
) -> None:
    with Coordinator(url=redis_url, swarm="test", agent_id="lead") as lead:
        with pytest.warns(UserWarning, match="reached nobody") as said:
            sent = lead.broadcast("anyone?")
        assert [str(w.message) for w in said] == [f"broadcast: {sent.unreached}"]
    core.deregister("lead")  # (it would receive the next broadcast)
    with SonnetCoordinator(url=redis_url, swarm="test") as sonnet:
        with pytest.warns(UserWarning, match="reached nobody") as said:
            sonnet.broadcast_message("anyone?")
        (warning,) = [str(w.message) for w in said]
        assert warning.startswith("broadcast_message: no other agent is registered, so ")
        assert "reached nobody" in warning
        core.register("worker", name="w1")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sonnet.broadcast_message("hello")  # one receiver: no warning


def test_the_mcp_broadcast_says_its_receivers_and_warns(core: Swarm) -> None:
    async def body() -> None:
        async with connect(build_server(core, role="coordinator")) as tools:
            head, _ = await tools("send_message", to="*", body="anyone?")
            assert head["receivers"] == 0
            assert "reached nobody" in head["warning"]
            core.register("worker", name="w1")
            head, _ = await tools("send_message", to="*", body="hello")
            assert head["receivers"] == 1 and "warning" not in head

    anyio.run(body)
