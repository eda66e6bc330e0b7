"""The dashboard's routes, its event stream, its access rules, and ``swarm watch``, against a
real Redis (the browser test is in test_dashboard_browser.py)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from importlib import resources
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from rich.console import Console
from starlette.testclient import TestClient

from redis_swarm import AsyncSwarm, EventType, Swarm
from redis_swarm.cli import main
from redis_swarm.dashboard import snapshot
from redis_swarm.dashboard._feed import EventFeed
from redis_swarm.dashboard._terminal import render
from redis_swarm.dashboard.app import create_app, is_loopback

from ._cancel import lose_a_cancellation, needs_cancelling
from ._servers import free_port
from ._sse import SSEClient

SWARM = "test"


def populate(swarm: Swarm) -> dict[str, Any]:
    """A small swarm with one of everything the page shows; returns what was made."""
    shard = swarm.register("shard", name="shard-1", model="opus", specialization="contracts")
    ctx = swarm.publish_context("shard-1", "line one\nline two\n", source="notes.md")
    tasks = [
        swarm.post_task("q.scan", f"read part {i}", pass_name="Pass 1", parent="shard-1")
        for i in range(3)
    ]
    doomed = swarm.post_task("q.scan", "never works", pass_name="Pass 1", max_attempts=1)
    claimed = swarm.claim("q.scan", worker="w-1")
    assert claimed is not None
    finding = swarm.report(
        claimed.id,
        claimed.token,
        {"summary": "clause 4 contradicts clause 9", "sources": ["notes.md#L1"]},
        worker="w-1",
        model="haiku",
    )
    # Claim the rest, fail the doomed one for good, give the others back.
    held = []
    while (task := swarm.claim("q.scan", worker="w-2")) is not None:
        held.append(task)
    for task in held:
        if task.id == doomed.id:
            swarm.fail(task.id, task.token, "parser crashed", retry=False)
        else:
            swarm.release(task.id, task.token)
    synthesis = swarm.synthesize("shard-1", "Pass 1", "one contradiction", [finding.id])
    return {
        "shard": shard,
        "context": ctx,
        "tasks": tasks,
        "doomed": doomed,
        "finding": finding,
        "synthesis": synthesis,
    }


@pytest.fixture
def sync_swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm=SWARM) as swarm:
        yield swarm


def _client(redis_url: str, token: str | None = None) -> TestClient:
    app = create_app(AsyncSwarm(redis_url, swarm=SWARM), token=token, close_swarm=True)
    return TestClient(app, base_url="http://127.0.0.1:8765")


@pytest.fixture
def client(redis_url: str) -> Iterator[TestClient]:
    with _client(redis_url) as client:
        yield client


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


# --- the page and the JSON API


def test_page_and_assets_are_served_with_a_strict_policy(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script src="/static/dashboard.js"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
    for asset, kind in (("dashboard.js", "javascript"), ("dashboard.css", "text/css")):
        response = client.get(f"/static/{asset}")
        assert response.status_code == 200
        assert kind in response.headers["content-type"]
    # Nothing from elsewhere: no CDN, no framework.
    assert "http" not in client.get("/static/dashboard.js").text.replace("https://", "")
    assert "//" not in page.text.replace("<!doctype", "")


def test_the_page_learns_the_event_types_from_the_server(client: TestClient) -> None:
    """EventType is the one list: the page gets it from the server, the script has no copy."""
    page = client.get("/").text
    names = ",".join(t.value for t in EventType)
    assert f'<meta name="swarm-event-types" content="{names}">' in page
    script = client.get("/static/dashboard.js").text
    assert not [t.value for t in EventType if t.value in script]


def test_status_shows_every_part_of_the_swarm(client: TestClient, sync_swarm: Swarm) -> None:
    made = populate(sync_swarm)
    newest = sync_swarm.events(limit=1000)[-1].id
    status = client.get("/api/status").json()
    assert status["swarm"] == SWARM
    assert status["last_event_id"] == newest
    counts = status["queues"]["q.scan"]
    assert (counts["pending"], counts["completed"], counts["dead"]) == (2, 1, 1)
    (progress,) = status["passes"]
    assert progress["name"] == "Pass 1"
    assert (progress["total"], progress["settled"]) == (4, 2)
    assert progress["fraction"] == 0.5
    (finding,) = status["findings"]
    assert finding["summary"] == "clause 4 contradicts clause 9"
    assert (finding["worker"], finding["sources"]) == ("w-1", ["notes.md#L1"])
    (synthesis,) = status["syntheses"]
    assert synthesis["sources"] == [made["finding"].id]
    (dead,) = status["dead"]
    assert dead["id"] == made["doomed"].id
    assert "parser crashed" in (dead["dead_reason"] or dead["last_error"])
    (ctx,) = status["contexts"]
    assert (ctx["owner"], ctx["version"]) == ("shard-1", made["context"].version)
    assert ctx["size_bytes"] == len(b"line one\nline two\n")
    agents = {a["id"]: a for a in status["agents"]}
    assert agents["shard-1"]["model"] == "opus"
    assert agents["shard-1"]["specialization"] == "contracts"
    assert agents["shard-1"]["alive"] is True
    assert {"w-1", "w-2"} <= set(agents)
    assert status["totals"]["dead"] == 1


def test_status_lists_the_newest_first_within_its_limits(
    client: TestClient, sync_swarm: Swarm
) -> None:
    reported = []
    for i in range(3):
        sync_swarm.post_task("q.n", f"t{i}", max_attempts=1)
        task = sync_swarm.claim("q.n", worker="w-1")
        assert task is not None
        reported.append(sync_swarm.report(task.id, task.token, {"summary": f"s{i}"}).id)
    dead = []
    for i in range(3):
        sync_swarm.post_task(f"q.d{i}", "doomed")
        task = sync_swarm.claim(f"q.d{i}", worker="w-1")
        assert task is not None
        sync_swarm.fail(task.id, task.token, f"reason {i}", retry=False)
        dead.append(task.id)
    status = client.get("/api/status", params={"findings": "2", "dead": "2"}).json()
    assert [f["id"] for f in status["findings"]] == reported[:0:-1]
    assert [t["id"] for t in status["dead"]] == dead[:0:-1]  # across queues, newest first


def test_status_of_an_empty_swarm(client: TestClient) -> None:
    status = client.get("/api/status").json()
    assert status["queues"] == {} and status["agents"] == [] and status["passes"] == []
    assert status["last_event_id"] == "0-0"  # before the first event: follow from there


def test_snapshot_lists_every_version_of_a_context(redis_url: str, sync_swarm: Swarm) -> None:
    first = sync_swarm.publish_context("owner-a", "v1", source="a.md")
    second = sync_swarm.publish_context("owner-a", "version two", source="a.md")

    async def read() -> Any:
        async with AsyncSwarm(redis_url, swarm=SWARM) as swarm:
            return await snapshot(swarm)

    snap = run(read())
    assert [c.version for c in snap.contexts] == [second.version, first.version]
    assert [c.size_bytes for c in snap.contexts] == [len("version two"), 2]


def test_tasks_are_filtered_and_paged(client: TestClient, sync_swarm: Swarm) -> None:
    made = populate(sync_swarm)
    dead = client.get("/api/tasks", params={"status": "dead"}).json()
    assert [t["id"] for t in dead["items"]] == [made["doomed"].id]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"queue": "q.scan", "limit": "2", **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/tasks", params=params).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted([t.id for t in made["tasks"]] + [made["doomed"].id])
    by_pass = client.get("/api/tasks", params={"pass": "Pass 1"}).json()
    assert len(by_pass["items"]) == 4


def test_findings_are_filtered(client: TestClient, sync_swarm: Swarm) -> None:
    made = populate(sync_swarm)
    page = client.get("/api/findings", params={"pass": "Pass 1"}).json()
    assert [f["id"] for f in page["items"]] == [made["finding"].id]
    assert client.get("/api/findings", params={"queue": "other"}).json()["items"] == []


@pytest.mark.parametrize(
    ("path", "params", "needle"),
    [
        ("/api/tasks", {"status": "sleeping"}, "unknown status"),
        ("/api/tasks", {"limit": "lots"}, "not a number"),
        ("/api/tasks", {"limit": "0"}, "out of range"),
        ("/api/findings", {"limit": "100000"}, "out of range"),
        ("/api/events", {"types": "task.exploded"}, "unknown event type"),
    ],
)
def test_bad_parameters_are_400_with_a_hint(
    client: TestClient, path: str, params: dict[str, str], needle: str
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 400
    assert needle in response.json()["message"]


@pytest.mark.parametrize("name", ["findings", "syntheses", "dead"])
def test_a_bad_count_of_the_status_is_400_naming_it(client: TestClient, name: str) -> None:
    for value, said in (("0", f"{name} 0 is out of range"), ("x", f"{name} 'x' is not a number")):
        response = client.get("/api/status", params={name: value})
        assert response.status_code == 400
        assert said in response.json()["message"], response.text


def test_no_such_route_and_a_wrong_method_answer_json(client: TestClient) -> None:
    for path in ("/api/nope", "/nope", "/static/nope.css"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert body["error"] == "NotFound" and path in body["message"]
    assert "/api/status, /api/tasks, /api/findings, /api/events" in body["message"]
    for path in ("/api/status", "/", "/static/app.js"):
        response = client.post(path)
        assert response.status_code == 405, path
        assert response.headers["content-type"] == "application/json"
        assert "GET" in response.headers["allow"]
        assert response.json() == {
            "error": "MethodNotAllowed",
            "message": "POST is not allowed: the dashboard is read-only, every route takes GET",
        }


def test_a_bad_queue_name_is_400(client: TestClient) -> None:
    response = client.get("/api/tasks", params={"queue": "no spaces"})
    assert response.status_code == 400
    assert response.json()["error"] == "BadRequest"


def test_the_api_is_read_only(client: TestClient) -> None:
    for path in ("/api/status", "/api/tasks", "/api/findings", "/api/events", "/"):
        assert client.post(path).status_code == 405
        assert client.delete(path).status_code == 405


# --- access


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("app.localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("example.org", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


def _assert_security_headers(response: httpx.Response) -> None:
    """A refusal carries the headers of every other response."""
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_a_token_is_required_when_set(redis_url: str) -> None:
    with _client(redis_url, token="s3cret") as client:
        for path in ("/", "/api/status", "/api/tasks", "/api/findings", "/api/events"):
            refused = client.get(path)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"].startswith("Bearer")
            _assert_security_headers(refused)
            assert "token" in refused.json()["message"]
            wrong = client.get(path, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            assert client.get(path, params={"token": "s3cret-not"}).status_code == 401
        assert client.get("/api/status", headers={"Authorization": "Bearer s3cret"}).is_success
        assert client.get("/api/status", params={"token": "s3cret"}).is_success
        assert client.get("/", params={"token": "s3cret"}).is_success
        # Given both ways, with two values: refused whichever is right (test_dashboard_load).
        mixed = client.get(
            "/api/status", params={"token": "s3cret"}, headers={"Authorization": "Bearer x"}
        )
        assert mixed.status_code == 400
        # The assets are the public package's files: the page can load them before the token.
        assert client.get("/static/dashboard.js").is_success


def test_a_token_lets_the_event_stream_in(redis_url: str) -> None:
    async def scenario() -> None:
        async with AsyncSwarm(redis_url, swarm=SWARM) as swarm:
            app = create_app(swarm, token="s3cret")
            async with SSEClient(app, "/api/events?token=s3cret") as sse:
                assert sse.status == 200
            async with SSEClient(app, "/api/events?token=wrong") as sse:
                assert sse.status == 401
                assert "token" in await sse.body()

    run(scenario())


def test_without_a_token_only_loopback_hosts_are_served(redis_url: str) -> None:
    with _client(redis_url) as client:
        for host in ("127.0.0.1:8765", "localhost:8765", "[::1]:8765", "localhost"):
            assert client.get("/api/status", headers={"host": host}).is_success, host
        for host in ("evil.example:8765", "192.168.1.4:8765", "evil.example"):
            refused = client.get("/api/status", headers={"host": host})
            assert refused.status_code == 403, host
            assert "--token" in refused.json()["message"]
            _assert_security_headers(refused)


# --- the event stream


def test_events_stream_live_changes(redis_url: str) -> None:
    async def scenario() -> None:
        async with AsyncSwarm(redis_url, swarm=SWARM) as swarm:
            app = create_app(swarm)
            async with SSEClient(app, "/api/events") as sse:
                assert sse.status == 200
                assert sse.response_headers["content-type"].startswith("text/event-stream")
                task = await swarm.post_task("q.live", "hello")
                message = await sse.next()
                assert message.event == "task.posted"
                assert message.data["fields"]["task"] == task.id
                assert message.id == message.data["id"]
                assert sse.retry == 1000
                claimed = await swarm.claim("q.live", worker="w-9")
                assert claimed is not None
                message = await sse.next()  # w-9's first claim registers it: it joins first
                assert (message.event, message.data["fields"]["agent"]) == ("agent.joined", "w-9")
                message = await sse.next()
                assert (message.event, message.data["fields"]["task"]) == ("task.claimed", task.id)

    run(scenario())


def test_events_resume_from_last_event_id(redis_url: str) -> None:
    async def scenario() -> None:
        async with AsyncSwarm(redis_url, swarm=SWARM) as swarm:
            app = create_app(swarm)
            posted = [await swarm.post_task("q.resume", f"t{i}") for i in range(4)]
            events = await swarm.events()
            ids = [e.id for e in events]
            assert len(ids) == 4
            # A browser that saw the second event reconnects: it gets the third and fourth,
            # in order, then what happens next. The header wins over ?since=.
            headers = {"Last-Event-ID": ids[1]}
            async with SSEClient(app, f"/api/events?since={ids[3]}", headers) as sse:
                replayed = await sse.messages(2)
                assert [m.id for m in replayed] == ids[2:]
                assert [m.data["fields"]["task"] for m in replayed] == [t.id for t in posted[2:]]
                later = await swarm.post_task("q.resume", "after the reconnect")
                message = await sse.next()
                assert message.data["fields"]["task"] == later.id
            # ?since= alone works the same (the page's first connection uses it).
            async with SSEClient(app, f"/api/events?since={ids[2]}") as sse:
                message = await sse.next()
                assert message.id == ids[3]

    run(scenario())


def test_events_from_a_time_in_epoch_ms(redis_url: str) -> None:
    """?since= of digits is a time in epoch ms, as docs/dashboard.md says (a query string is
    text, and the core takes a str for an event id): the events from then on, inclusive."""

    async def scenario() -> None:
        async with AsyncSwarm(redis_url, swarm=SWARM) as swarm:
            app = create_app(swarm)
            await swarm.post_task("q.ms", "before")
            await asyncio.sleep(0.01)  # the next event is in a later millisecond
            await swarm.post_task("q.ms", "from then")
            await swarm.post_task("q.ms", "after")
            events = await swarm.events()
            async with SSEClient(app, f"/api/events?since={events[1].at}") as sse:
                assert sse.status == 200
                replayed = await sse.messages(2)
                assert [m.id for m in replayed] == [e.id for e in events[1:]]

    run(scenario())


def test_a_time_in_the_future_is_400(client: TestClient) -> None:
    future = int(time.time() * 1000) + 86_400_000 * 365
    response = client.get("/api/events", params={"since": str(future)})
    assert response.status_code == 400
    message = response.json()["message"]
    assert message.startswith(f"since '{future}' (a time: "), message
    assert "is in the future (the newest event is " in message


def test_events_filtered_by_type(redis_url: str) -> None:
    async def scenario() -> None:
        async with AsyncSwarm(redis_url, swarm=SWARM) as swarm:
            app = create_app(swarm)
            async with SSEClient(app, "/api/events?types=task.claimed") as sse:
                task = await swarm.post_task("q.types", "x")
                await swarm.claim("q.types", worker="w-1")
                message = await sse.next()
                assert (message.event, message.data["fields"]["task"]) == ("task.claimed", task.id)

    run(scenario())


def test_an_idle_stream_sends_keepalives(redis_url: str) -> None:
    async def scenario() -> None:
        async with AsyncSwarm(redis_url, swarm=SWARM) as swarm:
            app = create_app(swarm, keepalive_s=0.05)
            async with SSEClient(app, "/api/events") as sse:
                await asyncio.sleep(0.3)
                await swarm.post_task("q.idle", "x")
                await sse.next()
                assert "keepalive" in sse.comments

    run(scenario())


def test_a_bad_last_event_id_is_400(client: TestClient) -> None:
    response = client.get("/api/events", headers={"Last-Event-ID": "not-an-id"})
    assert response.status_code == 400
    message = response.json()["message"]
    assert message.startswith("the Last-Event-ID header 'not-an-id' is not an event id")
    assert "since" not in message
    response = client.get("/api/events", params={"since": "not-an-id"})
    assert response.status_code == 400
    assert response.json()["message"].startswith("since 'not-an-id' is not an event id")


@pytest.mark.parametrize(
    "since",
    [
        "18446744073709551615-18446744073709551615",  # the last id: nothing can follow it
        "18446744073709551616-0",  # past 2^64 - 1
        f"{int(time.time() * 1000) + 86_400_000 * 365 * 100}-0",  # a century from now
    ],
    ids=["the-last-id", "past-2-64", "a-century-on"],  # stable ids: the third is time-based
)
def test_an_event_id_no_stream_sent_is_400(client: TestClient, since: str) -> None:
    for request in ({"headers": {"Last-Event-ID": since}}, {"params": {"since": since}}):
        response = client.get("/api/events", **request)  # type: ignore[arg-type]
        assert response.status_code == 400, (since, response.text)
        assert "event id" in response.json()["message"]


# --- the commands


def _cli(redis_url: str, *args: str) -> Any:
    return CliRunner().invoke(main, ["--url", redis_url, "--swarm", SWARM, *args])


def test_dashboard_refuses_a_public_address_without_a_token(redis_url: str) -> None:
    for host in ("0.0.0.0", "::"):
        result = _cli(redis_url, "dashboard", "--host", host, "--port", "1")
        assert result.exit_code == 2  # (a bad option, as swarm mcp's --token)
        assert "--token" in result.output
    # an address not this machine's is refused for that first, as it would be with a token
    result = _cli(redis_url, "dashboard", "--host", "192.168.1.5", "--port", "1")
    assert result.exit_code == 2
    assert "192.168.1.5 is not an address of this machine" in result.output
    result = _cli(redis_url, "dashboard", "--token", " ")
    assert result.exit_code == 2
    assert "empty" in result.output


def test_watch_once_renders_the_swarm(redis_url: str, sync_swarm: Swarm) -> None:
    populate(sync_swarm)
    result = _cli(redis_url, "watch", "--once")
    assert result.exit_code == 0, result.output
    for text in ("q.scan", "Pass 1", "clause 4 contradicts", "shard-1", "parser crashed", "w-1"):
        assert text in result.output
    data = json.loads(_cli(redis_url, "--json", "watch", "--once").output)
    assert data["queues"]["q.scan"]["completed"] == 1
    assert data["findings"][0]["summary"] == "clause 4 contradicts clause 9"


def test_watch_counts_the_cancelled_tasks(redis_url: str, sync_swarm: Swarm) -> None:
    """As swarm status does: a cancelled task is in the header and its queue's row (they
    read 'bulk 0 0 0 0' with 13 cancelled), as the page shows them."""
    tasks = [sync_swarm.post_task("q.bulk", f"t{n}") for n in range(3)]
    for task in tasks[:2]:
        sync_swarm.cancel(task.id)
    out = _cli(redis_url, "watch", "--once").output
    (header,) = [line for line in out.splitlines() if line.startswith("redis-swarm ")]
    assert header.endswith("1 pending   0 claimed   0 completed   0 dead   2 cancelled")
    (heading,) = [line.split() for line in out.splitlines() if line.split()[:1] == ["queue"]]
    assert heading == ["queue", "pending", "claimed", "done", "dead", "cancelled"]
    (row,) = [line.split() for line in out.splitlines() if line.startswith("q.bulk")]
    assert row == ["q.bulk", "1", "0", "0", "0", "2"]
    page = resources.files("redis_swarm.dashboard").joinpath("static/index.html").read_text()
    assert 'id="t-cancelled"' in page


def _five_of_six_settled(swarm: Swarm) -> None:
    """Pass "P 83" with 5 of its 6 tasks completed (83%)."""
    for n in range(6):
        swarm.post_task("q.bar", f"part {n}", pass_name="P 83")
    for _ in range(5):
        task = swarm.claim("q.bar", worker="w-1")
        assert task is not None
        swarm.report(task.id, task.token, {"summary": "done"}, worker="w-1")


def _bar_of(output: str) -> str:
    """The progress bar on the pass's row: its run of blocks and shades."""
    (row,) = [line for line in output.splitlines() if "P 83" in line]
    (bar,) = re.findall("[█░]+", row)
    return str(bar)


def test_watch_without_colour_draws_the_fraction_in_the_bar(
    redis_url: str, sync_swarm: Swarm
) -> None:
    # Into a pipe (CliRunner's output is not a terminal) the bar has no colour to tell the
    # statuses apart: every block alike read as 100% at 83%.
    _five_of_six_settled(sync_swarm)
    result = _cli(redis_url, "watch", "--once")
    assert result.exit_code == 0, result.output
    assert "5/6 83%" in result.output
    assert _bar_of(result.output) == "█" * 17 + "░" * 3


@pytest.mark.parametrize(
    ("no_color", "bar"),
    [
        (True, "█" * 25 + "░" * 5),  # NO_COLOR on a terminal
        (False, "█" * 30),  # colour tells settled from pending
    ],
    ids=["NO_COLOR", "colour"],
)
def test_watch_on_a_terminal_draws_the_bar_in_colour_unless_told_not_to(
    redis_url: str, sync_swarm: Swarm, no_color: bool, bar: str
) -> None:
    _five_of_six_settled(sync_swarm)

    async def read() -> Any:
        async with AsyncSwarm(redis_url, swarm=SWARM) as swarm:
            return await snapshot(swarm)

    out = io.StringIO()
    console = Console(
        file=out, force_terminal=True, color_system="truecolor", width=120, no_color=no_color
    )
    console.print(render(run(read()), width=120))
    drawn = out.getvalue()
    assert _bar_of(re.sub(r"\x1b\[[0-9;]*m", "", drawn)) == bar
    assert ("\x1b[38;" in drawn) is not no_color  # coloured only when allowed


def _swarm_cmd(redis_url: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "redis_swarm", "--url", redis_url, "--swarm", SWARM, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _interrupt(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Ctrl-C the command and wait for it; one still running 10 s later is killed (never left
    to a later test) and fails the test with what it printed."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
        pytest.fail(f"swarm did not exit within 10 s of SIGINT: {err[-2000:]}")


async def _loop_on(feed: EventFeed) -> None:
    """What watch does: wait for an event (or none within the idle time), show, go on."""
    while True:
        await feed.next(0.5)


@needs_cancelling
def test_a_view_looping_on_the_feed_stops_after_a_lost_cancellation(redis_url: str) -> None:
    """Ctrl-C cancels ``swarm watch``'s task; on Python 3.11 a ``wait_for`` that finishes as
    the request comes (redis-py's, in the view's turn, or the feed's own) can swallow it, and
    the view then looped on for good (it happened: watch did not exit within 10 s of SIGINT,
    twice in 30 tries beside two busy processes). The feed's next raises it instead of
    waiting for the next event."""

    async def scenario() -> None:
        async with AsyncSwarm(redis_url, swarm=SWARM) as swarm, EventFeed(swarm) as feed:
            await swarm.post_task("q.lost", "x")
            assert await feed.next(5.0) is not None
            await lose_a_cancellation(swarm.status())
            started = time.monotonic()
            with pytest.raises(asyncio.CancelledError):
                await _loop_on(feed)
            assert time.monotonic() - started < 0.4

    run(asyncio.wait_for(scenario(), 10))


def test_watch_follows_changes_as_json_lines(redis_url: str, sync_swarm: Swarm) -> None:
    proc = _swarm_cmd(redis_url, "--json", "watch")
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first["queues"] == {}
        sync_swarm.post_task("q.watch", "x")
        start = time.monotonic()
        second = json.loads(proc.stdout.readline())
        assert second["queues"]["q.watch"]["pending"] == 1
        assert time.monotonic() - start < 2.0
    finally:
        _interrupt(proc)


class _PipedWatch:
    """``swarm watch`` with its stdout a pipe (not a terminal), read line by line on a
    thread; without PYTHONUNBUFFERED, so what it does not flush is not seen. ``idle_s``:
    its idle re-read comes that often (``--interval``; by default every 5 s)."""

    def __init__(self, redis_url: str, idle_s: float | None = None) -> None:
        drop = ("PYTHONUNBUFFERED", "FORCE_COLOR")
        interval = [] if idle_s is None else ["--interval", str(idle_s)]
        watch = ["--url", redis_url, "--swarm", SWARM, "watch", *interval]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "redis_swarm", *watch],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={k: v for k, v in os.environ.items() if k not in drop},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.printed: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.printed.append(line)
            self.lines.put(line)

    def snapshot(self) -> str:
        """The lines through the next snapshot's last section (a swarm with no context: its
        "no context yet" line); fails after 10 s without it."""
        got: list[str] = []
        while not got or "no context yet" not in got[-1]:
            try:
                got.append(self.lines.get(timeout=10))
            except queue.Empty:
                pytest.fail(f"no whole snapshot within 10 s: {got}")
        return "".join(got).lstrip("\n")

    def stop(self) -> str:
        """Ctrl-C it; everything it printed."""
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        finally:
            self.proc.kill()
            self.reader.join(10)
            assert self.proc.stdout is not None
            self.proc.stdout.close()
        return "".join(self.printed)


def test_watch_into_a_pipe_prints_a_plain_snapshot_per_change(
    redis_url: str, sync_swarm: Swarm
) -> None:
    """Off a terminal, rich's live view printed nothing until it stopped: a snapshot at the
    start, then one per change, each flushed at once, with no cursor control codes."""
    watch = _PipedWatch(redis_url)
    try:
        first = watch.snapshot()
        assert first.startswith(f"redis-swarm {SWARM}") and "no queue with tasks" in first
        sync_swarm.post_task("q.piped", "x")
        start = time.monotonic()
        second = watch.snapshot()
        assert time.monotonic() - start < 2.0
        assert second.startswith(f"redis-swarm {SWARM}") and "q.piped" in second
    finally:
        printed = watch.stop()
    assert "\x1b" not in printed


def test_watch_into_a_pipe_prints_an_agent_going_stale_once(redis_url: str) -> None:
    """An idle swarm changes only when an agent goes stale: that is printed (a snapshot
    whose only news is older ages is not)."""
    # Its last heartbeat 55 s ago: alive for 5 s more (stale after 60 s), then stale.
    with Swarm(redis_url, swarm=SWARM, clock=lambda: int(time.time() * 1000) - 55_000) as old:
        old.register("worker", name="fading")
    idle_s = 1.0  # the watch re-reads an idle swarm every second (not every 5 s)
    watch = _PipedWatch(redis_url, idle_s=idle_s)
    try:
        first = watch.snapshot()
        assert "alive" in first.split("fading")[1].splitlines()[0]
        second = watch.snapshot()  # the idle re-read after it went stale
        assert "stale" in second.split("fading")[1].splitlines()[0]
        with pytest.raises(queue.Empty):  # nothing changed since (past an idle re-read)
            watch.lines.get(timeout=idle_s + 0.5)
    finally:
        watch.stop()


def test_dashboard_command_serves_the_api(redis_url: str, sync_swarm: Swarm) -> None:
    sync_swarm.post_task("q.cmd", "x")
    port = free_port()
    proc = _swarm_cmd(redis_url, "dashboard", "--port", str(port), "--token", "tok")
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                response = httpx.get(f"{url}/api/status", params={"token": "tok"}, timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert response.json()["queues"]["q.cmd"]["pending"] == 1
        assert httpx.get(f"{url}/api/status", params={"token": "bad"}).status_code == 401
    finally:
        _out, err = _interrupt(proc)
    assert f"http://127.0.0.1:{port}/?token=tok" in err
    assert proc.returncode == 0
