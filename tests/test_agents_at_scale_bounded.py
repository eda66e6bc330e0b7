"""A swarm of hundreds of live agents, against a real Redis (a scale walk had 2,000): ``swarm
agents`` prints its rows as they come (``StreamedTable``: one rich table of every row took
3.1 s before its first line), and the views that list agents or context owners on every
read list only the last ones: the dashboard's snapshot (``/api/status``, 568 KB a poll) and
``swarm watch`` the ``LIVE_SHOWN`` live agents seen last (``bounded_agents``), MCP's
``swarm_status`` the ``OWNERS_SHOWN`` context owners that published last
(``bounded_owners``), each with a line saying how many it left out and how to see them all
(``all``)."""

from __future__ import annotations

import asyncio
import io
import json
import sys
import time
from collections.abc import Iterator
from typing import Any, cast

import anyio
import pytest
from rich.console import Console
from starlette.testclient import TestClient

from redis_swarm import AsyncSwarm, Swarm
from redis_swarm._context_records import ContextInfo
from redis_swarm._models import Agent
from redis_swarm._printable import (
    LIVE_SHOWN,
    OWNERS_SHOWN,
    STALE_SHOWN,
    agents_not_shown,
    bounded_agents,
    bounded_owners,
    not_shown,
    stale_not_shown,
)
from redis_swarm.cli import _agents
from redis_swarm.cli._common import ALL_PAGE
from redis_swarm.cli._common import when as made
from redis_swarm.dashboard import snapshot
from redis_swarm.dashboard._terminal import render
from redis_swarm.dashboard.app import create_app
from redis_swarm.mcp_server import build_server

from ._cli import Cli
from ._clock import FakeClock
from .mcp_server._helpers import connect, texts

SWARM = "test"
LIVE = LIVE_SHOWN + 100  # live agents: 100 more than a view lists
STALE = STALE_SHOWN + 2
OWNERS = OWNERS_SHOWN + 10


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(int(time.time() * 1000))  # (now: views say how long ago)


@pytest.fixture
def swarm(redis_url: str, clock: FakeClock) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm=SWARM, clock=clock) as handle:
        yield handle


def _live(n: int) -> str:
    return f"live-{n:03d}"


def _crowd(swarm: Swarm, clock: FakeClock, live: int = LIVE, stale: int = STALE) -> list[str]:
    """``stale`` agents silent for ten minutes (gone-0 seen last) and ``live`` live ones,
    live-000 seen first, each 40 ms after the one before (all within the last 15 s): the
    ids of the ``LIVE_SHOWN`` live ones seen last."""
    now = clock.now
    for n in range(stale):
        clock.now = now - 600_000 - n * 1_000
        swarm.register("worker", name=f"gone-{n}")
    for n in range(live):
        clock.now = now - 15_000 + n * 40
        swarm.register("worker", name=_live(n))
    clock.now = now
    return [_live(n) for n in range(live - LIVE_SHOWN, live)]


def _ids(out: str) -> list[str]:
    """The agents a table lists, in its order: the first cell of each row naming one."""
    cells = (line.split()[0] for line in out.splitlines() if line.split())
    return [c for c in cells if c.startswith(("live-", "gone-"))]


# --- bounded_agents, bounded_owners and their lines


def test_bounded_agents_keeps_the_live_and_the_stale_seen_last() -> None:
    live = [Agent(id=f"l{n}", role="w", last_seen=1_000 + n, alive=True) for n in range(LIVE)]
    gone = [Agent(id=f"g{n}", role="w", last_seen=n, alive=False) for n in range(STALE)]
    roster = [*live[::-1], *gone]  # (the roster's order is kept, whatever it is)
    shown, hidden = bounded_agents(roster)
    newest = {f"l{n}" for n in range(LIVE - LIVE_SHOWN, LIVE)}
    old = {f"g{n}" for n in range(STALE - STALE_SHOWN, STALE)}
    assert [a.id for a in shown] == [a.id for a in roster if a.id in newest | old]
    assert hidden == LIVE - LIVE_SHOWN + STALE - STALE_SHOWN
    # live=None: every live one; stale=None: every agent (a view's --all)
    assert len(bounded_agents(roster, live=None)[0]) == LIVE + STALE_SHOWN
    assert bounded_agents(roster, None) == (roster, 0)
    assert agents_not_shown(shown, hidden, LIVE, "swarm watch") == (
        f"not shown: {LIVE - LIVE_SHOWN} live agents and {STALE - STALE_SHOWN} stale agents "
        "seen longer ago (swarm agents lists them, swarm watch --all shows them here)"
    )
    assert stale_not_shown(0, "swarm watch", live=1_800) == (
        "not shown: 1,800 live agents seen longer ago (swarm agents --alive lists them, "
        "swarm watch --all shows them here)"
    )
    assert agents_not_shown(roster, 0, LIVE, "swarm watch") is None


def test_bounded_owners_keeps_the_owners_that_published_last() -> None:
    infos = [
        ContextInfo(
            owner=f"o{n:02d}",
            version="v",
            size_bytes=1,
            tokens_est=1,
            chunks=1,
            created_at=(n * 7) % OWNERS,
        )
        for n in range(OWNERS)
    ]
    shown, hidden = bounded_owners(infos)
    assert hidden == OWNERS - OWNERS_SHOWN and len(shown) == OWNERS_SHOWN
    assert {c.created_at for c in shown} == set(range(OWNERS - OWNERS_SHOWN, OWNERS))
    assert shown == [c for c in infos if c in shown]  # (in their order: by owner)
    assert bounded_owners(infos, None) == (infos, 0)
    assert not_shown(2, 0, "swarm_status", lists="swarm_status with all=true", owners=1_980) == (
        "not shown: 2 settled queues and 1,980 context owners that published longer ago "
        "(swarm_status with all=true lists them)"
    )


# --- swarm agents: every row, printed as it comes


def test_swarm_agents_prints_its_rows_as_they_come(
    cli: Cli, swarm: Swarm, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More agents than a page (``ALL_PAGE``): when the cells of the last row are made, the
    header and the first page are out already; every agent is listed, in the roster's
    order (oldest first); --json is as it was, every agent whole."""
    count = ALL_PAGE + 100
    _crowd(swarm, clock, live=count, stale=0)
    printed: list[str] = []

    def when(ms: int | None) -> str | None:
        sys.stdout.flush()  # (the runner's stdout: what was printed so far)
        printed.append(cast(io.BytesIO, sys.stdout.buffer).getvalue().decode())
        return made(ms)

    monkeypatch.setattr(_agents, "when", when)
    out = cli("agents").stdout
    before_last = printed[-1]
    assert before_last.splitlines()[0].split()[:3] == ["id", "role", "alive"]
    assert _ids(before_last) == [_live(n) for n in range(ALL_PAGE)]
    assert _ids(out) == [_live(n) for n in range(count)]
    assert "last seen" in out.splitlines()[0] and "yes" in out.splitlines()[2]
    monkeypatch.undo()
    items = cli.json("agents")["items"]
    assert items == [json.loads(json.dumps(a.to_dict())) for a in swarm.agents()]
    assert [a["id"] for a in items] == [_live(n) for n in range(count)]


def test_swarm_agents_says_when_none_is_registered(cli: Cli) -> None:
    out = cli("agents")
    assert out.stdout == "" and out.stderr == "no agent is registered\n"
    assert cli("agents", "--alive").stderr == "no live agent is registered\n"
    assert cli.json("agents") == {"items": []}


# --- the dashboard: /api/status, the terminal view, swarm watch


@pytest.fixture
def client(redis_url: str) -> Iterator[TestClient]:
    app = create_app(AsyncSwarm(redis_url, swarm=SWARM), close_swarm=True)
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        yield client


def test_api_status_lists_the_live_agents_seen_last(
    client: TestClient, swarm: Swarm, clock: FakeClock
) -> None:
    newest = _crowd(swarm, clock)
    status = client.get("/api/status").json()
    ids = [a["id"] for a in status["agents"]]
    assert set(ids) == {*newest, *(f"gone-{n}" for n in range(STALE_SHOWN))}
    assert len(ids) == LIVE_SHOWN + STALE_SHOWN
    # not_shown.agents: every agent left out, live and stale; the totals count them all
    assert status["not_shown"]["agents"] == LIVE - LIVE_SHOWN + STALE - STALE_SHOWN
    assert (status["totals"]["agents"], status["totals"]["alive"]) == (LIVE + STALE, LIVE)
    every = client.get("/api/status?all=1").json()
    assert len(every["agents"]) == LIVE + STALE and every["not_shown"]["agents"] == 0


def test_the_terminal_view_of_a_bounded_snapshot_says_how_many_live_agents_it_left_out(
    redis_url: str, swarm: Swarm, clock: FakeClock
) -> None:
    newest = _crowd(swarm, clock)

    async def read(**bounds: Any) -> Any:
        async with AsyncSwarm(redis_url, swarm=SWARM) as handle:
            return await snapshot(handle, **bounds)

    def drawn(snap: Any, **bounds: Any) -> str:
        out = io.StringIO()
        Console(file=out, width=200, color_system=None).print(render(snap, width=200, **bounds))
        return out.getvalue()

    bounded = asyncio.run(read(settled=10, stale=STALE_SHOWN))
    assert {a.id for a in bounded.agents if a.alive} == set(newest)
    out = drawn(bounded)
    assert sorted(_ids(out)) == sorted([*newest, *(f"gone-{n}" for n in range(STALE_SHOWN))])
    line = stale_not_shown(STALE - STALE_SHOWN, "swarm watch", live=LIVE - LIVE_SHOWN)
    assert line is not None and line in out
    # an unbounded snapshot (swarm watch's), drawn bounded: the same rows, the same line
    whole = asyncio.run(read())
    assert len(whole.agents) == LIVE + STALE
    assert _ids(drawn(whole)) == _ids(out) and line in drawn(whole)
    everything = drawn(whole, settled=None, stale=None)
    assert len(_ids(everything)) == LIVE + STALE and "not shown" not in everything


def test_swarm_watch_lists_the_live_agents_seen_last(
    cli: Cli, swarm: Swarm, clock: FakeClock
) -> None:
    newest = _crowd(swarm, clock, stale=0)
    out = cli("watch", "--once").stdout
    assert sorted(_ids(out)) == newest
    line = stale_not_shown(0, "swarm watch", live=LIVE - LIVE_SHOWN)
    assert line is not None and line in " ".join(out.split())  # (wrapped at 80 columns)
    assert len(_ids(cli("watch", "--once", "--all").stdout)) == LIVE


# --- MCP swarm_status: the context owners that published last


def _publish(swarm: Swarm, clock: FakeClock) -> list[str]:
    """OWNERS owners, each publishing a second after the one before (owner-00 first): the
    ``OWNERS_SHOWN`` that published last."""
    now = clock.now
    owners = [f"owner-{n:02d}" for n in range(OWNERS)]
    for n, owner in enumerate(owners):
        clock.now = now - (OWNERS - n) * 1_000
        swarm.publish_context(owner, f"# {owner}\n", source="test")
    clock.now = now
    return owners[-OWNERS_SHOWN:]


def test_swarm_status_lists_the_context_owners_that_published_last(
    swarm: Swarm, clock: FakeClock
) -> None:
    newest = _publish(swarm, clock)
    hidden = OWNERS - OWNERS_SHOWN

    async def body() -> None:
        async with connect(build_server(swarm, role="worker")) as worker:
            status, _ = await worker("swarm_status")
            assert [c["owner"] for c in status["contexts"]] == newest
            assert status["not_shown"] == {"queues": 0, "passes": 0, "contexts": hidden}
            assert status["more"] == (
                f"not shown: {hidden} context owners that published longer ago "
                "(swarm_status with all=true lists them)"
            )
            result = await worker.raw("swarm_status", all=True)
            every = json.loads(texts(result)[0])
            assert len(every["contexts"]) == OWNERS and "more" not in every
            assert every["not_shown"] == {"queues": 0, "passes": 0, "contexts": 0}

    anyio.run(body)
