"""The fifth walkthrough of docs/mcp.md with the inspector: what the MCP face got wrong.

1. a second session of a server started with --name became an agent of a made-up id, its
   client never told; 2. a cursor overrode the filters given with it (list_findings served
   another pass's findings, get_context another owner's page); 3. a get_context cursor with an
   edited offset was served, its page starting inside a line; 4. claim_task(lease_s=30) said
   the task's own lease (900) beside a deadline 30 s away; 5. a bad lease token was answered
   with the CLI's advice; 6. a boolean or a string was taken for a number, and an unknown role
   listed nobody without a word; 7. the close of a named session while Redis was down logged
   two lines that contradict each other.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

import anyio
import pytest

from redis_swarm import Swarm
from redis_swarm._errors import ValidationError
from redis_swarm._hints import KEPT_TOKEN
from redis_swarm._models import SWARM_ROLES
from redis_swarm._ops._work import check_token
from redis_swarm.mcp_server import build_server
from redis_swarm.mcp_server._budget import decode_cursor, encode_cursor
from redis_swarm.mcp_server._session import SessionRegistry

from .._servers import ServerFactory
from ._helpers import connect


def run(body: Callable[[], Awaitable[None]]) -> None:
    anyio.run(body)


def test_a_second_session_under_the_fixed_name_is_refused_not_renamed(core: Swarm) -> None:
    async def body() -> None:
        server = build_server(core, role="worker", name="fixed-w")
        async with connect(server, client_name="first") as first:
            await first("read_inbox")
            assert (core.get_agent("fixed-w").metadata or {})["client"] == "first"
            async with connect(server, client_name="second") as second:
                said = await second.error("read_inbox")
                assert "agent id fixed-w" in said and "held by another open session" in said
                assert "without --name" in said and "another --name" in said
            # Nobody registered under a made-up id, and the first session goes on.
            assert [a.id for a in core.agents()] == ["fixed-w"]
            await first("read_inbox")

    run(body)


def test_a_cursor_with_other_filters_is_refused(core: Swarm) -> None:
    for n in range(3):
        task = core.post_task("q", f"t{n}", pass_name="P-n")
        claimed = core.claim("q", worker="w")
        assert claimed is not None and claimed.id == task.id and claimed.token
        core.report(task.id, claimed.token, {"summary": f"s{n}"}, worker="w")
    core.publish_context("shard-auth", "a\n" * 20_000, source="t")
    core.publish_context("field-guide", "b\n" * 20_000, source="t")

    async def body() -> None:
        async with connect(build_server(core, role="all", name="me")) as tools:
            head, _ = await tools("list_findings", pass_name="P-n", limit=1)
            cursor = head["next_cursor"]
            said = await tools.error("list_findings", pass_name="Pass 1", cursor=cursor)
            assert 'this cursor pages list_findings with pass_name="P-n"' in said
            assert "leave pass_name out to go on" in said
            # The same filter, or none, goes on.
            head, _ = await tools("list_findings", pass_name="P-n", cursor=cursor, limit=1)
            assert head["findings"][0]["summary"] == "s1"
            head, _ = await tools("list_findings", cursor=cursor, limit=1)
            assert head["findings"][0]["summary"] == "s1"
            said = await tools.error("list_findings", queue="other", cursor=cursor)
            assert "with no queue" in said

            page, _ = await tools("get_context", owner="shard-auth")
            cursor = page["next_cursor"]
            said = await tools.error("get_context", owner="field-guide", cursor=cursor)
            assert 'this cursor pages get_context with owner="shard-auth"' in said
            said = await tools.error("get_context", version="v-other", cursor=cursor)
            assert "leave version out" in said
            page, text = await tools("get_context", owner="shard-auth", cursor=cursor)
            assert page["owner"] == "shard-auth" and text is not None and text.startswith("a\n")

            head, _ = await tools("search_context", owner="shard-auth", pattern="a", max_hits=1)
            said = await tools.error(
                "search_context", owner="field-guide", cursor=head["next_cursor"]
            )
            assert 'this cursor pages search_context with owner="shard-auth"' in said

    run(body)


def test_a_context_cursor_off_a_line_start_is_refused(core: Swarm) -> None:
    lines = [f"line {n:05d} " + "x" * 40 for n in range(1, 3_001)]
    core.publish_context("doc", "\n".join(lines) + "\n", source="t")
    core.publish_context("long", "é" * 50_000 + "\nend\n", source="t")

    async def body() -> None:
        async with connect(build_server(core, role="all", name="me")) as tools:
            page, text = await tools("get_context", owner="doc")
            assert text is not None
            state = decode_cursor("context", page["next_cursor"])
            start = page["lines"][1] + 1
            # The cursor as given: its page starts line ``start``.
            page2, text2 = await tools("get_context", cursor=page["next_cursor"])
            assert page2["lines"][0] == start and text2 is not None
            assert text2.startswith(lines[start - 1])
            assert page2["bytes"][0] == state["c"]
            # Its offset edited: inside a line, refused (it served a page cut mid-line).
            for moved in (state["c"] + 3, state["c"] - 1):
                edited = encode_cursor("context", {**state, "c": moved})
                said = await tools.error("get_context", cursor=edited)
                assert "cursor is damaged" in said and f"byte {moved}" in said

            # A line longer than a page: the cursor goes on inside it, and says so; its
            # pages read the line whole, none refused, and a character is never cut.
            page, text = await tools("get_context", owner="long")
            assert page["lines"] == [1, 1] and text is not None
            read = [text]
            while "next_cursor" in page:
                cursor = page["next_cursor"]
                assert decode_cursor("context", cursor).get("l", 1) in (1, 2)
                page, text = await tools("get_context", cursor=cursor)
                assert text is not None
                read.append(text)
            assert "".join(read) == "é" * 50_000 + "\nend\n"
            # An offset inside a character, and one inside the long line with no line said.
            inside = encode_cursor("context", {"o": "long", "v": page["version"], "c": 1001})
            assert "cursor is damaged" in await tools.error("get_context", cursor=inside)
            unsaid = encode_cursor("context", {"o": "long", "v": page["version"], "c": 1000})
            assert "cursor is damaged" in await tools.error("get_context", cursor=unsaid)
            # read_context_lines' cursor into a line longer than a result is taken.
            head, _ = await tools("read_context_lines", owner="long", start=1, end=1)
            rest = decode_cursor("context", head["next"].split("cursor=")[1].split(")")[0][1:-1])
            assert rest["l"] == 1
            page, text = await tools("get_context", cursor=encode_cursor("context", rest))
            assert page["lines"][0] == 1 and text is not None and text.startswith("é")

    run(body)


def test_claim_task_says_the_lease_it_took(core: Swarm) -> None:
    core.post_task("q", "a task", lease_s=900)

    async def body() -> None:
        async with connect(build_server(core, role="worker")) as worker:
            head, _ = await worker("claim_task", queue="q", lease_s=30)
            task = head["task"]
            assert task["lease_s"] == 30
            claimed = datetime.fromisoformat(task["claimed_at"])
            deadline = datetime.fromisoformat(task["lease_deadline"])
            assert (deadline - claimed).total_seconds() == 30

    run(body)


def test_a_bad_token_is_answered_in_tool_terms(core: Swarm) -> None:
    # (a named hint now: every face has its words for it)
    with pytest.raises(ValidationError) as refused:
        check_token("1.bad")
    assert KEPT_TOKEN in str(refused.value)
    task = core.post_task("q", "a task")

    async def body() -> None:
        async with connect(build_server(core, role="worker")) as worker:
            said = await worker.error("report_finding", task_id=task.id, summary="x", token="1.bad")
            assert "claim_task returned it" in said and "token=" in said
            assert "swarm task claim" not in said and "SWARM_HOME" not in said

    run(body)


def test_numbers_are_numbers_and_roles_are_known(core: Swarm) -> None:
    core.post_task("q", "a task")
    core.register("worker", name="w1")

    async def body() -> None:
        async with connect(build_server(core, role="all", name="me")) as tools:
            # A flag is no number (it read one message, leased for 1 s) ...
            said = await tools.error("read_inbox", limit=True)
            assert "limit: must be a number, not true or false (got true)" in said
            said = await tools.error("claim_task", queue="q", lease_s=False)
            assert "lease_s: must be a number, not true or false (got false)" in said
            said = await tools.error(
                "post_tasks", tasks=[{"queue": "q", "description": "d", "priority": True}]
            )
            assert "tasks[0].priority: must be a number, not true or false" in said
            # ... a number written as a string is one (the inspector's CLI sends them so), a
            # string that is none is refused, and a whole number is a float.
            said = await tools.error("claim_task", queue="q", wait_s="soon")
            assert "wait_s: must be a number" in said
            head, _ = await tools("claim_task", queue="q", lease_s="10", wait_s=0)
            assert head["task"] is not None and head["task"]["lease_s"] == 10
            said = await tools.error("list_agents", role="nope")
            assert 'no agent has role "nope"' in said
            assert all(role in said for role in SWARM_ROLES)
            # A role an agent has is listed, in SWARM_ROLES or not ("agent": role all's).
            head, _ = await tools("list_agents", role="agent")
            assert [a["id"] for a in head["agents"]] == ["me"]
            head, _ = await tools("list_agents", role="coordinator")
            assert head["agents"] == []

    run(body)


def test_a_named_session_closed_while_redis_is_down_logs_one_thing(
    servers: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = servers.start()
    swarm = Swarm(server.url, swarm="test")

    async def body() -> None:
        registry = SessionRegistry(swarm, role="worker", name="fixed-w")
        session = await registry._open("claude-code")
        server.stop()
        with caplog.at_level(logging.INFO, logger="redis_swarm.mcp"):
            await registry.close(session)

    try:
        run(body)
    finally:
        swarm.close()
    said = [r.getMessage() for r in caplog.records if "fixed-w" in r.getMessage()]
    assert len(said) == 1, said
    assert "stays registered" in said[0] and "run this command again" not in said[0]
    assert "not marked stale now" in said[0], said
    json.dumps(said)  # (plain text)
