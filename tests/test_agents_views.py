"""The coordinator's views of the agents after a tour: what ``agent.left`` / ``agent.stale``
count as unread, what ``swarm agents`` shows (specialization, times as ISO-8601 and how long
ago), one current task for a worker holding a lease in every view, a label's non-printable
character named with its position, one error name for every bad dashboard parameter, and a
broadcast that nobody could read."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from redis_swarm import AsyncSwarm, Swarm, ValidationError
from redis_swarm._codec import iso
from redis_swarm._models import EventType
from redis_swarm.dashboard.app import create_app

from ._cli import Cli

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


# --- 1. what agent.left and agent.stale count


def _unread_on(swarm: Swarm, kind: EventType, agent: str) -> int:
    (event,) = [e for e in swarm.events(types=[kind]) if e.fields["agent"] == agent]
    return int(event.fields["unread"])


def test_departures_count_the_direct_messages_dropped_as_the_docs_say(swarm: Swarm) -> None:
    swarm.register("shard", name="leaving")
    swarm.register("shard", name="going-stale")
    for agent in ("leaving", "going-stale"):
        swarm.send(agent, "one", sender="lead")
        swarm.send(agent, "two", sender="lead")
    swarm.broadcast("to all", sender="lead")  # stays for the others: not dropped, not counted
    swarm.inbox("leaving", limit=1)  # the first direct message is read
    swarm.deregister("leaving")
    assert _unread_on(swarm, EventType.AGENT_LEFT, "leaving") == 1  # "two"
    swarm.sweep(stale_after_s=0)
    assert _unread_on(swarm, EventType.AGENT_STALE, "going-stale") == 2  # "one", "two"
    # ... and the docs say exactly that: direct messages, broadcasts not counted.
    doc = " ".join((DOCS / "contexts.md").read_text(encoding="utf-8").split())
    assert "`unread` (direct messages dropped unread)" in doc
    assert "Broadcasts it had not read are not counted" in doc


# --- 2. swarm agents: specialization, times


def test_swarm_agents_shows_specialization_and_iso_times(cli: Cli, swarm: Swarm) -> None:
    long_label = "recherche-été 研究 " + "x" * 100
    agent = swarm.register("shard", name="shard-1", specialization=long_label, model="m-1")
    out = cli("agents").stdout
    assert "specialization" in out and "registered" in out
    assert "recherche-été 研究 xxx" in out and "x" * 100 not in out  # cut to fit the table
    assert f"{iso(agent.registered_at)} (" in out
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z \(\d+s ago\)", out), out
    # JSON keeps the whole text and the epoch-ms times
    (item,) = cli.json("agents")["items"]
    assert item["specialization"] == long_label
    assert item["registered_at"] == agent.registered_at


# --- 3. one current task, decided by the core


def test_every_view_shows_the_task_a_claiming_worker_holds(cli: Cli, swarm: Swarm) -> None:
    swarm.register("shard", name="shard-1")
    posted = swarm.post_task("q", "look")
    claimed = swarm.claim("q", worker="w-1")
    assert claimed is not None and claimed.id == posted.id
    by_id = {a.id: a.current_task for a in swarm.agents()}
    assert by_id == {"shard-1": None, "w-1": posted.id}
    assert {a.id: a.current_task for a in swarm.status().roster} == by_id
    # (a point read stays one round trip: what the agent said, here nothing)
    assert swarm.get_agent("w-1").current_task is None
    assert {a["id"]: a["current_task"] for a in cli.json("agents")["items"]} == by_id
    assert {a["id"]: a["current_task"] for a in cli.json("status")["roster"]} == by_id
    assert posted.id in cli("agents").stdout
    swarm.report(claimed.id, claimed.token, {"summary": "seen"})
    assert {a.id: a.current_task for a in swarm.agents()}["w-1"] is None


# --- 4. a label's non-printable character


@pytest.mark.parametrize(
    ("label", "said"),
    [
        ("ab\x1bc", "a control character (U+001B) at position 3"),
        ("abc\x7f", "a control character (U+007F) at position 4"),
        ("a\x85", "a control character (U+0085) at position 2"),
        ("\u202eevil", "a bidirectional override (U+202E) at position 1"),
        ("two\nlines", "a control character (U+000A) at position 4"),
    ],
)
def test_a_non_printable_specialization_is_named_with_its_position(
    swarm: Swarm, label: str, said: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(f"specialization holds {said}")):
        swarm.register("shard", name="s", specialization=label)
    with pytest.raises(ValidationError, match=re.escape(f"model holds {said}")):
        swarm.register("shard", name="s", model=label)


def test_a_long_specialization_says_how_long(swarm: Swarm) -> None:
    with pytest.raises(ValidationError, match="specialization is 201 characters long; the limit"):
        swarm.register("shard", name="s", specialization="x" * 201)


# --- 5. one error name for a bad dashboard parameter


@pytest.mark.parametrize("url", ["/api/events?since=zzz", "/api/tasks?queue=a:b"])
def test_every_bad_dashboard_parameter_is_a_bad_request(redis_url: str, url: str) -> None:
    app = create_app(AsyncSwarm(redis_url, swarm="test"), close_swarm=True)
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        response = client.get(url)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "BadRequest"


# --- 6. a broadcast nobody could read; a sender that is not an agent


def test_a_broadcast_with_no_readers_says_so(cli: Cli, swarm: Swarm) -> None:
    sent = cli.json("msg", "broadcast", "anyone?", "--from", "ghost")  # a person may send
    assert sent["sender"] == "ghost"
    out = cli("msg", "status", sent["id"]).stdout
    assert f"{sent['id']} (broadcast): no readers" in out and ": read" not in out
    status = cli.json("msg", "status", sent["id"])
    assert status["read_by"] == [] and status["unread_by"] == [] and status["read"] is True
    swarm.register("shard", name="shard-1")  # registered after: still not a reader
    assert "no readers" in cli("msg", "status", sent["id"]).stdout
    later = swarm.broadcast("now someone", sender="ghost")
    assert f"{later.id} (broadcast): unread" in cli("msg", "status", later.id).stdout
