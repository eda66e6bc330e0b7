"""ListTasks lists the newest task first, as A2A clients expect (and the SDK's task stores,
and this project's Redis ones, list): it listed the oldest first, the only order of the
core's listing. The core's listing (``list_tasks``, script ``index_page``) now also lists
newest first, its pages going on in that order, and refuses a cursor of the other order.
And ListTasks' ``totalSize`` with a ``contextId`` counts what the listing can return: it
counted the pass's tasks of every queue, those this server does not expose too."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from redis_swarm import Swarm, ValidationError
from redis_swarm._ops._work import page, task_from

from ._a2a import OTHER, QUEUE, A2AServer

# --- the core's listing


def _all(swarm: Swarm, limit: int, **filters: Any) -> tuple[list[str], list[str]]:
    """Every task id of a listing, page by page (``limit`` a page); and its cursors."""
    ids: list[str] = []
    cursors: list[str] = []
    cursor = None
    while True:
        listed = swarm.list_tasks(cursor=cursor, limit=limit, **filters)
        ids += [t.id for t in listed.items]
        if listed.cursor is None:
            return ids, cursors
        cursor = listed.cursor
        cursors.append(cursor)


def test_list_tasks_newest_first_is_the_posting_order_reversed(swarm: Swarm) -> None:
    for n in range(7):
        swarm.post_task("q.a" if n % 2 else "q.b", f"task {n}", pass_name="p1")
    oldest_first, old_cursors = _all(swarm, 2)
    assert len(oldest_first) == 7
    assert not any(c.startswith("~") for c in old_cursors)  # (as before: a bare id)
    newest_first, _ = _all(swarm, 2, newest_first=True)
    assert newest_first == oldest_first[::-1]
    # Filtered, on a pass's index, with data: the same order, reversed.
    in_a, _ = _all(swarm, 1, queue="q.a", pass_name="p1")
    assert len(in_a) == 3
    assert _all(swarm, 1, queue="q.a", pass_name="p1", newest_first=True)[0] == in_a[::-1]
    first = swarm.list_tasks(limit=3, with_data=True, newest_first=True)
    assert [t.id for t in first.items] == newest_first[:3]
    # A task posted while a listing newest first pages on is not in it (it is newer than
    # its first page): the next pages go on from where it was.
    swarm.post_task("q.a", "a latecomer")
    rest = swarm.list_tasks(cursor=first.cursor, limit=100, newest_first=True)
    assert [t.id for t in rest.items] == newest_first[3:] and rest.cursor is None


def test_a_cursor_of_one_order_is_refused_by_the_other(swarm: Swarm) -> None:
    for n in range(3):
        swarm.post_task("q.a", f"task {n}")
    oldest = swarm.list_tasks(limit=1).cursor
    newest = swarm.list_tasks(limit=1, newest_first=True).cursor
    assert oldest is not None and newest is not None
    with pytest.raises(ValidationError) as refused:
        swarm.list_tasks(cursor=oldest, limit=1, newest_first=True)
    said = str(refused.value)
    assert said.startswith(f"cursor {oldest} does not belong to this listing"), said
    assert "(it lists oldest first; this listing is newest first)" in said
    with pytest.raises(ValidationError, match=r"it lists newest first; this listing is oldest"):
        swarm.list_tasks(cursor=newest, limit=1)
    # A cursor no listing gave: refused as before, whatever its mark.
    for made_up in ("t-nosuchtask", "~t-nosuchtask", "~"):
        for newest_first in (False, True):
            with pytest.raises(ValidationError) as refused:
                swarm.list_tasks(cursor=made_up, limit=1, newest_first=newest_first)
            assert "first" not in str(refused.value)


def test_newest_first_since_is_where_the_listing_ends(redis_url: str) -> None:
    """``since`` (what ``task_costs`` gives ``page``): oldest first it is where a listing
    starts; newest first, where it ends, on every page."""
    with Swarm(redis_url, swarm="test") as swarm:
        for n in range(6):
            swarm.post_task("q.a", f"task {n}")
        tasks = list(swarm.list_tasks(limit=100, newest_first=True))
        since = tasks[3].created_at
        wanted = [t.id for t in tasks if t.created_at >= since]
        keys = (swarm.keys.task_index, swarm.keys.tasks)
        got: list[str] = []
        cursor = None
        while True:
            listed = swarm._run(
                page(swarm._ctx, keys, cursor, 1, since, False, [], task_from, newest_first=True)
            )
            got += [t.id for t in listed.items]
            if listed.cursor is None:
                break
            cursor = listed.cursor
        assert got == wanted
        oldest = swarm._run(page(swarm._ctx, keys, None, 100, since, False, [], task_from))
        assert [t.id for t in oldest.items] == wanted[::-1]


# --- ListTasks of swarm a2a (the real server, both bindings)


def _rpc(a2a: A2AServer, method: str, params: dict[str, Any]) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    sent = {**a2a.headers, "A2A-Version": "1.0"}
    return httpx.post(a2a.url + "/", json=body, headers=sent, timeout=20).json()


def _list(a2a: A2AServer, binding: str, **params: Any) -> Any:
    if binding == "jsonrpc":
        answer = _rpc(a2a, "ListTasks", params)
        assert "result" in answer, answer
        return answer["result"]
    headers = {**a2a.headers, "A2A-Version": "1.0"}
    answer = httpx.get(f"{a2a.url}/tasks", params=params, headers=headers, timeout=20)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _send(a2a: A2AServer, context: str, skill: str = QUEUE) -> str:
    message = {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "contextId": context,
               "parts": [{"text": "look it up"}], "metadata": {"skill": skill}}  # fmt: skip
    params = {"message": message, "configuration": {"returnImmediately": True}}
    return str(_rpc(a2a, "SendMessage", params)["result"]["task"]["id"])


@pytest.mark.parametrize("binding", ["jsonrpc", "rest"])
def test_list_tasks_answers_the_newest_first(
    a2a: A2AServer, a2a_worker: Swarm, binding: str
) -> None:
    context = f"ctx-{uuid.uuid4().hex[:12]}"
    for n in range(5):
        _send(a2a, context, QUEUE if n % 2 else OTHER)
    posted = [t.id for t in a2a_worker.list_tasks(pass_name=context)]  # posting order
    assert len(posted) == 5
    listed: list[str] = []
    token = ""
    while True:
        got = _list(a2a, binding, contextId=context, pageSize=2, pageToken=token)
        assert got["totalSize"] == 5
        listed += [t["id"] for t in got["tasks"]]
        token = got["nextPageToken"]
        if not token:
            break
    assert listed == posted[::-1]


def test_a_page_token_of_an_oldest_first_listing_is_refused_in_a2a_words(
    a2a: A2AServer, a2a_worker: Swarm
) -> None:
    """A page token of a server that listed oldest first (a task id) is refused, not read as
    this order's, which would list from the wrong end of it."""
    context = f"ctx-{uuid.uuid4().hex[:12]}"
    for _ in range(3):
        _send(a2a, context)
    old_token = a2a_worker.list_tasks(pass_name=context, limit=1).cursor
    answer = _rpc(a2a, "ListTasks", {"contextId": context, "pageToken": old_token})
    said = answer["error"]["message"]
    assert said.startswith(f"pageToken {old_token!r} is not one this listing gave"), said
    assert said.endswith("(it lists oldest first; this listing is newest first)"), said
    assert "cursor" not in said


def test_total_size_with_a_context_counts_only_the_exposed_queues(
    a2a: A2AServer, a2a_worker: Swarm
) -> None:
    """It counted the pass's tasks of every queue (``pass_stats``): 5 here, of which ListTasks
    lists 2."""
    context = f"ctx-{uuid.uuid4().hex[:12]}"
    mine = [_send(a2a, context), _send(a2a, context, OTHER)]

    def total(**params: Any) -> int:
        got = _list(a2a, "jsonrpc", contextId=context, **params)
        return int(got["totalSize"])

    assert total() == 2  # (no other queue holds a task: from the counters)
    for n in range(3):
        a2a_worker.post_task("elsewhere", f"not exposed {n}", pass_name=context)
    assert total() == 2
    assert total(status="TASK_STATE_SUBMITTED") == 2
    assert total(status="TASK_STATE_COMPLETED") == 0
    a2a_worker.cancel(mine[0])
    assert total(status="TASK_STATE_CANCELED") == 1  # (none elsewhere: the counters)
    assert total(status="TASK_STATE_SUBMITTED") == 1
    # What it counts is what the pages hold.
    listed: list[str] = []
    token = ""
    while True:
        got = _list(a2a, "rest", contextId=context, pageSize=1, pageToken=token)
        assert got["totalSize"] == 2
        listed += [t["id"] for t in got["tasks"]]
        token = got["nextPageToken"]
        if not token:
            break
    assert sorted(listed) == sorted(mine)
