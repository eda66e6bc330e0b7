"""Edges of messages and of the seed coordinator: ``swarm msg inbox`` shows a long body as a
one-line preview (a 4,096-character body made every row that wide) and names ``msg show``; a
broadcast that reaches nobody says so (CLI, seed); ``get_message`` shows the broadcasts an
agent's inbox lists, not one sent before it registered; a send to a name no agent can have
says so in one wording (the core's, every face's); an agent is not its own parent, a parent
is registered (CLI, V1), and the seed warns of a synthesis request to a coordinator and of
a second ``register_agent`` on one object, losing nothing stored."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

from redis_swarm import (
    NotFound,
    RedisSwarmCoordinator,
    SonnetCoordinator,
    Swarm,
    SwarmMemoryShard,
    ValidationError,
)

from ._cli import Cli
from ._clock import FakeClock


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


# --- swarm msg inbox: one line per message


def test_inbox_shows_a_long_body_as_a_one_line_preview(cli: Cli, swarm: Swarm) -> None:
    swarm.register("shard", name="a")
    long = swarm.send("a", "x" * 4_096, sender="w1")
    lines = swarm.send("a", "first line\nsecond line", sender="w1")
    short = swarm.send("a", "hello", sender="w1")
    out = cli("msg", "inbox", "a", "--peek", env={"COLUMNS": "80"})
    rows = out.stdout.splitlines()
    assert all(len(row) <= 80 for row in rows), out.stdout
    [long_row] = [row for row in rows if row.split()[:1] == [long.id]]
    assert "xxxx" in long_row and long_row.rstrip().endswith("…")
    [lines_row] = [row for row in rows if row.split()[:1] == [lines.id]]
    assert "first line second line" in lines_row  # (its lines joined: one row)
    [short_row] = [row for row in rows if row.split()[:1] == [short.id]]
    assert short_row.rstrip().endswith("hello")
    assert "'swarm msg show ID --agent a' shows a message whole" in out.stderr
    # the whole message, as the note says; and --json holds every body whole
    assert cli("msg", "show", long.id, "--agent", "a").stdout.endswith("x" * 4_096 + "\n")
    items = cli.json("msg", "inbox", "a")["items"]
    assert [m["body"] for m in items] == ["x" * 4_096, "first line\nsecond line", "hello"]


def test_inbox_of_short_bodies_names_no_show(cli: Cli, swarm: Swarm) -> None:
    swarm.register("shard", name="a")
    swarm.send("a", "hello", sender="w1")
    out = cli("msg", "inbox", "a", env={"COLUMNS": "80"})
    assert "hello" in out.stdout and "msg show" not in out.stderr


# --- a broadcast that reaches nobody


def test_a_broadcast_to_no_other_agent_says_it_reached_nobody(
    cli: Cli, swarm: Swarm, redis_url: str
) -> None:
    swarm.register("coordinator", name="boss")
    out = cli("msg", "broadcast", "anyone there?", "--from", "boss")
    assert out.stdout.startswith("broadcast m-")
    assert "warning: no other agent is registered" in out.stderr and "reached nobody" in out.stderr
    with SonnetCoordinator(url=redis_url, swarm="test") as sonnet:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sonnet.broadcast_message("boss reads this")
        swarm.deregister("boss")
        said = r"no other agent is registered, so broadcast m-\S+ reached nobody \(an agent that"
        with pytest.warns(UserWarning, match=said):
            sent = sonnet.broadcast_message("alone")
        assert isinstance(sent, str) and sent.startswith("m-")  # the seed's shape: its id
        swarm.register("worker", name="w1")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sonnet.broadcast_message("now someone")
    out = cli("msg", "broadcast", "hello w1", "--from", "boss")
    assert out.stderr == ""


# --- msg show and msg inbox: one rule of which broadcasts an agent receives


def test_show_refuses_a_broadcast_sent_before_the_agent_registered(
    cli: Cli, redis_url: str
) -> None:
    """One millisecond for all (a fake clock): the order of the events decides, as the inbox
    cursor set at registration does; a later millisecond, the clock."""
    clock = FakeClock()
    with Swarm(redis_url, swarm="test", clock=clock) as swarm:
        swarm.register("coordinator", name="boss")
        swarm.register("worker", name="early")
        before = swarm.broadcast("before late joined", sender="boss")
        swarm.register("worker", name="late")  # (the same millisecond, after it)
        after = swarm.broadcast("after late joined", sender="boss")
        clock.advance(1)
        swarm.register("worker", name="later")
        for agent in ("late", "later"):
            assert swarm.inbox(agent, ack=False) == ([after] if agent == "late" else [])
            with pytest.raises(
                NotFound, match=f"{before.id} is a broadcast sent before {agent} registered"
            ):
                swarm.get_message(agent, before.id)
        assert swarm.get_message("late", after.id) == after
        with pytest.raises(NotFound, match="sent before later registered"):
            swarm.get_message("later", after.id)
        # an agent registered when it was sent sees it (and the sender its own, as before)
        assert swarm.get_message("early", before.id) == before
        assert swarm.get_message("boss", before.id) == before
        # message_status counts its readers by the same rule
        assert swarm.message_status(before.id).unread_by == ("early",)
        assert swarm.message_status(after.id).unread_by == ("early", "late")
    out = cli("msg", "show", before.id, "--agent", "late", expect=1)
    assert "sent before late registered" in out.stderr and "boss sent it" in out.stderr


# --- a name no agent can have


def test_a_send_to_a_dash_name_says_no_agent_can_have_it_in_every_face(
    cli: Cli, swarm: Swarm
) -> None:
    with pytest.raises(NotFound) as raised:
        swarm.send("-k1", "hi")
    said = str(raised.value)
    assert "no agent '-k1' is registered, and none can be" in said
    assert "register it" not in said and "swarm agents register" not in said
    out = cli("msg", "send", "--", "-k1", "hi", expect=2)
    assert said in " ".join(out.stderr.split())  # the CLI gives the core's words


# --- parents, and the seed coordinator's doubtful calls


def test_an_agent_is_not_its_own_parent_and_loses_nothing(cli: Cli, swarm: Swarm) -> None:
    with pytest.raises(ValidationError, match="agent w1 cannot be its own parent"):
        swarm.register("worker", name="w1", parent="w1")
    assert [a.id for a in swarm.agents()] == []
    swarm.register("worker", name="w1", model="m1")
    with pytest.raises(ValidationError, match="cannot be its own parent"):
        swarm.register("worker", name="w1", parent="w1")
    kept = swarm.get_agent("w1")
    assert kept.parent is None and kept.model == "m1"
    out = cli("agents", "register", "w2", "--role", "worker", "--parent", "w2", expect=2)
    assert "agent w2 cannot be its own parent" in out.stderr


def test_a_parent_no_agent_is_registered_as_is_refused(
    cli: Cli, swarm: Swarm, redis_url: str
) -> None:
    out = cli("agents", "register", "w2", "--role", "worker", "--parent", "ghost", expect=1)
    assert "no agent ghost is registered to be the parent" in out.stderr
    assert "nothing was registered" in out.stderr
    swarm.register("shard", name="boss")
    cli("agents", "register", "w2", "--role", "worker", "--parent", "boss")
    assert swarm.get_agent("w2").parent == "boss"
    with RedisSwarmCoordinator(url=redis_url, swarm="test") as v1:
        with pytest.raises(NotFound, match="no agent ghost is registered to be the parent"):
            v1.register_agent("haiku_worker", parent_id="ghost")
        assert v1.agent_id is None
        assert sorted(a.id for a in swarm.agents()) == ["boss", "w2"]
        child = v1.register_agent("haiku_worker", parent_id="boss")
        assert swarm.get_agent(child).parent == "boss"


def test_a_second_register_agent_warns_and_keeps_the_first(swarm: Swarm, redis_url: str) -> None:
    with RedisSwarmCoordinator(url=redis_url, swarm="test") as v1:
        first = v1.register_agent("sonnet_coordinator")
        with pytest.warns(UserWarning, match=f"acted as agent {first}; it now acts as"):
            second = v1.register_agent("haiku_worker")
        assert v1.agent_id == second != first
        assert {first, second} <= {a.id for a in swarm.agents()}


def test_a_synthesis_request_to_a_coordinator_warns_and_is_sent(redis_url: str) -> None:
    with (
        SonnetCoordinator(url=redis_url, swarm="test") as sonnet,
        SonnetCoordinator(url=redis_url, swarm="test") as other,
        SwarmMemoryShard(url=redis_url, swarm="test") as shard,
    ):
        with pytest.warns(UserWarning, match=f"{other.agent_id} is a coordinator"):
            sent = sonnet.request_synthesis(other.agent_id, "Pass 1", "please")
        [request] = other.get_messages()
        assert request["message_id"] == sent and request["kind"] == "synthesis_request"
        with pytest.warns(UserWarning, match="is a coordinator"):
            sonnet.request_synthesis(sonnet.agent_id, "Pass 1")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sonnet.request_synthesis(shard.agent_id, "Pass 1")
        assert [m["kind"] for m in shard.get_messages()] == ["synthesis_request"]
