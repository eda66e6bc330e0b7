"""Broadcasts trimmed before their reader read them are said as every other notice of the
core is (``Notice``, as a claim's ``TaskDeadLettered``): a ``BroadcastsTrimmed`` warning at
the caller's line (it was a bare UserWarning pointing into redis-swarm's own driver), whose
error (a warnings filter) gives back what the read took instead of leaving it taken unseen;
``Inbox.trimmed`` keeps the words, and ``swarm msg inbox`` says them once, as a
``warning:`` line (it said Python's warning, with a file and line of redis-swarm's)."""

from __future__ import annotations

import warnings

import pytest

from redis_swarm import BroadcastsTrimmed, Swarm
from redis_swarm._keys import Keys

from ._cli import Cli
from ._raw import raw_client

KEYS = Keys("test")


def _behind(swarm: Swarm, redis_url: str) -> list[str]:
    """``lag`` behind on broadcasts: of b0..b4, those before b3 trimmed unread."""
    swarm.register("worker", name="lag")
    swarm.register("worker", name="bc")
    sent = [swarm.broadcast(f"b{i}", sender="bc") for i in range(5)]
    with raw_client(redis_url) as r:  # (as message_send's MAXLEN trims the oldest)
        r.xtrim(KEYS.broadcast, minid=sent[3].seq, approximate=False)
    return [m.seq for m in sent]


def test_trimmed_broadcasts_are_a_notice_said_at_the_callers_line(
    swarm: Swarm, redis_url: str
) -> None:
    seqs = _behind(swarm, redis_url)
    with pytest.warns(BroadcastsTrimmed) as said:
        got = swarm.inbox("lag")
    [warning] = said.list
    assert str(warning.message) == got.trimmed and seqs[2] in str(warning.message)
    assert [m.body for m in got] == ["b3", "b4"]


def test_the_notice_is_said_at_the_callers_line(redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        _behind(swarm, redis_url)
        with pytest.warns(BroadcastsTrimmed) as said:
            swarm.inbox("lag", ack=False)
    [warning] = said.list
    assert warning.filename == __file__  # (not redis-swarm's driver, as it was)


def test_a_notice_made_an_error_gives_back_what_the_read_took(swarm: Swarm, redis_url: str) -> None:
    _behind(swarm, redis_url)
    with warnings.catch_warnings():
        warnings.simplefilter("error", BroadcastsTrimmed)
        with pytest.raises(BroadcastsTrimmed, match=r"lag had not read, through .* were trimmed"):
            swarm.inbox("lag")
    with pytest.warns(BroadcastsTrimmed):  # (the gap is still there: nothing was taken)
        again = swarm.inbox("lag")
    assert [m.body for m in again] == ["b3", "b4"]


@pytest.mark.parametrize("mode", [(), ("--peek",), ("--json",)])
def test_swarm_msg_inbox_says_it_once_as_a_warning_line(
    cli: Cli, redis_url: str, mode: tuple[str, ...]
) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        seqs = _behind(swarm, redis_url)
    out = cli("msg", "inbox", "lag", *mode)
    lines = [line for line in out.stderr.splitlines() if "trimmed" in line]
    assert len(lines) == 1 and lines[0].startswith("warning: broadcasts lag had not read"), out
    assert seqs[2] in lines[0] and "UserWarning" not in out.stderr
    assert "b3" in out.stdout and "b4" in out.stdout
