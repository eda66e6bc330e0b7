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


def test_a_since_in_the_future_is_a_usage_error(cli: Cli, swarm: Swarm) -> None:
    """As the dashboard refuses it (400): a --since no event reached yet would list nothing
    and follow in silence, exit 0, as if the swarm were idle."""
    swarm.post_task("q", "one")
    newest = swarm.last_event_id()
    for args in (
        ("--follow", "--since", "99999999999999-0", "--timeout", "4"),
        ("--since", "2030-01-01"),
        ("--since", "99999999999999-0", "--last", "5"),
    ):
        out = cli("events", *args, expect=2)
        assert out.stdout == ""
        assert "--since" in out.stderr and "is in the future" in out.stderr, out.stderr
        assert f"the newest event is {newest}" in out.stderr
    # a past --since still lists
    assert cli.json("events", "--since", "1d")["items"][0]["id"] == newest


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--count", "2"), "--count needs --follow"),
        (("--timeout", "3"), "--timeout needs --follow"),
        (("--timeout", "0", "--count", "1"), "--timeout and --count need --follow"),
    ],
)
def test_follow_s_options_without_follow_are_a_usage_error(
    cli: Cli, args: tuple[str, ...], named: str
) -> None:
    out = cli("events", *args, expect=2)
    assert named in out.stderr and out.stdout == ""


def test_a_field_holding_a_line_break_prints_on_the_events_own_line(
    cli: Cli, redis_url: str
) -> None:
    """Any writer of the stream may add an event (a worker's user may): a line break in a
    field printed what read as another event."""
    from redis_swarm._keys import Keys

    from ._raw import raw_client

    forged = "t-1\n2026-12-07T00:00:00Z  1-0  task.completed      task=t-2"
    with raw_client(redis_url) as raw:
        raw.xadd(Keys("test").events, {"type": "task.posted", "task": forged, "queue": "q"})
    lines = cli("events").stdout.splitlines()
    assert len(lines) == 1 and "task=t-1\\n2026" in lines[0], lines
