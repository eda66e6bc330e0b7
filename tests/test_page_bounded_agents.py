"""The dashboard's page in a browser (when chromium is installed): of a swarm with more live
agents than ``/api/status`` sends (``LIVE_SHOWN``), it draws those it is sent, says how many
live and stale ones it was not, and its link asks for every one (``?all=1``)."""

from __future__ import annotations

import time

import pytest

from redis_swarm import Swarm
from redis_swarm._printable import LIVE_SHOWN, STALE_SHOWN

LIVE = LIVE_SHOWN + 40
STALE = STALE_SHOWN + 3


def test_the_page_says_how_many_live_agents_it_does_not_show(redis_url: str) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    from . import test_dashboard_browser as web  # skips here without chromium

    expect = sync_api.expect
    now = int(time.time() * 1000)
    seen = [now]
    with Swarm(redis_url, swarm=web.SWARM, clock=lambda: seen[0]) as swarm:
        for n in range(STALE):  # silent for ten minutes
            seen[0] = now - 600_000 - n * 1_000
            swarm.register("worker", name=f"gone-{n}")
        for n in range(LIVE):  # live-000 seen first, all within the last 15 s
            seen[0] = now - 15_000 + n * 40
            swarm.register("worker", name=f"live-{n:03d}")
    with web.dashboard_page(redis_url) as (page, url, errors):
        page.goto(url)
        rows = page.locator("#agents tbody tr")
        expect(rows).to_have_count(LIVE_SHOWN + STALE_SHOWN)
        expect(page.locator("#agents")).not_to_contain_text("live-039")
        expect(page.locator("#agents")).to_contain_text("live-040")
        line = page.locator("#agents .more")
        expect(line).to_contain_text(
            f"not shown: {LIVE - LIVE_SHOWN} live agents and {STALE - STALE_SHOWN} "
            "stale agents seen longer ago"
        )
        line.get_by_text("show all").click()
        expect(rows).to_have_count(LIVE + STALE)
        assert page.url.endswith("/?all=1")
        expect(page.locator("#agents .more")).to_contain_text("every agent shown")
        page.locator("#agents .more").get_by_text("show only the last ones").click()
        expect(rows).to_have_count(LIVE_SHOWN + STALE_SHOWN)
        assert not errors, errors
