"""A swarm run daily for a long time: `swarm status` and `swarm watch` list every queue and
pass with open work and only the last few settled ones, in natural order (day-2 before
day-10), with a line counting the rest and naming the view's own --all (`swarm status --all`,
`swarm watch --all`), which lists them all; `--json` keeps every one."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from redis_swarm import Swarm
from redis_swarm._printable import SETTLED_SHOWN, bounded, natural_key, not_shown

from ._cli import Cli
from ._handles import must

SETTLED_DAYS = 14  # more than SETTLED_SHOWN: some settled days are left out
OPEN_DAYS = (15, 16)  # today and yesterday: work still open
DAYS = SETTLED_DAYS + len(OPEN_DAYS)


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def _a_year_of_days(swarm: Swarm) -> None:
    """Queue day-N and pass day-N.run for N in 1..16, one task each; days 1 to 14 done,
    day 15 pending, day 16 claimed."""
    swarm.post_tasks(
        [{"queue": f"day-{n}", "description": "t", "pass_name": f"day-{n}.run"}
         for n in range(1, DAYS + 1)]
    )  # fmt: skip
    for n in range(1, SETTLED_DAYS + 1):
        task = must(swarm.claim(f"day-{n}", worker="w"))
        swarm.report(task.id, task.token, {"summary": "ok"})
    must(swarm.claim(f"day-{OPEN_DAYS[-1]}", worker="w"))


def _rows(text: str, prefix: str) -> list[str]:
    """The first cell of each table row naming a queue or pass (``day-N``, ``day-N.run``)."""
    cells = (line.split()[0] for line in text.splitlines() if line.split())
    return [c for c in cells if c.startswith("day-") and c.endswith(prefix)]


def _queues(text: str) -> list[str]:
    return [c for c in _rows(text, "") if "." not in c]


def _passes(text: str) -> list[str]:
    return _rows(text, ".run")


def test_natural_key_counts_as_people_do() -> None:
    names = ["day-10", "day-2", "Day-3", "day-1", "day-100", "day-02", "day", "run-9.b", "run-10.a"]
    assert sorted(names, key=natural_key) == [
        "day", "day-1", "day-02", "day-2", "Day-3", "day-10", "day-100", "run-9.b", "run-10.a",
    ]  # fmt: skip


def test_bounded_keeps_open_work_and_the_last_settled() -> None:
    done, busy = {"completed": 1, "pending": 0}, {"completed": 0, "delayed": 1}
    items = [(f"p{n}", busy if n in (1, 5) else done) for n in range(12, 0, -1)]
    shown, hidden = bounded(items, lambda i: i[0], lambda i: i[1], 3)
    assert [name for name, _ in shown] == ["p1", "p5", "p10", "p11", "p12"] and hidden == 7
    everything, none_hidden = bounded(items, lambda i: i[0], lambda i: i[1], None)
    assert len(everything) == 12 and none_hidden == 0
    assert [n for n, _ in bounded(items, lambda i: i[0], lambda i: i[1], 0)[0]] == ["p1", "p5"]
    assert not_shown(0, 0, "swarm status") is None
    assert not_shown(1, 1_206, "swarm status") == (
        "not shown: 1 settled queue and 1,206 settled passes (swarm status --all lists them)"
    )
    assert not_shown(0, 2, "swarm watch") == (
        "not shown: 2 settled passes (swarm watch --all lists them)"
    )


def test_status_lists_open_work_and_the_last_settled_in_natural_order(
    cli: Cli, swarm: Swarm
) -> None:
    _a_year_of_days(swarm)
    out = cli("status").stdout
    # the last SETTLED_SHOWN settled days (5 to 14) and the open ones, day-5 before day-10
    expected = [f"day-{n}" for n in range(DAYS - len(OPEN_DAYS) - SETTLED_SHOWN + 1, DAYS + 1)]
    assert _queues(out) == expected
    assert _passes(out) == [f"{name}.run" for name in expected]
    hidden = SETTLED_DAYS - SETTLED_SHOWN
    line = (
        f"not shown: {hidden} settled queues and {hidden} settled passes "
        "(swarm status --all lists them)"
    )
    assert line in out.splitlines()
    # the (all) row still counts every queue, the hidden ones too
    total = next(x for x in out.splitlines() if x.strip().startswith("(all)"))
    assert total.split()[1:5] == ["1", "0", "1", str(SETTLED_DAYS)]


def test_status_all_lists_every_queue_and_pass(cli: Cli, swarm: Swarm) -> None:
    _a_year_of_days(swarm)
    out = cli("status", "--all").stdout
    expected = [f"day-{n}" for n in range(1, DAYS + 1)]
    assert _queues(out) == expected
    assert _passes(out) == [f"{name}.run" for name in expected]
    assert "not shown" not in out


def test_status_of_a_few_passes_hides_nothing(cli: Cli, swarm: Swarm) -> None:
    for n in (10, 2):
        swarm.post_task(f"day-{n}", "t", pass_name=f"day-{n}.run")
        task = must(swarm.claim(f"day-{n}", worker="w"))
        swarm.report(task.id, task.token, {"summary": "ok"})
    out = cli("status").stdout
    assert _queues(out) == ["day-2", "day-10"] and "not shown" not in out


def test_status_json_keeps_every_queue_and_pass(cli: Cli, swarm: Swarm) -> None:
    _a_year_of_days(swarm)
    report = cli.json("status")
    assert set(report) == {
        "swarm", "url", "last_event_id", "queues", "totals", "passes", "agents", "roster",
        "contexts",
    }  # fmt: skip
    assert set(report["queues"]) == {f"day-{n}" for n in range(1, DAYS + 1)}
    assert {p["name"] for p in report["passes"]} == {f"day-{n}.run" for n in range(1, DAYS + 1)}
    assert set(report["passes"][0]) == {"name", "counts", "total", "settled", "fraction"}
    assert report == cli.json("status", "--all")  # --all changes the human view only


def test_watch_lists_open_work_and_the_last_settled_in_natural_order(
    cli: Cli, swarm: Swarm
) -> None:
    _a_year_of_days(swarm)
    out = cli("watch", "--once").stdout  # what the live view draws, without colour
    expected = [f"day-{n}" for n in range(DAYS - len(OPEN_DAYS) - SETTLED_SHOWN + 1, DAYS + 1)]
    assert _queues(out) == expected
    assert _passes(out) == [f"{name}.run" for name in expected]  # (80 columns: one above the other)
    hidden = SETTLED_DAYS - SETTLED_SHOWN
    line = f"not shown: {hidden} settled queues and {hidden} settled passes"
    assert f"{line} (swarm watch --all lists them)" in " ".join(out.split())  # its own --all
    # the snapshot (the page, /api/status, --json) keeps every one, in natural order
    snap = json.loads(cli("--json", "watch", "--once").stdout)
    assert list(snap["queues"]) == [f"day-{n}" for n in range(1, DAYS + 1)]
    assert [p["name"] for p in snap["passes"]] == [f"day-{n}.run" for n in range(1, DAYS + 1)]


def test_watch_all_lists_every_queue_and_pass(cli: Cli, swarm: Swarm) -> None:
    _a_year_of_days(swarm)
    out = cli("watch", "--once", "--all").stdout
    expected = [f"day-{n}" for n in range(1, DAYS + 1)]
    assert _queues(out) == expected
    assert _passes(out) == [f"{name}.run" for name in expected]
    assert "not shown" not in out
