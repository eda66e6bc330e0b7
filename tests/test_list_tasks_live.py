"""A listing filtered by a live status or a queue answers in proportion to what matches, not to
the history: a user tour of a swarm of ~105,000 settled tasks waited 3.6 s for
``swarm task list --status claimed`` to say nothing matched among what its calls looked at
(and give a cursor), while the counters knew none was claimed. The counters are read first:
none match, an empty last page; few in a status with a per-queue set (pending, delayed,
claimed, dead), the page is made from those sets, in posting order, with the scan's cursor
meaning. Each history here is more than one scanning call examines (5,000), before the
tasks listed, so that the scan would answer a short page and a cursor."""

from __future__ import annotations

import pytest

from redis_swarm import Swarm, TaskSpec, ValidationError
from redis_swarm._ops import tasks as tasks_ops

HISTORY = 5_100  # delayed tasks posted first: what a scan reads before the live ones
PASS = "live-pass"


def _history(swarm: Swarm) -> None:
    for start in range(0, HISTORY, 1000):
        size = min(1000, HISTORY - start)
        specs = [
            TaskSpec(queue="old", description=f"o{start + i}", delay_s=3600) for i in range(size)
        ]
        swarm.post_tasks(specs)


def _ids(page: object) -> list[str]:
    return [t.id for t in page.items]  # type: ignore[attr-defined]


def _all(swarm: Swarm, limit: int = 100, **filters: object) -> list[str]:
    """Every id of a listing, paging to its end."""
    out: list[str] = []
    cursor = None
    while True:
        page = swarm.list_tasks(cursor=cursor, limit=limit, **filters)  # type: ignore[arg-type]
        out += _ids(page)
        cursor = page.cursor
        if cursor is None:
            return out


def _scanned(swarm: Swarm, monkeypatch: pytest.MonkeyPatch, **filters: object) -> list[str]:
    """The same listing made by the scan alone (the order the index gives)."""
    with monkeypatch.context() as patch:
        patch.setattr(tasks_ops, "LIVE_READ_MAX", 0)
        return _all(swarm, limit=1000, **filters)


def test_few_live_tasks_among_a_long_history_in_one_page(
    swarm: Swarm, monkeypatch: pytest.MonkeyPatch
) -> None:
    _history(swarm)
    work = swarm.post_tasks(
        [
            TaskSpec(queue="work", description=f"w{i}", data={"n": i}, pass_name=PASS)
            for i in range(6)
        ]
    )
    swarm.post_task("other", "elsewhere")
    claimed = [swarm.claim("work", worker="w-1") for _ in range(3)]
    other = swarm.claim("other", worker="w-2")
    assert other is not None and all(claimed)
    swarm.report(claimed[2].id, claimed[2].token, {"summary": "done"})  # type: ignore[union-attr]
    doomed = swarm.post_task("doom", "fails", max_attempts=1)
    held = swarm.claim("doom", worker="w-1")
    assert held is not None
    swarm.fail(held.id, held.token, "fatal", retry=False)
    cases: list[dict[str, object]] = [
        {"status": "claimed"},
        {"status": "claimed", "queue": "work"},
        {"status": "claimed", "queue": "work", "pass_name": PASS},
        {"status": "pending"},
        {"status": "pending", "pass_name": PASS},
        {"status": "dead"},
        {"status": "dead", "queue": "doom"},
    ]
    for filters in cases:
        expected = _scanned(swarm, monkeypatch, **filters)
        assert expected, filters
        page = swarm.list_tasks(**filters)  # type: ignore[arg-type]
        assert _ids(page) == expected and page.cursor is None, filters
        newest = swarm.list_tasks(newest_first=True, **filters)  # type: ignore[arg-type]
        assert _ids(newest) == expected[::-1] and newest.cursor is None, filters
    page = swarm.list_tasks(status="claimed", queue="work")
    assert {t.status for t in page.items} == {"claimed"} and len(page.items) == 2
    assert all(t.data is None for t in page.items)
    with_data = swarm.list_tasks(status="claimed", queue="work", with_data=True)
    by_id = {t.id: t for t in work}
    assert [t.data for t in with_data.items] == [by_id[i].data for i in _ids(page)]
    assert [t.id for t in swarm.list_tasks(status="dead").items] == [doomed.id]


def test_nothing_matches_an_empty_last_page_at_once(swarm: Swarm) -> None:
    _history(swarm)
    swarm.post_task("work", "one")
    for filters in (
        {"status": "claimed"},
        {"status": "completed"},  # no set, but none completed
        {"status": "cancelled", "queue": "work"},
        {"queue": "no-such-queue"},
        {"queue": "old", "status": "pending"},
        {"status": "pending", "pass_name": "no-such-pass"},
    ):
        page = swarm.list_tasks(**filters)  # type: ignore[arg-type]
        assert page.items == () and page.cursor is None, filters


def test_paging_a_live_set_larger_than_a_page(
    swarm: Swarm, monkeypatch: pytest.MonkeyPatch
) -> None:
    _history(swarm)
    for _ in range(3):  # three posting times, each batch's tasks ordered by id in the index
        swarm.post_tasks([TaskSpec(queue="work", description="w") for _ in range(90)])
    expected = _scanned(swarm, monkeypatch, status="pending")
    assert len(expected) == 270
    pages = []
    cursor = None
    while True:
        page = swarm.list_tasks(status="pending", cursor=cursor, limit=100)
        pages.append(_ids(page))
        cursor = page.cursor
        if cursor is None:
            break
    assert [len(p) for p in pages] == [100, 100, 70]
    assert [i for p in pages for i in p] == expected
    assert _all(swarm, limit=100, status="pending", newest_first=True) == expected[::-1]
    assert _all(swarm, limit=7, queue="work", status="pending") == expected


def test_a_cursor_means_the_same_to_the_scan_and_to_the_sets(
    swarm: Swarm, monkeypatch: pytest.MonkeyPatch
) -> None:
    swarm.post_tasks([TaskSpec(queue="work", description="w") for _ in range(150)])
    _history(swarm)
    swarm.post_tasks([TaskSpec(queue="work", description="late") for _ in range(20)])
    expected = _scanned(swarm, monkeypatch, status="pending")
    assert len(expected) == 170
    first = swarm.list_tasks(status="pending", limit=100)  # from the sets
    assert _ids(first) == expected[:100] and first.cursor
    with monkeypatch.context() as patch:  # the scan goes on from the sets' cursor
        patch.setattr(tasks_ops, "LIVE_READ_MAX", 0)
        scanned = swarm.list_tasks(status="pending", cursor=first.cursor, limit=100)
        assert _ids(scanned) == expected[100:150] and scanned.cursor  # its 5,000 examined
    rest = swarm.list_tasks(status="pending", cursor=scanned.cursor, limit=100)  # the sets
    assert _ids(rest) == expected[150:] and rest.cursor is None
    with pytest.raises(ValidationError, match="newest first"):
        swarm.list_tasks(status="pending", cursor=first.cursor, newest_first=True)
    with pytest.raises(ValidationError, match="does not belong"):
        swarm.list_tasks(status="pending", cursor="t-no-such-task")
