"""The dashboard bounded as ``swarm status`` is, against a real Redis: its snapshot (and
/api/status) holds every queue and pass with open work and only the last SETTLED_SHOWN
settled ones, in natural order, with counts of those left out; ``?all=1`` holds every one;
the totals count them all. The page draws what it is sent, says what was left out, and
asks for every one with a link that the address keeps (a browser check, when chromium is
installed)."""

from __future__ import annotations

import asyncio
import functools
import io
import time
from collections.abc import Iterator
from typing import Any

import pytest
from rich.console import Console
from starlette.testclient import TestClient

from redis_swarm import AsyncSwarm, Swarm
from redis_swarm._printable import SETTLED_SHOWN, STALE_SHOWN
from redis_swarm.dashboard import snapshot
from redis_swarm.dashboard._terminal import render
from redis_swarm.dashboard.app import create_app

SWARM = "test"
DAYS = range(1, 18)  # day-1 .. day-17: natural order is not the order of the text
OPEN_DAYS = (3, 16)  # one among the settled ones left out: shown all the same
SETTLED_DAYS = [d for d in DAYS if d not in OPEN_DAYS]


def _swarm_of_days(swarm: Swarm) -> None:
    """17 passes (day-1 .. day-17), each with its own queue and one task: 15 settled (one
    completed, the rest cancelled), 2 open (day-3 pending, day-16 claimed)."""
    specs = [{"queue": f"q.day-{d}", "description": "t", "pass_name": f"day-{d}"} for d in DAYS]
    tasks = dict(zip(DAYS, swarm.post_tasks(specs), strict=True))
    done = swarm.claim("q.day-1", worker="w-1")
    assert done is not None
    swarm.report(done.id, done.token, {"summary": "day 1 read"})
    for d in SETTLED_DAYS[1:]:
        swarm.cancel(tasks[d].id)
    assert swarm.claim("q.day-16", worker="w-1") is not None


def _shown_days() -> list[int]:
    """What a bounded view lists: the open days and the last SETTLED_SHOWN settled ones."""
    return sorted([*OPEN_DAYS, *SETTLED_DAYS[-SETTLED_SHOWN:]])


@pytest.fixture
def sync_swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm=SWARM) as swarm:
        yield swarm


@pytest.fixture
def client(redis_url: str) -> Iterator[TestClient]:
    app = create_app(AsyncSwarm(redis_url, swarm=SWARM), close_swarm=True)
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        yield client


def test_status_lists_the_open_and_the_last_settled_and_counts_the_rest(
    client: TestClient, sync_swarm: Swarm
) -> None:
    _swarm_of_days(sync_swarm)
    status = client.get("/api/status").json()
    shown = _shown_days()
    assert len(shown) == 12 and 3 in shown and 1 not in shown
    assert [p["name"] for p in status["passes"]] == [f"day-{d}" for d in shown]
    assert list(status["queues"]) == [f"q.day-{d}" for d in shown]
    assert status["not_shown"] == {
        "queues": 5,
        "passes": 5,
        "questions": 0,
        "agents": 0,
        "contexts": 0,
    }
    assert status["settled_shown"] == SETTLED_SHOWN
    # The header's totals count every pass and task, shown or not.
    totals = status["totals"]
    assert (totals["passes"], totals["passes_settled"], totals["queues"]) == (17, 15, 17)
    assert (totals["completed"], totals["cancelled"], totals["pending"]) == (1, 14, 1)
    assert totals["claimed"] == 1


def test_all_lists_every_queue_and_pass(client: TestClient, sync_swarm: Swarm) -> None:
    _swarm_of_days(sync_swarm)
    status = client.get("/api/status", params={"all": "1"}).json()
    assert [p["name"] for p in status["passes"]] == [f"day-{d}" for d in DAYS]
    assert list(status["queues"]) == [f"q.day-{d}" for d in DAYS]
    assert status["not_shown"] == {
        "queues": 0,
        "passes": 0,
        "questions": 0,
        "agents": 0,
        "contexts": 0,
    }
    assert status["settled_shown"] is None
    assert (status["totals"]["passes"], status["totals"]["passes_settled"]) == (17, 15)


def test_a_bad_all_is_400_naming_it(client: TestClient) -> None:
    response = client.get("/api/status", params={"all": "yes"})
    assert response.status_code == 400
    assert "all 'yes' is not a flag" in response.json()["message"]


def test_the_questions_are_bounded_too(client: TestClient, sync_swarm: Swarm) -> None:
    """An owner asked a question a day: the panel of questions lists the open ones and the
    last settled ones, as the queues do."""
    specs = [{"queue": f"ask.owner-{n}", "description": "why?"} for n in range(1, 14)]
    asked = sync_swarm.post_tasks(specs)
    for task in asked[1:]:  # ask.owner-1 is still open
        sync_swarm.cancel(task.id)
    status = client.get("/api/status").json()
    names = ["ask.owner-1", *(f"ask.owner-{n}" for n in range(4, 14))]
    assert list(status["questions"]) == names
    assert status["not_shown"]["questions"] == 2
    every = client.get("/api/status?all=1").json()
    assert len(every["questions"]) == 13


def test_the_terminal_view_counts_what_a_bounded_snapshot_left_out(
    redis_url: str, sync_swarm: Swarm
) -> None:
    """``swarm watch`` drawing a bounded snapshot still says how many it does not show."""
    _swarm_of_days(sync_swarm)

    async def read() -> Any:
        async with AsyncSwarm(redis_url, swarm=SWARM) as swarm:
            return await snapshot(swarm, settled=SETTLED_SHOWN)

    snap = asyncio.run(read())
    assert len(snap.passes) == 12
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(render(snap, width=120))
    assert "not shown: 5 settled queues and 5 settled passes (swarm watch --all" in out.getvalue()


def test_the_page_says_what_is_not_shown_and_shows_all_on_request(
    redis_url: str, sync_swarm: Swarm
) -> None:
    """The page draws the passes it is sent, says how many it was not, and its link asks
    for every one; the address keeps ?all=1, so a reload still shows them all."""
    sync_api = pytest.importorskip("playwright.sync_api")
    from . import test_dashboard_browser as web  # skips here without chromium

    expect = sync_api.expect

    with Swarm(redis_url, swarm=web.SWARM) as swarm:
        _swarm_of_days(swarm)
    with web.dashboard_page(redis_url) as (page, url, errors):
        page.goto(url)
        passes = page.locator("#passes .pass")
        expect(passes).to_have_count(12)
        expect(page.locator("#t-passes")).to_have_text("15 / 17")
        line = page.locator("#passes .more")
        expect(line).to_contain_text("not shown: 5 settled passes")
        expect(page.locator("#queues .more")).to_contain_text("5 settled queues")
        line.get_by_text("show all").click()
        expect(passes).to_have_count(17)
        assert page.url.endswith("/?all=1")
        names = [f"day-{d}" for d in DAYS]
        assert [p.get_attribute("data-pass") for p in passes.all()] == names
        expect(page.locator("#t-passes")).to_have_text("15 / 17")
        page.reload()
        expect(page.locator("#live")).to_have_attribute("data-state", "live")
        expect(passes).to_have_count(17)
        page.locator("#passes .more").get_by_text("show only the last settled").click()
        expect(passes).to_have_count(12)
        assert page.url == url
        assert not errors, errors


def test_agents_are_the_live_ones_and_the_stale_ones_seen_last(
    client: TestClient, redis_url: str
) -> None:
    """Every live agent and the STALE_SHOWN stale ones seen last, as swarm watch draws them
    (600 stale agents sent and drawn whole buried the live ones); ?all=1 sends every one."""
    for n in range(8):  # stale: their last heartbeat minutes ago, the newest last
        seen = int(time.time() * 1000) - (600 - n) * 1000
        with Swarm(redis_url, swarm=SWARM, clock=functools.partial(int, seen)) as old:
            old.register("worker", name=f"gone-{n}")
    with Swarm(redis_url, swarm=SWARM) as now:
        for n in range(2):
            now.register("worker", name=f"live-{n}")
    status = client.get("/api/status").json()
    ids = {a["id"] for a in status["agents"]}
    assert ids == {"live-0", "live-1", *(f"gone-{n}" for n in range(8 - STALE_SHOWN, 8))}
    assert status["not_shown"]["agents"] == 8 - STALE_SHOWN
    assert (status["totals"]["agents"], status["totals"]["alive"]) == (10, 2)
    every = client.get("/api/status?all=1").json()
    assert len(every["agents"]) == 10 and every["not_shown"]["agents"] == 0
