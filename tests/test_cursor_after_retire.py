"""A listing's cursor survives the retirement of its own record (``retire_pass`` removes a
settled pass's tasks and findings from their indexes): the next page starts where the record
was, oldest first and newest first, from the scan and from the per-queue sets, every record
left listed once, in order. A cursor of the older form (the id alone) of a removed record
says to start again; a cursor of another listing is still refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from redis_swarm import Swarm, ValidationError
from redis_swarm._ops import tasks as tasks_ops

from ._handles import must

GONE = "P"  # the pass retired mid-listing
KEPT = "Keep"  # a settled pass that stays
Lister = Callable[[str | None, int], Any]  # (cursor, limit) -> Page


def _settle(swarm: Swarm, queue: str, *, dead: bool = False) -> None:
    """Claim the queue's next task and complete it (or dead-letter it)."""
    lease = must(swarm.claim(queue, worker="w"))
    if dead:
        swarm.fail(lease.id, lease.token, "fatal", retry=False)
    else:
        swarm.report(lease.id, lease.token, {"summary": f"done {lease.id}"})


def _interleaved(swarm: Swarm, *, dead: bool = False) -> set[str]:
    """Tasks of GONE and KEPT (settled) and open tasks of no pass, interleaved in the
    index: one post each (scores apart), then batches (one score each: ordered by id).
    Returns the ids of GONE's tasks."""
    gone: set[str] = set()
    for i in range(3):
        gone.add(swarm.post_task("work", f"gone {i}", pass_name=GONE).id)
        _settle(swarm, "work", dead=dead)
        swarm.post_task("work", f"kept {i}", pass_name=KEPT)
        _settle(swarm, "work", dead=dead)
        swarm.post_task("open", f"open {i}")
    for _ in range(2):
        specs = [
            *({"queue": "work", "description": "gone", "pass_name": GONE} for _ in range(3)),
            *({"queue": "work", "description": "kept", "pass_name": KEPT} for _ in range(2)),
            {"queue": "open", "description": "open"},
        ]
        for task in swarm.post_tasks(specs):
            if task.pass_name == GONE:
                gone.add(task.id)
        for _ in range(5):
            _settle(swarm, "work", dead=dead)
    return gone


def _cursors(listing: Lister) -> tuple[list[str], list[str]]:
    """Every id of the listing, a page of one each, and the cursor after each."""
    ids: list[str] = []
    cursors: list[str] = []
    cursor = None
    while True:
        page = listing(cursor, 1)
        ids += [item.id for item in page.items]
        if page.cursor is None:
            return ids, cursors
        cursors.append(page.cursor)
        cursor = page.cursor


def _rest(listing: Lister, cursor: str) -> list[str]:
    """The listing from ``cursor`` to its end, two to a page."""
    ids: list[str] = []
    next_cursor: str | None = cursor
    while next_cursor is not None:
        page = listing(next_cursor, 2)
        ids += [item.id for item in page.items]
        next_cursor = page.cursor
    return ids


def _goes_on_across_retire(swarm: Swarm, listing: Lister, gone: set[str]) -> None:
    """Cursors taken after each record, then GONE retired: each cursor of a removed record
    goes on with the records left after it, once each and in order; its older form (the id
    alone) says to start again."""
    ids, cursors = _cursors(listing)
    assert gone & set(ids[:-1])  # some cursor names a record about to go
    swarm.retire_pass(GONE)
    left = [i for i in ids if i not in gone]
    assert listing(None, 1000).items and [t.id for t in listing(None, 1000).items] == left
    removed = 0
    for at, cursor in enumerate(cursors):
        rest = _rest(listing, cursor)
        assert rest == [i for i in ids[at + 1 :] if i not in gone], (at, cursor)
        record = cursor.lstrip("~").partition("@")[0]
        if record in gone:
            removed += 1
            with pytest.raises(ValidationError, match=r"no longer stored.*start the listing again"):
                listing(cursor.partition("@")[0], 2)
        else:  # an older cursor works while its record is in the index
            assert _rest(listing, cursor.partition("@")[0]) == rest
    assert removed >= 4


@pytest.mark.parametrize("newest_first", [False, True], ids=["oldest", "newest"])
def test_list_tasks_goes_on_from_a_retired_cursor(swarm: Swarm, newest_first: bool) -> None:
    gone = _interleaved(swarm)

    def listing(cursor: str | None, limit: int) -> Any:
        return swarm.list_tasks(cursor=cursor, limit=limit, newest_first=newest_first)

    _goes_on_across_retire(swarm, listing, gone)
    # A cursor of another listing is still refused: an open task (no pass) for a pass's
    # listing, a listing of the other order.
    other = swarm.list_tasks(queue="open", limit=1, newest_first=newest_first).cursor
    assert other is not None
    with pytest.raises(ValidationError, match="does not belong to this listing"):
        swarm.list_tasks(pass_name=KEPT, cursor=other, newest_first=newest_first)
    with pytest.raises(ValidationError, match="does not belong to this listing"):
        swarm.list_tasks(cursor=other, newest_first=not newest_first)


@pytest.mark.parametrize("from_sets", [True, False], ids=["sets", "scan"])
@pytest.mark.parametrize("newest_first", [False, True], ids=["oldest", "newest"])
def test_dead_tasks_go_on_from_a_retired_cursor(
    swarm: Swarm, monkeypatch: pytest.MonkeyPatch, newest_first: bool, from_sets: bool
) -> None:
    """Dead letters are listed from their queues' sets (or the scan when too many): a dead
    task retired under the cursor, the page still starts where it was."""
    if not from_sets:
        monkeypatch.setattr(tasks_ops, "LIVE_READ_MAX", 0)
    gone = _interleaved(swarm, dead=True)

    def listing(cursor: str | None, limit: int) -> Any:
        return swarm.list_tasks(
            status="dead", cursor=cursor, limit=limit, newest_first=newest_first
        )

    _goes_on_across_retire(swarm, listing, gone)


@pytest.mark.parametrize("by_queue", [False, True], ids=["all", "queue"])
def test_findings_go_on_from_a_retired_cursor(swarm: Swarm, by_queue: bool) -> None:
    _interleaved(swarm)
    gone = {f.id for f in swarm.findings(pass_name=GONE, limit=1000).items}
    swarm.post_task("elsewhere", "another pass", pass_name="Other")
    _settle(swarm, "elsewhere")

    def listing(cursor: str | None, limit: int) -> Any:
        return swarm.findings(queue="work" if by_queue else None, cursor=cursor, limit=limit)

    _goes_on_across_retire(swarm, listing, gone)
    other = swarm.findings(pass_name="Other", limit=1).items[0].id
    kept = swarm.findings(pass_name=KEPT, limit=1).cursor
    assert kept is not None
    foreign = other + "@" + kept.partition("@")[2]  # a stored finding of another listing
    for cursor in (foreign, other):
        with pytest.raises(ValidationError, match="does not belong to this listing"):
            swarm.findings(pass_name=KEPT, cursor=cursor)
