"""``swarm status``, ``agents``, ``msg``, ``events`` against a real server."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import Swarm
from redis_swarm._codec import iso

from ._cli import Cli
from ._handles import must


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def test_status_human_and_json(cli: Cli, swarm: Swarm) -> None:
    assert "no tasks: none posted yet, or every one retired" in cli("status").stdout
    swarm.post_task("q1", "a", pass_name="P")
    swarm.post_task("q1", "b", pass_name="P")
    swarm.post_task("q2", "c")
    swarm.claim("q1", worker="w1")
    swarm.register("shard", name="shard-a")
    swarm.publish_context("shard-a", "hello\n", source="notes.md")
    report = cli.json("status", "--pass", "P")
    assert report["swarm"] == "test" and report["url"].startswith("redis://127.0.0.1:")
    assert report["queues"]["q1"]["pending"] == 1 and report["queues"]["q1"]["claimed"] == 1
    assert report["totals"]["pending"] == 2
    assert report["agents"]["alive"] == 2
    assert report["agents"]["by_role"] == report["agents"]["roles"] == {"worker": 1, "shard": 1}
    assert report["passes"][0]["name"] == "P" and report["passes"][0]["total"] == 2
    assert [c["owner"] for c in report["contexts"]] == ["shard-a"]
    costs = swarm.pass_costs("P").shown()
    assert report["pass"] == {"name": "P", "counts": swarm.pass_stats("P"), "costs": costs}
    human = cli("status", "--pass", "P").stdout
    assert "q1" in human and "q2" in human and "(all)" in human
    assert "2 alive (1 shard, 1 worker)" in human and "shard-a" in human
    assert 'pass "P": pending 1, delayed 0, claimed 1' in human
    assert "no task has ever been posted" not in cli("status", "--pass", "P").stderr
    typo = cli("status", "--pass", "p")  # a misspelt pass is said, not shown as an empty one
    assert 'no task has ever been posted to pass "p": no agent run to count' in typo.stderr


def test_status_shows_the_passes_with_every_status(cli: Cli, swarm: Swarm) -> None:
    swarm.post_task("q", "a", pass_name="Pass 1")
    swarm.post_task("q", "b", pass_name="Pass 1")
    t = must(swarm.claim("q", worker="w"))
    swarm.report(t.id, t.token, {"summary": "s"})
    report = cli.json("status")
    statuses = list(report["totals"])
    assert len(statuses) == 6
    (progress,) = report["passes"]
    assert progress["counts"] == {**dict.fromkeys(statuses, 0), "pending": 1, "completed": 1}
    assert list(progress["counts"]) == statuses  # in the order of queues and totals
    human = cli("status").stdout
    assert "passes" in human
    row = next(line for line in human.splitlines() if line.strip().startswith("Pass 1"))
    assert row.split()[2:] == ["1", "0", "0", "1", "0", "0", "1/2"]


def test_agents_register_list_heartbeat_deregister_sweep(cli: Cli, swarm: Swarm) -> None:
    out = cli("agents", "register", "shard-a", "--role", "shard", "--model", "haiku",
              "--metadata", '{"team": "x"}')  # fmt: skip
    assert out.stdout.startswith("registered shard-a as shard")
    gen = cli.json("agents", "register", "--role", "coordinator")
    assert gen["id"].startswith("coordinator") and gen["role"] == "coordinator"
    listing = cli.json("agents")
    assert {a["id"] for a in listing["items"]} == {"shard-a", gen["id"]}
    assert cli.json("agents", "--role", "shard")["items"][0]["metadata"] == {"team": "x"}
    human = cli("agents").stdout
    assert "shard-a" in human and "haiku" in human
    posted = cli.json("task", "post", "q", "work")["id"]  # (a heartbeat names a real task)
    hb = cli.json("agents", "heartbeat", "shard-a", "--task", posted)
    assert hb["current_task"] == posted and hb["alive"] is True
    assert cli("agents", "heartbeat", env={"SWARM_AGENT": "shard-a"}).stdout == "shard-a alive\n"
    cli("agents", "heartbeat", expect=2)
    out = cli("agents", "heartbeat", "nobody", expect=1)
    assert "nobody" in out.stderr
    assert cli.json("agents", "--stale")["items"] == []
    cli("agents", "deregister", gen["id"])
    assert [a["id"] for a in cli.json("agents")["items"]] == ["shard-a"]
    assert cli.json("agents", "sweep", "--stale-after", "3600") == {"items": [], "unread": {}}
    swept = cli("agents", "sweep", "--stale-after", "3600").stdout
    assert swept == (
        "removed none: no agent silent for more than 3600 s (one holding a lease not yet "
        "expired is kept)\n"
    )
    cli("agents", "register", "x", "--role", "worker", "--metadata", "[1]", expect=2)
    cli("agents", "register", "x", "--role", "worker", "--metadata", "{", expect=2)


def test_agents_alive_and_stale_together_is_a_usage_error(cli: Cli, swarm: Swarm) -> None:
    swarm.register("worker", name="w")
    assert [a["id"] for a in cli.json("agents", "--alive")["items"]] == ["w"]
    assert cli.json("agents", "--stale")["items"] == []
    out = cli("agents", "--alive", "--stale", expect=2)
    assert "--alive and --stale are alternatives" in out.stderr


def test_registering_shows_times_as_the_rest_of_the_cli(cli: Cli, swarm: Swarm) -> None:
    out = cli("agents", "register", "shard-a", "--role", "shard").stdout
    agent = swarm.get_agent("shard-a")
    for name, ms in (("registered_at", agent.registered_at), ("last_seen", agent.last_seen)):
        assert re.search(rf"^{name}\s+{re.escape(iso(ms) or '-')} \(\d+s ago\)$", out, re.M), out
    assert str(agent.registered_at) not in out


def test_messages_send_broadcast_inbox(cli: Cli, swarm: Swarm) -> None:
    swarm.register("shard", name="shard-a")
    swarm.register("coordinator", name="coord")
    sent = cli.json("msg", "send", "shard-a", "hello", "--from", "coord", "--data", '{"n": 1}')
    assert sent["to"] == "shard-a" and sent["sender"] == "coord" and sent["data"] == {"n": 1}
    out = cli("msg", "send", "shard-a", "-", "--from", "coord", input="from stdin\n")
    assert out.stdout.startswith("sent ")
    cli("msg", "broadcast", "to all", env={"SWARM_AGENT": "coord"})
    peek = cli.json("msg", "inbox", "shard-a", "--peek")
    assert [m["body"] for m in peek["items"]] == ["hello", "from stdin\n", "to all"]
    human = cli("msg", "inbox", env={"SWARM_AGENT": "shard-a"}).stdout
    assert "hello" in human and "to all" in human and '{"n": 1}' in human
    out = cli("msg", "inbox", "shard-a")
    assert out.stdout == "" and "no new messages" in out.stderr
    out = cli("msg", "send", "nobody", "hi", expect=1)
    assert out.stderr.startswith("error: ") and "nobody" in out.stderr
    cli("msg", "inbox", expect=2)
    cli("msg", "send", "shard-a", "-", "--data", "-", input="{}", expect=2)
    for data in ("[1,2]", '"x"', "3", "null"):  # JSON, but not an object: bad input, as --metadata
        out = cli("msg", "send", "shard-a", "hi", "--data", data, expect=2)
        assert "--data" in out.stderr and "must be a JSON object" in out.stderr
    assert swarm.inbox("shard-a") == []


def test_an_empty_message_is_refused_and_nothing_is_sent(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    swarm.register("shard", name="shard-a")
    blank = tmp_path / "blank.txt"
    blank.write_text(" \n")
    for args, stdin in (
        (["msg", "send", "shard-a", ""], None),
        (["msg", "send", "shard-a", " \t\n"], None),
        (["msg", "send", "shard-a", "", "--data", '{"n": 1}'], None),
        (["msg", "send", "shard-a", "-"], "\n\n"),
        (["msg", "send", "shard-a", f"@{blank}"], None),
        (["msg", "broadcast", ""], None),
        (["msg", "broadcast", "-"], "  "),
    ):
        out = cli(*args, "--from", "coord", input=stdin, expect=None)
        said = "error: the message is empty: give its text" in out.stderr and out.code == 2
        assert said or ("BODY: stdin was empty" in out.stderr and out.code == 2), (args, out)
    assert swarm.inbox("shard-a", limit=10) == []
    assert cli.json("msg", "send", "shard-a", " . ")["body"] == " . "  # blank only all through


def test_events_list_filter_since(cli: Cli, swarm: Swarm) -> None:
    swarm.post_task("q", "a")
    t = must(swarm.claim("q", worker="w"))
    swarm.report(t.id, t.token, {"summary": "s"})
    items = cli.json("events")["items"]
    types = [e["type"] for e in items]
    # (w's claim registers it: agent.joined, then its task.claimed)
    assert types[:3] == ["task.posted", "agent.joined", "task.claimed"]
    assert "task.completed" in types
    only = cli.json("events", "--type", "task.claimed")["items"]
    assert [e["type"] for e in only] == ["task.claimed"]
    after = cli.json("events", "--since", items[0]["id"])["items"]
    assert after[0]["id"] == items[1]["id"]
    assert len(cli.json("events", "--since", "10m")["items"]) == len(items)
    assert cli.json("events", "--since", "0", "--limit", "1")["items"] == items[:1]
    human = cli("events").stdout.splitlines()
    assert "task.posted" in human[0] and "queue=q" in human[0]
    cli("events", "--since", "yesterday", expect=2)
    assert cli.json("events", "--last", "2")["items"] == items[-2:]
    assert cli.json("events", "--last", "1", "--type", "task.posted")["items"] == items[:1]
    out = cli("events", "--last", "2", "--limit", "5", expect=2)
    assert "pick one" in out.stderr
    out = cli("events", "--type", "task.bogus", expect=2)
    assert "--type" in out.stderr and "unknown event type 'task.bogus'" in out.stderr


def test_events_follow_until_count_and_timeout(cli: Cli, redis_url: str) -> None:
    def later() -> None:
        time.sleep(0.3)
        with Swarm(redis_url, swarm="test") as other:
            other.post_task("q", "a")
            other.post_task("q", "b")

    thread = threading.Thread(target=later)
    thread.start()
    out = cli("--json", "events", "--follow", "--count", "2", "--timeout", "20")
    thread.join()
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [e["type"] for e in lines] == ["task.posted", "task.posted"]
    started = time.monotonic()
    out = cli("events", "--follow", "--timeout", "0.5")
    assert out.stdout == "" and time.monotonic() - started < 5
    # as tail -n 1 -f: the newest event, then the new ones after it (--count counts those)
    with Swarm(redis_url, swarm="test") as other:
        (newest,) = other.events(limit=1, newest=True)
    thread = threading.Thread(target=later)
    thread.start()
    out = cli("--json", "events", "--last", "1", "--follow", "--count", "2", "--timeout", "20")
    thread.join()
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert lines[0]["id"] == newest.id and len(lines) == 3
    assert [e["type"] for e in lines[1:]] == ["task.posted", "task.posted"]
    assert newest.id not in {e["id"] for e in lines[1:]}
