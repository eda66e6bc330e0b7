"""``swarm watch`` redraws every second or so: its agents table lists every live agent and
only the few stale ones seen last, with a line counting the rest (``swarm agents --stale``
lists them; ``watch --all`` shows them all); a swarm with 600 stale agents drew 600 rows."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from redis_swarm import Swarm
from redis_swarm._codec import now_ms
from redis_swarm._keys import Keys
from redis_swarm._models import Agent
from redis_swarm._printable import STALE_SHOWN, bounded_agents, stale_not_shown

from ._cli import Cli
from ._raw import raw_client

STALE = STALE_SHOWN + 3
ALIVE = 2


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def _agents(swarm: Swarm, redis_url: str) -> None:
    """gone-1 .. gone-8, silent for 101 s .. 108 s (gone-1 seen last), and live-1, live-2."""
    for n in range(1, STALE + 1):
        swarm.register("worker", name=f"gone-{n}")
    with raw_client(redis_url) as r:
        now = now_ms()
        r.zadd(
            Keys("test").presence,
            {f"gone-{n}": now - (100 + n) * 1000 for n in range(1, STALE + 1)},
        )
    for n in range(1, ALIVE + 1):
        swarm.register("worker", name=f"live-{n}")


def _rows(out: str) -> list[str]:
    cells = (line.split()[0] for line in out.splitlines() if line.split())
    return [c for c in cells if c.startswith(("gone-", "live-"))]


def test_bounded_agents_keeps_the_live_and_the_stale_seen_last() -> None:
    agents = [Agent(id=f"a{n}", role="w", last_seen=n, alive=n % 3 == 0) for n in range(1, 11)]
    shown, hidden = bounded_agents(agents, 2)
    # alive: a3, a6, a9; the stale seen last: a10, a8 (in the roster's order)
    assert [a.id for a in shown] == ["a3", "a6", "a8", "a9", "a10"] and hidden == 5
    assert bounded_agents(agents, None) == (agents, 0)
    assert stale_not_shown(0, "swarm watch") is None
    assert stale_not_shown(1_200, "swarm watch") == (
        "not shown: 1,200 stale agents seen longer ago (swarm agents --stale lists them, "
        "swarm watch --all shows them here)"
    )


def test_watch_lists_the_live_agents_and_the_stale_seen_last(
    cli: Cli, swarm: Swarm, redis_url: str
) -> None:
    _agents(swarm, redis_url)
    out = cli("watch", "--once").stdout
    assert sorted(_rows(out)) == sorted(
        [f"gone-{n}" for n in range(1, STALE_SHOWN + 1)] + ["live-1", "live-2"]
    )
    line = stale_not_shown(STALE - STALE_SHOWN, "swarm watch")
    assert line is not None and line in " ".join(out.split())  # (wrapped at 80 columns)
    # --all: every agent, no line; --json (the snapshot) holds every one either way
    everything = cli("watch", "--once", "--all").stdout
    assert len(_rows(everything)) == STALE + ALIVE and "stale agents" not in everything
    snap = json.loads(cli("--json", "watch", "--once").stdout)
    assert len(snap["agents"]) == STALE + ALIVE


def test_watch_hides_no_agent_when_few_are_stale(cli: Cli, swarm: Swarm) -> None:
    for n in range(1, 4):
        swarm.register("worker", name=f"live-{n}")
    out = cli("watch", "--once").stdout
    assert _rows(out) == ["live-1", "live-2", "live-3"] and "not shown" not in out
