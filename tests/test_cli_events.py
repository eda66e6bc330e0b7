"""``swarm events``: --limit's range in the option itself (the core's bound), and a listing
cut at --limit that says how to read on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from redis_swarm import Swarm
from redis_swarm._validate import MAX_EVENTS

from ._cli import Cli


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def test_limit_and_last_take_the_core_s_range(cli: Cli) -> None:
    shown = " ".join(cli("events", "--help").stdout.split())
    assert f"1<=x<={MAX_EVENTS}" in shown
    for option in ("--limit", "--last"):
        out = cli("events", option, str(MAX_EVENTS + 1), expect=2)  # a usage error, not 1
        assert option in out.stderr and f"1<=x<={MAX_EVENTS}" in out.stderr
        assert cli.json("events", option, str(MAX_EVENTS))["items"] == []


def test_a_listing_cut_at_limit_says_how_to_read_on(cli: Cli, swarm: Swarm) -> None:
    for i in range(5):
        swarm.post_task("q", f"t{i}")
    cut = cli("events", "--limit", "3")
    lines = cut.stdout.splitlines()
    assert len(lines) == 3
    last_id = lines[-1].split()[1]
    assert f"--since {last_id}" in cut.stderr and "--last N" in cut.stderr
    rest = cli("events", "--since", last_id, "--limit", "2")
    assert len(rest.stdout.splitlines()) == 2
    assert rest.stderr == ""  # exactly the newest events: nothing more to read
    assert cli("events", "--limit", "5").stderr == ""
    assert cli("events", "--last", "3").stderr == ""  # the newest: none after them
    # JSON stays one document on stdout, with nothing on stderr
    listed = cli("--json", "events", "--limit", "3")
    assert len(listed.json()["items"]) == 3 and listed.stderr == ""
    # a type filter reads on by the same filter: no more task.claimed after the first
    swarm.claim("q", worker="w")
    only = cli("events", "--type", "task.claimed", "--limit", "1")
    assert len(only.stdout.splitlines()) == 1 and only.stderr == ""
