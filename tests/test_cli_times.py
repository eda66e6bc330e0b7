"""Every time option of ``swarm`` (``findings --since``, ``events --since``) takes the same
forms, parsed in one place, against a real server: epoch ms, a duration back from now,
ISO-8601 with a zone, and ISO-8601 without one (this machine's local time)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import Swarm
from redis_swarm._codec import now_ms

from ._cli import Cli
from ._clock import FakeClock
from ._handles import must

SIX_AM = 1_796_364_000_000  # 2026-12-04T06:00:00Z
DOCS = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


@pytest.fixture
def india(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's local time set to UTC+05:30 (a POSIX TZ: no time zone database
    needed), so that a time without a zone read as UTC would be five and a half hours off."""
    monkeypatch.setenv("TZ", "IST-5:30")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _reported_at(redis_url: str, *stamps: int) -> list[str]:
    """One finding reported at each of ``stamps`` (epoch ms, on a fake clock): their ids."""
    clock = FakeClock()
    ids = []
    with Swarm(redis_url, swarm="test", clock=clock) as swarm:
        for at in stamps:
            clock.now = at
            swarm.post_task("q", "d")
            t = must(swarm.claim("q", worker="w"))
            ids.append(swarm.report(t.id, t.token, {"summary": f"at {at}"}).id)
    return ids


def _since(cli: Cli, value: str) -> list[str]:
    return [f["id"] for f in cli.json("findings", "--since", value, "--all")["items"]]


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_findings_since_an_instant_as_epoch_ms_or_iso_with_a_zone(cli: Cli, redis_url: str) -> None:
    before, at = _reported_at(redis_url, SIX_AM - 1, SIX_AM)
    for value in (
        str(SIX_AM),
        "2026-12-04T06:00:00Z",
        "2026-12-04T06:00Z",
        "2026-12-04t06:00:00.000z",
        "2026-12-04 06:00:00.000000+00:00",
        "2026-12-04T08:00+02:00",
        "2026-12-04T01:00:00-0500",
        " 2026-12-04T06:00:00Z ",
    ):
        assert _since(cli, value) == [at], value
    assert _since(cli, "2026-12-04T05:59:59.999Z") == [before, at]
    assert _since(cli, "2026-12-04T05:59:59.9999Z") == [before, at]  # (in whole ms)
    assert _since(cli, "2026-12-04T06:00:00.001Z") == []
    assert _since(cli, str(SIX_AM - 1)) == [before, at]
    assert _since(cli, "1969-07-20T20:17Z") == [before, at]  # before 1970: from the start


def test_a_time_without_a_zone_is_local_time(cli: Cli, redis_url: str, india: None) -> None:
    before, at = _reported_at(redis_url, SIX_AM - 1, SIX_AM)
    assert _since(cli, "2026-12-04T11:30") == [at]  # 06:00Z in UTC+05:30
    assert _since(cli, "2026-12-04 11:30:00") == [at]
    assert _since(cli, "2026-12-04T11:29:59.999") == [before, at]
    assert _since(cli, "2026-12-04T06:00") == [before, at]  # read as UTC it would be [at]
    assert _since(cli, "2026-12-04") == [before, at]  # local midnight: 12-03T18:30Z
    for command in (["findings"], ["events"]):
        assert "local time" in _flat(cli(*command, "--help").stdout)


def test_findings_since_a_duration_back_from_now(cli: Cli, redis_url: str) -> None:
    hour = 3_600_000
    older, recent = _reported_at(redis_url, now_ms() - 2 * hour, now_ms() - hour // 2)
    assert _since(cli, "1h") == [recent]
    assert _since(cli, "45m") == [recent]
    assert _since(cli, "1.5h") == [recent]
    assert _since(cli, "3h") == [older, recent]
    assert _since(cli, "1d") == [older, recent]
    assert _since(cli, "90s") == []
    assert _since(cli, "99999999d") == [older, recent]  # before 1970: from the start


def test_events_since_takes_the_same_forms_and_event_ids(cli: Cli, swarm: Swarm) -> None:
    swarm.post_task("q", "a")
    swarm.post_task("q", "b")
    items = cli.json("events")["items"]
    assert len(items) == 2
    for value in ("1d", "2000-01-01", "2000-01-01T00:00:00Z", str(items[0]["at"])):
        assert cli.json("events", "--since", value)["items"] == items, value
    for value in ("2999-01-01T00:00:00Z", "2999-01-01", "253402300799999"):
        # (no event is that new: refused, where a listing would be empty and a follow silent)
        out = cli("events", "--since", value, expect=2)
        assert "is in the future" in out.stderr, (value, out)
    assert cli.json("events", "--since", items[0]["id"])["items"] == items[1:]


@pytest.mark.parametrize(
    "value",
    [
        "yesterday", "10 m", "10w", "-5m", "10M", "1e3", "", "12:00", "2026-12-4",
        "\u0663", "99999999999999999", "2026-12-04T06", "2026-12-04Z", "2026-12-04T06:00+5",
        "2026-12-04T06:00:00.1234567Z",
    ],
)  # fmt: skip
def test_a_value_that_is_not_a_time_is_a_usage_error_naming_the_forms(cli: Cli, value: str) -> None:
    for command in ("findings", "events"):
        out = cli(command, "--since", value, expect=2)
        message = _flat(out.stderr)
        assert "--since" in message and repr(value) in message, out
        for form in ("epoch ms", "(90s, 10m, 2h, 1d)", "2026-12-04T06:00:00Z", "local time"):
            assert form in message, (form, out)
    out = cli("events", "--since", "yesterday", expect=2)
    assert "event id (1700000000000-0)" in out.stderr


@pytest.mark.parametrize(
    "value",
    [
        "2026-13-01",
        "2026-02-30T06:00Z",
        "2026-12-04T25:00",
        "2026-12-04T06:61",
        "2026-12-04T06:00+24:00",
    ],
)
def test_a_date_that_does_not_exist_is_a_usage_error(cli: Cli, value: str) -> None:
    out = cli("findings", "--since", value, expect=2)
    assert "names no real date and time" in out.stderr and "epoch ms" in out.stderr


def test_every_example_of_the_documented_forms_is_taken(cli: Cli) -> None:
    section = DOCS.read_text(encoding="utf-8").split("## Times", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|") for line in section.splitlines() if line.startswith("| ")]
    examples = [ex for row in rows[1:] for ex in re.findall(r"`([^`]+)`", row[2])]
    assert len(examples) >= 9 and "2026-12-04T06:00:00Z" in examples
    for value in examples:
        cli("findings", "--since", value)


def test_epoch_seconds_are_refused_not_read_as_1970(cli: Cli) -> None:
    """``date +%s`` prints seconds: read as ms they would be January 1970 and match all."""
    for command in ("findings", "events"):
        out = cli(command, "--since", "1796364000", expect=2)
        assert "looks like epoch seconds" in out.stderr and "1796364000000" in out.stderr
        assert out.stderr.count("give") == 1, out.stderr  # (the forms are offered once)
    cli("findings", "--since", "0")  # (the start: a small number stays ms)
