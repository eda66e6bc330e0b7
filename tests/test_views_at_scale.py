"""The views at scale, against a real Redis: a swarm of many shards publishes a context an
owner, and ``swarm status``, ``swarm watch`` and the dashboard list only the ``OWNERS_SHOWN``
owners that published last (``bounded_owners``, as MCP's ``swarm_status`` does), with the
line that says how many they left out and how to list them (``--all``, the page's "show
all"); the dashboard reads the versions of the owners it shows only (a call an owner: 2,000
shards were 2,000 calls on every refresh). And a queue whose every task was retired (its
counters left at zero) is listed by none of them: the core's status leaves it out."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from rich.console import Console
from starlette.testclient import TestClient

from redis_swarm import AsyncSwarm, Swarm
from redis_swarm._context_records import ContextInfo
from redis_swarm._printable import OWNERS_SHOWN
from redis_swarm.dashboard import snapshot
from redis_swarm.dashboard._terminal import render
from redis_swarm.dashboard.app import create_app

from ._cli import Cli
from ._clock import FakeClock
from ._handles import must

SWARM = "test"
OWNERS = OWNERS_SHOWN + 10
HIDDEN = OWNERS - OWNERS_SHOWN
LINE = f"not shown: {HIDDEN} context owners that published longer ago"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(int(time.time() * 1000))  # (now: views say how long ago)


@pytest.fixture
def swarm(redis_url: str, clock: FakeClock) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm=SWARM, clock=clock) as handle:
        yield handle


def _publish(swarm: Swarm, clock: FakeClock) -> list[str]:
    """OWNERS owners, each publishing a small context a second after the one before
    (owner-00 first; owner-05 twice, its first version before all): the ``OWNERS_SHOWN``
    that published last, in order."""
    now = clock.now
    owners = [f"owner-{n:02d}" for n in range(OWNERS)]
    clock.now = now - (OWNERS + 1) * 1_000
    swarm.publish_context("owner-05", "# owner-05, first\n", source="test")
    for n, owner in enumerate(owners):
        clock.now = now - (OWNERS - n) * 1_000
        swarm.publish_context(owner, f"# {owner}\n", source="test")
    clock.now = now
    return owners[-OWNERS_SHOWN:]


def _owners(out: str) -> list[str]:
    """The owners a table lists, in its order (an owner once however many versions)."""
    cells = (line.split()[0] for line in out.splitlines() if line.split())
    return list(dict.fromkeys(c for c in cells if c.startswith("owner-")))


def _flat(out: str) -> str:
    """``out`` on one line, single spaces: a line rich wrapped reads whole."""
    return " ".join(out.split())


# --- swarm status


def test_status_lists_the_context_owners_that_published_last(
    swarm: Swarm, clock: FakeClock, cli: Cli
) -> None:
    newest = _publish(swarm, clock)
    out = cli("status").stdout
    assert _owners(out) == newest
    assert f"{LINE} (swarm status --all lists them)" in out.splitlines()
    every = cli("status", "--all").stdout
    assert len(_owners(every)) == OWNERS and "not shown" not in every
    # --json holds every owner, as it holds every queue and pass (--all: the human view only)
    report = cli.json("status")
    assert len(report["contexts"]) == OWNERS and report == cli.json("status", "--all")


def test_status_says_the_owners_and_the_settled_queues_it_left_out_in_one_line(
    swarm: Swarm, clock: FakeClock, cli: Cli
) -> None:
    _publish(swarm, clock)
    swarm.post_tasks([{"queue": f"day-{n}", "description": "t"} for n in range(1, 13)])
    for n in range(1, 13):
        swarm.cancel(must(swarm.claim(f"day-{n}", worker="w")).id)
    out = cli("status").stdout
    assert (
        f"not shown: 2 settled queues and {HIDDEN} context owners that published longer ago "
        "(swarm status --all lists them)"
    ) in out.splitlines()


# --- the dashboard


class _Counting(AsyncSwarm):
    """A handle that notes whose versions it was asked for (``context_versions``)."""

    asked: list[str]

    async def context_versions(self, owner: str) -> list[ContextInfo]:
        self.asked.append(owner)
        versions: list[ContextInfo] = await super().context_versions(owner)
        return versions


@pytest.fixture
def counting(redis_url: str) -> _Counting:
    handle = _Counting(redis_url, swarm=SWARM)
    handle.asked = []
    return handle


@pytest.fixture
def client(counting: _Counting) -> Iterator[TestClient]:
    app = create_app(counting, close_swarm=True)
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        yield client


def test_the_dashboard_reads_the_versions_of_the_owners_it_shows_only(
    swarm: Swarm, clock: FakeClock, client: TestClient, counting: _Counting
) -> None:
    newest = _publish(swarm, clock)
    status = client.get("/api/status").json()
    assert sorted(counting.asked) == newest  # one call an owner shown, none for the rest
    assert sorted({c["owner"] for c in status["contexts"]}) == newest
    assert status["not_shown"]["contexts"] == HIDDEN
    counting.asked.clear()
    every = client.get("/api/status", params={"all": "1"}).json()
    assert len(counting.asked) == OWNERS
    assert len({c["owner"] for c in every["contexts"]}) == OWNERS
    # (owner-05's two versions, newest first: a kept version is listed with its owner)
    assert [c["owner"] for c in every["contexts"]].count("owner-05") == 2
    assert every["not_shown"]["contexts"] == 0


def test_watch_draws_the_owners_that_published_last(
    swarm: Swarm, clock: FakeClock, cli: Cli
) -> None:
    newest = _publish(swarm, clock)
    out = cli("watch", "--once").stdout
    assert _owners(out) == newest
    assert f"{LINE} (swarm watch --all lists them)" in _flat(out)
    every = cli("watch", "--once", "--all").stdout
    assert len(_owners(every)) == OWNERS and "context owners" not in every
    # --json holds every owner's versions (as it holds every queue, pass and agent)
    snap = json.loads(cli("--json", "watch", "--once").stdout)
    assert len({c["owner"] for c in snap["contexts"]}) == OWNERS


def test_the_terminal_view_counts_the_owners_a_bounded_snapshot_left_out(
    swarm: Swarm, clock: FakeClock, redis_url: str
) -> None:
    newest = _publish(swarm, clock)

    async def read() -> Any:
        async with AsyncSwarm(redis_url, swarm=SWARM) as handle:
            return await snapshot(handle, owners=5)

    snap = asyncio.run(read())
    assert [c.owner for c in snap.contexts] == sorted(newest[-5:])
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(render(snap, width=120))
    assert f"not shown: {OWNERS - 5} context owners that published longer ago" in out.getvalue()


def test_the_page_says_how_many_context_owners_it_does_not_show(
    clock: FakeClock, redis_url: str
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    from . import test_dashboard_browser as web  # skips here without chromium

    expect = sync_api.expect
    with Swarm(redis_url, swarm=web.SWARM, clock=clock) as swarm:  # (the page's swarm)
        _publish(swarm, clock)
    with web.dashboard_page(redis_url) as (page, url, errors):
        page.goto(url)
        rows = page.locator("#contexts tbody tr")
        expect(rows).to_have_count(OWNERS_SHOWN)
        line = page.locator("#contexts .more")
        expect(line).to_contain_text(LINE)
        line.get_by_text("show all").click()
        expect(rows).to_have_count(OWNERS + 1)  # (owner-05's kept version too)
        assert page.url.endswith("/?all=1")
        expect(page.locator("#contexts .more")).to_contain_text("every context owner shown")
        page.locator("#contexts .more").get_by_text("show only those that published last").click()
        expect(rows).to_have_count(OWNERS_SHOWN)
        assert not errors, errors


# --- a retired queue


def _retired(swarm: Swarm) -> None:
    """Queue q-old: its pass old's tasks, every one settled, then the pass retired (the
    queue's counters at zero); q-done: settled, not retired; q-open: a task pending."""
    swarm.post_tasks(
        [{"queue": "q-old", "description": "t", "pass_name": "old"} for _ in range(3)]
        + [{"queue": "q-done", "description": "t"}, {"queue": "q-open", "description": "t"}]
    )
    for queue in ("q-old", "q-old", "q-old", "q-done"):
        task = must(swarm.claim(queue, worker="w"))
        swarm.report(task.id, task.token, {"summary": "ok"})
    assert swarm.retire_pass("old").tasks == 3
    assert swarm.queue_stats()["q-old"] == dict.fromkeys(swarm.queue_stats()["q-old"], 0)


def test_a_queue_whose_every_task_was_retired_is_listed_nowhere(
    swarm: Swarm, cli: Cli, client: TestClient
) -> None:
    _retired(swarm)
    assert list(swarm.status().queues) == ["q-done", "q-open"]
    out = cli("status").stdout
    assert "q-old" not in out and "q-done" in out and "q-open" in out
    assert "q-old" not in cli.json("status")["queues"]
    status = client.get("/api/status").json()
    assert list(status["queues"]) == ["q-done", "q-open"] and status["totals"]["queues"] == 2
    # a task posted to it again: listed again
    swarm.post_task("q-old", "t")
    assert "q-old" in swarm.status().queues and "q-old" in cli("status").stdout


def test_a_queue_of_questions_retired_whole_is_listed_nowhere(
    swarm: Swarm, client: TestClient
) -> None:
    (question,) = swarm.post_tasks([{"queue": "ask.owner-1", "description": "why?"}])
    swarm.cancel(question.id)
    done = swarm.retire_questions("owner-1", older_than_s=0)
    assert done.questions == 1
    assert "ask.owner-1" not in swarm.status().queues
    status = client.get("/api/status").json()
    assert status["questions"] == {} and status["queues"] == {}
