"""The MCP server through the SDK's in-memory client: every tool, paging, errors, roles,
sessions as agents. A real redis-server (the fixtures') is behind every test."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from redis_swarm import Swarm, Timeout, _hints
from redis_swarm._errors import SwarmError
from redis_swarm.mcp_server import AGENT_ROLES, AgentSession, build_server, tool_names
from redis_swarm.mcp_server._agent_session import REMEMBERED_REPORTS, REPORT
from redis_swarm.mcp_server._render import TOOL_WORDS, tool_error

from .._cli import Cli
from ._helpers import connect, eventually

CONTEXT = "".join(
    f"line {i}: the quick brown fox {'finds the needle' if i in (40, 41, 90) else 'runs'}\n"
    for i in range(1, 201)
)


def run(body: Callable[[], Awaitable[None]]) -> None:
    anyio.run(body)


def test_each_role_offers_its_tools_and_prompts(core: Swarm) -> None:
    async def body() -> None:
        for role in AGENT_ROLES:
            async with connect(build_server(core, role=role)) as tools:
                listed = (await tools.client.list_tools()).tools
                assert [t.name for t in listed] == tool_names(role)
                for tool in listed:
                    assert tool.description and len(tool.description) > 60, tool.name
                    # sent to the model every session: no source indentation, no wrapping
                    assert "  " not in tool.description and "\n" not in tool.description.replace(
                        "\n\n", ""
                    ), tool.name
                prompts = [p.name for p in (await tools.client.list_prompts()).prompts]
                roles = ["worker", "shard", "coordinator"] if role == "all" else [role]
                assert prompts == [f"{r}_init" for r in roles]

    run(body)
    assert "claim_task" in tool_names("worker") and "publish_context" not in tool_names("worker")
    assert "publish_context" in tool_names("shard") and "claim_task" not in tool_names("shard")
    assert "request_synthesis" in tool_names("coordinator")
    assert set(tool_names("all")) >= set(tool_names("worker")) | set(tool_names("shard"))


def test_a_pass_from_shard_to_workers_and_back(core: Swarm) -> None:
    """publish -> post -> claim -> search -> read -> report / fail -> wait -> findings ->
    synthesize, by a shard session and a worker session over one swarm."""

    async def body() -> None:
        shard_server = build_server(core, role="shard")
        worker_server = build_server(core, role="worker", model="test-model")
        async with (
            connect(shard_server, client_name="shard-cli") as shard,
            connect(worker_server, client_name="worker-cli") as worker,
        ):
            status, _ = await shard("swarm_status")
            me = status["you"]["agent"]
            assert status["you"]["role"] == "shard" and me.startswith("shard-cli-shard-")

            published, _ = await shard("publish_context", text=CONTEXT, source="notes.md")
            assert published["owner"] == me and published["total_lines"] == 200
            posted, _ = await shard(
                "post_tasks",
                tasks=[
                    {
                        "queue": "work",
                        "description": f"find needles, part {i}",
                        "pass_name": "Pass 1",
                        "data": {"part": i},
                    }
                    for i in range(3)
                ],
            )
            assert posted["posted"] == 3 and posted["queues"] == {"work": 3}
            assert "wait_for_pass" in posted["next"]
            extra = {"queue": "later", "description": "d", "dedupe_key": "k", "priority": 5}
            one, _ = await shard("post_task", **extra, data=[1, 2])
            again, _ = await shard("post_task", **extra)
            assert one["task"]["id"] == again["task"]["id"]  # deduplicated
            assert core.get_task(one["task"]["id"]).parent == me
            status, _ = await shard("swarm_status")
            assert status["queues"] == {"work": {"pending": 3}, "later": {"pending": 1}}
            assert status["contexts"][0]["owner"] == me
            assert status["agents"]["by_role"] == {"shard": 1, "worker": 1}

            claimed, _ = await worker("claim_task", queue="work")
            task = claimed["task"]
            assert task["parent"] == me and task["data"] == {"part": 0}
            assert (task["failures"], task["max_attempts"]) == (0, 3)
            assert (task["abandons"], task["max_abandons"]) == (0, 10)
            assert claimed["context"]["owner"] == me
            assert "report_finding" in claimed["next"]

            head, hits = await worker("search_context", pattern="needle")
            assert head["owner"] == me and head["hits"] == [1, 3]
            assert hits is not None and "40:line 40: the quick brown fox finds the needle" in hits
            assert "39-line 39" in hits
            assert "41:" in hits and "41-" not in hits and hits.count("\n--\n") == 1  # 40, 41
            head, text = await worker("read_context_lines", start=40, end=41)
            assert head["lines"] == [40, 41] and text == "".join(CONTEXT.splitlines(True)[39:41])

            reported, _ = await worker(
                "report_finding",
                task_id=task["id"],
                summary="needles at 40, 41, 90",
                sources=["context:L40-L41", "context:L90"],
                confidence=0.9,
                extra={"count": 3},
            )
            finding = core.get_finding(reported["finding_id"])
            worker_id = (await worker("swarm_status"))[0]["you"]["agent"]
            assert finding.worker == worker_id and finding.model == "test-model"
            assert finding.shard == me and finding.pass_name == "Pass 1"
            assert finding.context_version == published["version"]
            assert finding.confidence == 0.9 and finding.summary == "needles at 40, 41, 90"

            second = (await worker("claim_task", queue=["other", "work"]))[0]["task"]
            renewed, _ = await worker("renew_task", task_id=second["id"], lease_s=120)
            assert renewed["renewed"] is True
            failed, _ = await worker("fail_task", task_id=second["id"], error="no", retry=False)
            assert failed["status"] == "dead" and (failed["failures"], failed["abandons"]) == (1, 0)

            third = (await worker("claim_task", queue="work"))[0]["task"]
            await worker("report_finding", task_id=third["id"], summary="nothing more")
            empty, _ = await worker("claim_task", queue="work")
            assert empty["task"] is None and "stop" in empty["next"]

            await shard("post_task", queue="work", description="one more")
            fourth = (await worker("claim_task", queue="work"))[0]["task"]
            await shard("post_task", queue="work", description="and the last")
            both, _ = await worker(
                "report_finding", task_id=fourth["id"], summary="4", claim_next="work"
            )
            assert both["completed"] is True and both["next_task"]["task"]["parent"] == me
            last = both["next_task"]["task"]
            assert last["description"] == "and the last"
            assert "report_finding" in both["next_task"]["next"]
            ended, _ = await worker(
                "report_finding", task_id=last["id"], summary="5", claim_next=["work"]
            )
            assert ended["next_task"] is None and "stop" in ended["next"]

            waited, _ = await shard("wait_for_pass", pass_name="Pass 1", timeout_s=5)
            assert waited["settled"] is True
            assert waited["counts"]["completed"] == 2 and waited["counts"]["dead"] == 1
            listed, _ = await shard("list_findings", pass_name="Pass 1")
            ids = [f["id"] for f in listed["findings"]]
            assert len(ids) == 2 and "next_cursor" not in listed
            synthesis, _ = await shard(
                "synthesize", pass_name="Pass 1", text="Three needles.", sources=ids
            )
            assert core.get_synthesis(synthesis["synthesis_id"]).sources == tuple(ids)
            # a final report spanning passes says so; without it another pass is refused
            final = {"pass_name": "Final", "text": "All of it.", "sources": ids}
            refused = await shard.error("synthesize", **final)
            assert 'are not of pass "Final"' in refused and "across_passes" in refused
            spanning, _ = await shard("synthesize", **final, across_passes=True)
            assert core.get_synthesis(spanning["synthesis_id"]).sources == tuple(ids)
            empty = {"pass_name": "Pass 1", "text": "Nothing.", "sources": []}
            assert "cites_none=true" in await shard.error("synthesize", **empty)
            nothing, _ = await shard("synthesize", **empty, cites_none=True)
            assert core.get_synthesis(nothing["synthesis_id"]).sources == ()

    run(body)


def test_sessions_are_agents_that_leave_on_close(core: Swarm) -> None:
    async def body() -> None:
        server = build_server(core, role="worker")
        core.post_task("work", "a task")
        async with connect(server, client_name="claude-code") as worker:
            # Registered on connect, before any tool call.
            await eventually(lambda: len(core.agents(role="worker")) == 1)
            agent = core.agents(role="worker")[0]
            assert agent.metadata is not None and agent.metadata["client"] == "claude-code"
            assert agent.metadata["via"] == "mcp" and agent.alive
            claimed, _ = await worker("claim_task", queue="work")
            assert claimed["task"]["worker"] == agent.id
            # A session per connection, even of the same client (the SDK's Connection is found).
            async with connect(server, client_name="claude-code") as again:
                await again("swarm_status")
                assert len(core.agents(role="worker")) == 2
        # Gone on close, and the task it held is back in its queue at once (no attempt used).
        assert core.agents() == []
        task = core.get_task(claimed["task"]["id"])
        assert task.status == "pending" and task.worker is None

    run(body)


def test_the_session_keeps_the_lease_token(core: Swarm) -> None:
    async def body() -> None:
        server = build_server(core, role="worker")
        task = core.post_task("work", "a task")
        async with connect(server) as crashed:
            result = await crashed.raw("claim_task", queue="work")
            claimed = json.loads(result.content[0].text)  # type: ignore[union-attr]
            token = claimed["token"]
            assert "token" not in claimed["task"]  # once, as docs/mcp.md shows it
            assert result.content[0].text.count(token) == 1  # type: ignore[union-attr]
            # A session of a restarted server, while the first one's lease still stands (its
            # process died without closing it), holds no lease: it says what to do...
            async with connect(build_server(core, role="worker")) as worker:
                message = await worker.error("report_finding", task_id=task.id, summary="x")
                assert "holds no lease" in message and "claim_task" in message
                # Another member guessing the token is refused: the attempt alone, or a
                # made-up secret (only a hash of the real one is stored).
                for guess in ("1", "1." + "A" * 22):
                    message = await worker.error(
                        "report_finding", task_id=task.id, summary="forged", token=guess
                    )
                    assert "token" in message
                assert token.startswith("1.") and core.get_task(task.id).status == "claimed"
                # ...and the token claim_task returned still reports the task.
                done, _ = await worker("report_finding", task_id=task.id, summary="x", token=token)
                assert done["completed"] is True
            # The first session's report, late, is kept superseded, and says so.
            message = await crashed.error("report_finding", task_id=task.id, summary="late")
            assert message.startswith("Error executing tool report_finding: AlreadyCompleted: ")
            assert "superseded" in message and "do not report, renew or fail it again" in message
            assert "claim_task" in message
            # Told once: the session remembers it, and a retry stores nothing more.
            again = await crashed.error("report_finding", task_id=task.id, summary="late")
            kept = re.search(r"superseded \((f-\w+)\)", message)
            assert kept is not None and f"kept as superseded ({kept[1]})" in again
        assert len(core.findings().items) == 2  # the report, and the late one kept superseded

    run(body)


def test_a_session_remembers_the_tasks_it_reported(core: Swarm) -> None:
    """Reporting, renewing or failing a task this session already reported says so, with the
    finding's id, and stores nothing (before, it said to pass the token, which stored a
    superseded duplicate)."""

    async def body() -> None:
        task = core.post_task("work", "a task")
        async with connect(build_server(core, role="worker")) as worker:
            claimed, _ = await worker("claim_task", queue="work")
            done, _ = await worker("report_finding", task_id=task.id, summary="found")
            calls: list[tuple[str, dict[str, Any]]] = [
                ("report_finding", {"summary": "again"}),
                ("report_finding", {"summary": "again", "token": claimed["token"]}),
                ("renew_task", {}),
                ("fail_task", {"error": "oops"}),
            ]
            for name, args in calls:
                message = await worker.error(name, task_id=task.id, **args)
                assert "AlreadyCompleted: " in message, message
                assert "this session reported it" in message and done["finding_id"] in message
                assert "claim_task" in message and "holds no lease" not in message
        assert [f.id for f in core.findings().items] == [done["finding_id"]]

    run(body)
    session = AgentSession("a", "worker", "c")
    for i in range(REMEMBERED_REPORTS + 1):
        session.report_done(f"t-{i}", f"f-{i}", REPORT)
    assert len(session.reported) == REMEMBERED_REPORTS and "t-0" not in session.reported


def test_a_report_waits_for_the_next_task(core: Swarm) -> None:
    """report_finding(claim_next=..., wait_s=...): an agent's worker loop is woken with its
    next task instead of polling claim_task."""

    async def body() -> None:
        core.post_task("work", "first")
        async with connect(build_server(core, role="worker")) as worker:
            first = (await worker("claim_task", queue="work"))[0]["task"]
            timer = threading.Timer(0.3, lambda: core.post_task("work", "posted meanwhile"))
            timer.start()
            started = time.monotonic()
            both, _ = await worker(
                "report_finding", task_id=first["id"], summary="1", claim_next="work", wait_s=20
            )
            timer.join()
            assert both["next_task"]["task"]["description"] == "posted meanwhile"
            assert 0.25 < time.monotonic() - started < 15
            following = both["next_task"]["task"]
            message = await worker.error(
                "report_finding", task_id=following["id"], summary="2", wait_s=5
            )
            assert "claim_next" in message
            assert core.get_task(following["id"]).status == "claimed"  # nothing stored

    run(body)


def test_2026_clients_share_one_session_per_client(core: Swarm) -> None:
    """The 2026-07-28 era has no connection: requests of one client share one agent."""

    async def body() -> None:
        server = build_server(core, role="worker")
        task = core.post_task("work", "a task")
        async with connect(server, mode="auto", client_name="new-client") as worker:
            assert worker.client.protocol_version == "2026-07-28"
            await worker("claim_task", queue="work")
            done, _ = await worker("report_finding", task_id=task.id, summary="ok")
            assert done["completed"] is True
            assert [a.metadata["client"] for a in core.agents() if a.metadata] == ["new-client"]
        assert core.agents() == []  # left when the server's lifespan ended

    run(body)


def test_heartbeats_keep_the_agent_present(core: Swarm) -> None:
    async def body() -> None:
        server = build_server(core, role="shard", name="shard-7", heartbeat_s=0.1)
        async with connect(server) as shard:
            await shard("swarm_status")
            first = core.get_agent("shard-7").last_seen
            assert first is not None
            await eventually(lambda: (core.get_agent("shard-7").last_seen or 0) > first)
            # Swept as stale (a suspended laptop): the session joins again, same id.
            core.deregister("shard-7")
            await eventually(lambda: any(a.id == "shard-7" for a in core.agents()))

    run(body)


def test_an_800k_token_context_pages_within_the_budget(core: Swarm) -> None:
    line = "{:07d} " + "lorem ipsum dolor sit amet, consectetur adipiscing elit " * 2 + "\n"
    text = "".join(line.format(i) for i in range(1, 3_200_000 // len(line.format(0)) + 2))
    assert len(text) // 4 >= 800_000
    core.publish_context("big", text, source="big.md")

    async def body() -> None:
        async with connect(build_server(core, role="worker")) as worker:
            started = time.monotonic()
            pages: list[str] = []
            head, page = await worker("get_context", owner="big")
            next_line = 1
            while True:
                assert page is not None and head["lines"][0] == next_line
                pages.append(page)
                next_line = head["lines"][1] + 1
                if "next_cursor" not in head:
                    break
                head, page = await worker("get_context", cursor=head["next_cursor"])
            elapsed = time.monotonic() - started
            assert "".join(pages) == text
            assert next_line - 1 == head["total_lines"] == text.count("\n")
            assert all(p.endswith("\n") for p in pages)  # pages hold whole lines
            assert len(pages) == pytest.approx(len(text) / 30_800, rel=0.1)
            assert worker.largest <= 32_000
            assert elapsed < 30, f"paging 800K tokens took {elapsed:.1f}s"

            head, hits = await worker("search_context", owner="big", pattern="0020000 lorem")
            assert head["hits"] == [1, 1] and hits is not None and hits.startswith("19998-")
            head, part = await worker("read_context_lines", owner="big", start=20_000, end=20_001)
            assert part == "".join(text.splitlines(True)[19_999:20_001])
            head, part = await worker("read_context_lines", owner="big", start=10)
            assert head["lines"][0] == 10 and "read_context_lines" in head["next"]
            assert part is not None and part.startswith(line.format(10))

    run(body)


def test_search_hits_page_with_a_cursor(core: Swarm) -> None:
    text = "".join(f"{'needle' if i % 7 == 0 else 'hay'} {i}\n" for i in range(1, 1_051))
    core.publish_context("ctx", text, source="t")
    expected = [i for i in range(1, 1_051) if i % 7 == 0]

    async def body() -> None:
        async with connect(build_server(core, role="worker", budget_tokens=600)) as worker:
            worker.max_chars = 600 * 4
            found: list[int] = []
            shown: list[int] = []  # every line number, hit or context, page after page
            head, hits = await worker("search_context", owner="ctx", pattern="needle", around=4)
            pages = 1
            while True:
                assert hits is not None
                found += [int(line.split(":")[0]) for line in hits.splitlines() if ":" in line]
                lines = [line for line in hits.splitlines() if line != "--"]
                shown += [int(re.split("[:-]", line)[0]) for line in lines]
                if "next_cursor" not in head:
                    break
                cursor = head["next_cursor"]
                if pages == 1:  # a cursor pages its own search: another pattern is refused
                    refused = await worker.raw("search_context", pattern="x", cursor=cursor)
                    assert refused.is_error and "leave pattern out" in str(refused.content)
                head, hits = await worker("search_context", cursor=cursor)
                pages += 1
            assert found == expected
            # One merged group (hits 7 apart, 4 lines around: neighbours share 2) over many
            # pages: no page shows again a line an earlier one showed, none is left out, and
            # every page shows 4 lines around (the cursor keeps them).
            assert pages > 3
            assert shown == list(range(3, 1_051))
            head, hits = await worker("search_context", owner="ctx", pattern="nothing here")
            assert head["hits"] == [] and "no match" in head["next"]
            refused = await worker.raw("search_context", owner="ctx")
            assert refused.is_error and "give pattern" in str(refused.content)

    run(body)


def test_search_ignores_case_when_asked_and_its_cursor_keeps_it(core: Swarm) -> None:
    text = "".join(f"{'Needle' if i % 2 else 'needle'} {i}\n" for i in range(1, 401))
    core.publish_context("ctx", text, source="t")

    async def body() -> None:
        async with connect(build_server(core, role="worker", budget_tokens=600)) as worker:
            worker.max_chars = 600 * 4
            head, hits = await worker("search_context", owner="ctx", pattern="NEEDLE")
            assert head["hits"] == [] and "ignore_case=true" in head["next"]
            head, hits = await worker(
                "search_context", owner="ctx", pattern="NEEDLE", ignore_case=True, around=0
            )
            found: list[int] = []
            while True:
                assert hits is not None
                found += [int(line.split(":")[0]) for line in hits.splitlines()]
                if "next_cursor" not in head:
                    break
                head, hits = await worker("search_context", cursor=head["next_cursor"])
            assert found == list(range(1, 401))

    run(body)


def test_contexts_page_exactly_whatever_their_text(core: Swarm) -> None:
    """Multi-byte characters and a line longer than a page: the pages rebuild the text."""
    long_line = "".join(f"{i % 10}" for i in range(20_000)) + "\n"
    text = "".join(f"ligne {i}: café, naïve, 東京, 🙂\n" for i in range(300)) + long_line + "fin\n"
    core.publish_context("u", text, source="t")

    async def body() -> None:
        async with connect(build_server(core, role="worker", budget_tokens=1_000)) as worker:
            worker.max_chars = 4_000
            pages: list[str] = []
            head, page = await worker("get_context", owner="u")
            while True:
                assert page is not None
                pages.append(page)
                if "next_cursor" not in head:
                    break
                head, page = await worker("get_context", cursor=head["next_cursor"])
            assert "".join(pages) == text and len(pages) > 8

            head, part = await worker("read_context_lines", owner="u", start=301)
            assert head["lines"] == [301, 301] and part is not None and long_line.startswith(part)
            assert "longer than one result" in head["next"]
            cursor = head["next"].split("cursor=")[1].split(")")[0].strip('"')
            rest: list[str] = []
            while True:
                head, page = await worker("get_context", cursor=cursor)
                assert page is not None
                rest.append(page)
                if "".join(rest).endswith("\n") or "next_cursor" not in head:
                    break
                cursor = head["next_cursor"]
            assert part + "".join(rest).split("\n")[0] + "\n" == long_line

    run(body)


def test_findings_and_agents_page_with_cursors(core: Swarm) -> None:
    for i in range(40):
        core.post_task("work", f"task {i}", pass_name="P")
    for i in range(40):
        task = core.claim("work", worker="w")
        assert task is not None
        core.report(task.id, task.token, {"summary": f"s{i}", "details": "d" * 3000})
    for i in range(150):
        core.register("worker", name=f"agent-{i:03d}", metadata={"note": "n" * 400})

    async def body() -> None:
        async with connect(build_server(core, role="coordinator")) as coordinator:
            seen: list[str] = []
            head, _ = await coordinator("list_findings", pass_name="P")
            pages = 1
            while True:
                seen += [f["id"] for f in head["findings"]]
                if "next_cursor" not in head:
                    break
                assert "list_findings(cursor=" in head["next"]
                head, _ = await coordinator("list_findings", cursor=head["next_cursor"])
                pages += 1
            assert len(seen) == len(set(seen)) == 40 and pages >= 4

            agents: list[str] = []
            head, _ = await coordinator("list_agents", role="worker")
            while True:
                agents += [a["id"] for a in head["agents"]]
                if "next_cursor" not in head:
                    break
                head, _ = await coordinator("list_agents", cursor=head["next_cursor"])
            assert len(agents) == len(set(agents)) == 150 + 1  # and the implicit worker "w"

    run(body)


def test_an_oversized_result_is_split_into_pages(core: Swarm) -> None:
    blob = "".join(f"{i:06d}," for i in range(30_000))  # 210 KB of task data
    core.post_task("work", "big data", {"blob": blob})

    async def body() -> None:
        async with connect(build_server(core, role="worker", budget_tokens=2_000)) as worker:
            worker.max_chars = 2_000 * 4
            head, page = await worker("claim_task", queue="work")
            assert head["page"] == 1 and head["pages"] > 20 and page is not None
            document = [page]
            while "next_cursor" in head:
                assert "next_page(cursor=" in head["next"]
                head, page = await worker("next_page", cursor=head["next_cursor"])
                assert page is not None
                document.append(page)
            assert json.loads("".join(document))["task"]["data"]["blob"] == blob

    run(body)


def test_errors_say_what_to_do_next(core: Swarm) -> None:
    async def body() -> None:
        async with connect(build_server(core, role="all", name="me")) as agent:
            checks: list[tuple[str, dict[str, Any], str]] = [
                ("report_finding", {"task_id": "t-nope", "summary": "x"}, "claim_task"),
                ("get_context", {"owner": "nobody"}, "swarm_status"),
                ("claim_task", {"queue": "bad queue!"}, "letters, digits"),
                ("claim_task", {"queue": "q", "wait_s": 1000}, "wait_s"),
                ("publish_context", {}, "exactly one of text or path"),
                ("publish_context", {"path": "nonexistent/file.md"}, "No such file"),
                ("get_context", {"cursor": "garbage"}, "not a context cursor"),
                ("next_page", {"cursor": "page.eyJrIjoieCIsImkiOjF9"}, "repeat the call"),
                ("wait_for_pass", {}, "pass_name=... or queue=..."),
                ("renew_task", {"task_id": "t-nope", "token": "1." + "a" * 22}, "NotFound"),
                ("synthesize", {"pass_name": "P", "text": "t", "sources": ["f-x"]}, "NotFound"),
            ]
            for tool, args, expected in checks:
                message = await agent.error(tool, **args)
                assert expected in message, (tool, message)
            # A damaged (or foreign) next_page cursor: next_page needs one, so the way back is
            # the call that returned the first page, not "omit the cursor".
            for bad in ("page.!!!not-base64!!!", "context.eyJvIjoieCJ9", "garbage"):
                message = await agent.error("next_page", cursor=bad)
                assert "omit" not in message, message
                assert "repeat the call that returned the first page" in message, message
            message = await agent.error("get_context", cursor="context.!!!not-base64!!!")
            assert "damaged" in message and "omit the cursor to start at the first" in message
            await agent("publish_context", text="one\ntwo\n")
            message = await agent.error("read_context_lines", start=50)
            assert "past the end" in message and "2 lines" in message
            message = await agent.error("read_context_lines", start=5, end=2)
            assert "start <= end" in message
        async with connect(build_server(core, role="worker")) as worker:
            message = await worker.error("publish_context", text="x")
            assert "publish_context" in message  # unknown on a worker server

    run(body)


def _fail_the_next_question(core: Swarm) -> None:
    """Claim the next task posted (a question: no other is pending) and fail it for good."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for queue in core.queue_stats():
            task = core.claim(queue, worker="answerer")
            if task is not None:
                core.fail(task.id, task.token, "no answer here", retry=False)
                return
        time.sleep(0.05)


def test_error_hints_name_tools_not_the_cli_or_python(core: Swarm) -> None:
    """The core's hints, which name commands (`swarm context list`, `swarm findings`), reach
    an MCP agent as the tools it can call (the core's messages are unchanged)."""

    async def body() -> None:
        async with connect(build_server(core, role="all", name="me")) as agent:
            await agent("publish_context", text="one\ntwo\n")
            open_task = core.post_task("q-open", "d", delay_s=600).id  # (no one claims it)
            checks: list[tuple[str, dict[str, Any], str]] = [
                ("get_context", {"owner": "nobody"}, "(swarm_status lists them)"),
                ("search_context", {"pattern": "(", "regex": True}, "plain text instead of a"),
                ("get_context", {"owner": "me", "version": "zz"}, "returned by get_context"),
                ("get_context", {"owner": "me", "version": "0" * 64},
                 "leave version out to read the current one"),
                ("post_task", {"queue": "q", "description": "big", "data": "x" * 1_100_000},
                 "in a context (publish_context)"),
                ("synthesize", {"pass_name": "P", "text": "t", "sources": ["f-"]}, "list_findings"),
                ("synthesize", {"pass_name": "P", "text": "t", "sources": []}, "cites_none=true"),
                ("wait_for_pass", {"pass_name": "nope", "timeout_s": 1},
                 "; swarm_status lists them), or post"),
                ("send_message", {"to": "nobody", "body": "hi"}, "check the id with list_agents"),
                ("ask", {"target": "nobody", "question": "?"}, "(swarm_status lists them)"),
                ("ask", {"target": "me", "question": "?", "timeout_s": 1}, "next_question"),
                ("report_finding", {"task_id": "t-nope", "summary": "x", "token": "1." + "a" * 22},
                 "check the id claim_task or post_task returned"),
                ("report_finding", {"task_id": open_task, "summary": "x", "token": "1"},
                 "claim_task returned it beside the task"),
                ("read_inbox", {"message_id": "m-nope"}, "send_message returned it"),
            ]  # fmt: skip
            said = []
            for tool, args, expected in checks:
                message = await agent.error(tool, **args)
                assert expected in message, (tool, message)
                said.append(message)
            # A question that dies unanswered: its answerer fails it for good.
            killer = threading.Thread(target=_fail_the_next_question, args=(core,))
            killer.start()
            message = await agent.error("ask", target="me", question="doomed?", timeout_s=20)
            killer.join()
            assert "died unanswered" in message, message
            said.append(message)
            # A question kept by its poster, which an ask with its dedupe key shares.
            with pytest.raises(Timeout):
                core.ask("me", "kept?", dedupe_key="kept", keep=True, timeout_s=0.2)
            message = await agent.error(
                "ask", target="me", question="kept?", dedupe_key="kept", timeout_s=1
            )
            assert "list_findings shows its text" in message, message
            said.append(message)
            # Every core hint has this server's words.
            assert set(TOOL_WORDS) == {getattr(_hints, name) for name in _hints.__all__}
            # Said only when Redis goes away as an asker withdraws (the CLI's test meets it).
            cancel = _hints.said_of(_hints.CANCEL_TASK, "t-1")
            said.append(str(tool_error(SwarmError(f"cancel it {cancel}"))))
            # A dead task withdrawn, not dropped: no tool does (its cancel is the operator's).
            core.post_task("doomed", "a task", max_attempts=1)
            doomed = core.claim("doomed", worker="w1")
            assert doomed is not None
            core.fail(doomed.id, doomed.token, "broken")
            with pytest.raises(SwarmError) as dead:
                core.cancel(doomed.id)
            said.append(str(tool_error(dead.value)))
            # Every translation is met (a core message reworded fails here), and no core hint
            # is left untranslated (a hint that takes an id: said with any id).
            for core_words, tool_words in TOOL_WORDS.items():
                in_words = _hints.said_of_any(tool_words)
                assert any(in_words.search(message) for message in said), tool_words
                as_core = _hints.said_of_any(core_words)
                assert not any(as_core.search(message) for message in said), core_words

    run(body)


def test_a_message_to_an_agent_not_registered_names_no_command(core: Swarm) -> None:
    """send_message to a mistyped agent told an MCP agent a CLI command it cannot run
    ("register it first (swarm agents register nobdy --role ROLE)"): said in the tools' words
    now, of the same agent."""

    async def body() -> None:
        async with connect(build_server(core, role="all", name="me")) as agent:
            message = await agent.error("send_message", to="nobdy", body="hi")
        assert (
            "agent nobdy is not registered, so nobody would read the message: check the id "
            "with list_agents, register it first (agent nobdy registers as its MCP session "
            "connects, or the swarm's operator can register it), or broadcast"
        ) in message, message
        assert "swarm agents" not in message and "ROLE" not in message, message

    run(body)


def test_arguments_are_checked_strictly_and_said_plainly(core: Swarm) -> None:
    """An argument a tool does not have is refused, naming the ones it has (before, it was
    ignored: a misspelt lease_s claimed with the default lease); a bad value is one plain line
    per problem, not pydantic's dump."""
    task = core.post_task("work", "a task")

    async def body() -> None:
        async with connect(build_server(core, role="all", name="me")) as agent:
            for tool in (await agent.client.list_tools()).tools:
                assert tool.input_schema["additionalProperties"] is False, tool.name
            for args in ({"leas_s": 10}, {"bogus": 1}):
                message = await agent.error("claim_task", queue="work", **args)
                (name,) = args
                assert (
                    f"{name}: unknown argument; claim_task takes queue, lease_s, wait_s" in message
                )
            assert core.get_task(task.id).status == "pending"  # nothing claimed
            message = await agent.error("claim_task", queue="work", wait_s=100000)
            assert message == (
                "Error executing tool claim_task: ValidationError: wait_s: must be at most 60 "
                "(got 100000) (fix that argument and call again)"
            )
            message = await agent.error("claim_task", queue="work", lease_s=10**20)
            assert "lease_s: must be at most 2592000" in message  # the core's bound, said
            message = await agent.error(
                "report_finding", task_id=task.id, summary="s", extra={"confidence": 7}
            )
            assert "extra holds confidence: pass it as report_finding's own argument" in message
            message = await agent.error("claim_task", queue=5)
            assert "queue: must be a string or a list of strings (got 5)" in message
            message = await agent.error(
                "report_finding", task_id=task.id, summary="s", confidence=2, sources="abc"
            )
            assert message.splitlines()[1:] == [
                "confidence: must be at most 1 (got 2) (fix that argument and call again)"
            ]
            assert message.splitlines()[0].endswith(
                'sources: must be a list of strings (got "abc")'
            )
            message = await agent.error("post_tasks", tasks=[{"queue": "q", "desc": "d"}])
            assert "tasks[0].description: required, not given" in message
            assert "tasks[0].desc: unknown field; it has queue, description," in message
            message = await agent.error("swarm_status", verbose=True)
            assert "verbose: unknown argument; swarm_status takes pass_name" in message
            for message in (await agent.error("post_tasks", tasks=[]),):
                assert "tasks: must hold at least 1 item (got [])" in message
                assert "pydantic" not in message and "validation error" not in message
        assert core.get_task(task.id).status == "pending"

    run(body)


def test_wait_for_pass_is_bounded(core: Swarm) -> None:
    task = core.post_task("work", "slow", pass_name="P")

    async def body() -> None:
        async with connect(build_server(core, role="shard")) as shard:
            started = time.monotonic()
            head, _ = await shard("wait_for_pass", pass_name="P", timeout_s=0.3)
            assert time.monotonic() - started < 5
            assert head["settled"] is False and head["counts"] == {"pending": 1}
            claimed = core.claim("work", worker="w")
            assert claimed is not None and claimed.id == task.id
            core.report(task.id, claimed.token, {"summary": "done"})
            head, _ = await shard("wait_for_pass", queue="work", timeout_s=5)
            assert head["settled"] is True and "list_findings" in head["next"]

    run(body)


def test_a_pass_with_no_task_is_said_plainly_by_both_faces(core: Swarm, redis_url: str) -> None:
    """A misspelt pass reads as an empty one: wait_for_pass said it was settled, and the
    agent went on to read no findings. Both faces now refuse it from the same fact (no task
    of that pass), naming the passes there are; a queue with no task is settled, saying so."""
    core.post_task("work", "one", pass_name="Pass 1")
    core.post_task("work", "two", pass_name="Pass 2")

    async def body() -> None:
        async with connect(build_server(core, role="shard")) as shard:
            message = await shard.error("wait_for_pass", pass_name="M P typo", timeout_s=1)
            assert message == (
                "Error executing tool wait_for_pass: "
                'NotFound: no task has ever been posted to pass "M P typo": nothing to wait '
                'for and no findings to read. Check its name (the passes: "Pass 1", "Pass 2"; '
                "swarm_status lists them), or post its tasks first"
            )
            empty, _ = await shard("wait_for_pass", queue="typo", timeout_s=1)
            assert empty["settled"] is True and empty["counts"] == {}
            assert 'no task has ever been posted to queue "typo"' in empty["next"]

    run(body)
    out = Cli(redis_url)("task", "wait", "--pass", "M P typo", "--timeout", "1", expect=1)
    assert out.stderr == (
        'error: no task has ever been posted to pass "M P typo": nothing to wait for and no '
        'findings to read. Check its name (the passes: "Pass 1", "Pass 2"; swarm status --all '
        "lists them), or post its tasks first\n"
    )


def test_messages_between_sessions(core: Swarm) -> None:
    async def body() -> None:
        coordinator_server = build_server(core, role="coordinator", name="boss")
        async with (
            connect(coordinator_server) as boss,
            connect(build_server(core, role="shard", name="shard-1")) as shard,
        ):
            await shard("swarm_status")
            listed, _ = await boss("list_agents", alive=True)
            assert {a["id"] for a in listed["agents"]} == {"boss", "shard-1"}
            sent, _ = await boss("send_message", to="shard-1", body="status?")
            assert sent["sent"] is True
            await boss("request_synthesis", shard="shard-1", pass_name="P", instructions="brief")
            await boss("send_message", to="*", body="all hands")
            inbox, _ = await shard("read_inbox")
            bodies = [m["body"] for m in inbox["messages"]]
            assert "status?" in bodies and "all hands" in bodies
            assert all(m["sender"] == "boss" for m in inbox["messages"])
            assert any(m["kind"] != "text" for m in inbox["messages"])  # the synthesis request
            assert (await shard("read_inbox"))[0]["messages"] == []

    run(body)


def test_read_inbox_shows_each_message_once_across_sessions(core: Swarm) -> None:
    """A message is marked read only once a result showing it is returned: one left out by
    the limit or the budget comes in the next call, even from a restarted session."""
    core.register("shard", name="shard-1")
    for i in range(3):
        core.send("shard-1", f"small {i}", sender="boss")
    core.send("shard-1", "w" * 1200, sender="boss")  # with the next one, over a 500-token result
    core.send("shard-1", "x" * 1200, sender="boss")
    core.send("shard-1", "big " + "y" * 5000, sender="boss")  # over the budget alone

    def server() -> Any:
        return build_server(core, role="shard", name="shard-1", budget_tokens=500)

    async def body() -> None:
        seen: list[str] = []
        # The first server is left open, as one that crashed would be (a clean close
        # deregisters the agent, and its inbox with it).
        async with connect(server(), budget_tokens=500) as first:
            head, _ = await first("read_inbox", limit=2)
            assert [m["body"] for m in head["messages"]] == ["small 0", "small 1"]
            assert "read_inbox" in head["next"]
            seen += [m["body"] for m in head["messages"]]
            head, _ = await first("read_inbox")  # cut by the budget: the rest is not marked
            assert [m["body"] for m in head["messages"]] == ["small 2", "w" * 1200]
            seen += [m["body"] for m in head["messages"]]
            await read_the_rest(seen)
        big = "big " + "y" * 5000
        assert seen == ["small 0", "small 1", "small 2", "w" * 1200, "x" * 1200, big]

    async def read_the_rest(seen: list[str]) -> None:
        async with connect(server(), budget_tokens=500) as shard:  # the restarted server
            while True:
                result = await shard.raw("read_inbox")
                head = json.loads(result.content[0].text)  # type: ignore[union-attr]
                if "next_cursor" in head:  # the big message, in pages
                    text = result.content[1].text  # type: ignore[union-attr]
                    cursor = head["next_cursor"]
                    while cursor:
                        header, page = await shard("next_page", cursor=cursor)
                        text += page or ""
                        cursor = header.get("next_cursor")
                    seen += [m["body"] for m in json.loads(text)["messages"]]
                    continue
                if not head["messages"]:
                    break
                seen += [m["body"] for m in head["messages"]]

    run(body)


def test_two_sessions_of_one_agent_never_both_get_a_message(core: Swarm) -> None:
    """Two sessions of one agent (two servers under one --name) read its inbox at the same
    moment: every message reaches one of them, none both (the core's acknowledged read takes
    what a result shows; a peek, then marking read, let both show it)."""
    core.register("shard", name="shard-1")
    sent = [core.send("shard-1", f"m{i}", sender="boss").id for i in range(3)]
    inbox = core.inbox
    both = threading.Barrier(2, timeout=10)

    def in_step(*args: Any, **kwargs: Any) -> Any:
        got = inbox(*args, **kwargs)
        both.wait()  # each read returns once the other session's has: they interleave
        return got

    async def body() -> None:
        seen: list[list[str]] = []
        async with (
            connect(build_server(core, role="shard", name="shard-1")) as first,
            connect(build_server(core, role="shard", name="shard-1")) as second,
        ):
            await first("swarm_status")  # both registered before the race
            await second("swarm_status")

            async def read(session: Any) -> None:
                head, _ = await session("read_inbox")
                seen.append([m["id"] for m in head["messages"]])

            core.inbox = in_step
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(read, first)
                    tg.start_soon(read, second)
            finally:
                core.inbox = inbox
            got = seen[0] + seen[1]
            assert sorted(got) == sorted(sent), seen  # each once, none lost
            assert (await first("read_inbox"))[0]["messages"] == []

    run(body)


def test_init_prompts_are_served(core: Swarm) -> None:
    prompts = pytest.importorskip("redis_swarm._prompts")

    async def body() -> None:
        async with connect(build_server(core, role="worker"), client_name="claude-code") as worker:
            result = await worker.client.get_prompt("worker_init", {"queue": "if.search"})
            text = "".join(getattr(m.content, "text", "") for m in result.messages)
            assert "claim_task" in text and "if.search" in text
            assert "--client claude" in text  # the variant for the client that asked
            result = await worker.client.get_prompt("worker_init", {"client": "generic"})
            text = "".join(getattr(m.content, "text", "") for m in result.messages)
            assert "--client claude" not in text
            # Every client `swarm mcp install` sets up has its prompt (Gemini CLI's included);
            # an unknown one is told to the client, as invalid params, with the choices.
            result = await worker.client.get_prompt("worker_init", {"client": "gemini"})
            text = "".join(getattr(m.content, "text", "") for m in result.messages)
            assert "mcp install --client gemini --role worker --write" in text
            with pytest.raises(MCPError) as refused:
                await worker.client.get_prompt("worker_init", {"client": "emacs"})
            assert refused.value.code == INVALID_PARAMS
            assert "unknown client 'emacs'" in refused.value.message
            assert all(c in refused.value.message for c in prompts.CLIENTS)
            # a queue that cannot exist gets no prompt, as swarm prompt worker refuses it
            with pytest.raises(MCPError) as refused:
                await worker.client.get_prompt("worker_init", {"queue": "bad queue"})
            assert refused.value.code == INVALID_PARAMS and "' '" in refused.value.message
        async with connect(
            build_server(core, role="shard"), client_name="gemini-cli-mcp-client"
        ) as gemini:
            result = await gemini.client.get_prompt("shard_init", {})
            text = "".join(getattr(m.content, "text", "") for m in result.messages)
            assert "`/worker_init`" in text and "edits `.gemini/settings.json`" in text

    run(body)
    assert set(prompts.MCP_TOOLS) <= set(tool_names("all"))


def test_a_prompt_the_role_lacks_is_invalid_params_naming_its_prompts(core: Swarm) -> None:
    """prompts/get of another role's prompt (or of none) says which prompts this server has,
    as invalid params (-32602), where the SDK answered error code 0."""

    async def body() -> None:
        async with connect(build_server(core, role="worker")) as worker:
            for name in ("shard_init", "worker_prompt"):
                with pytest.raises(MCPError) as refused:
                    await worker.client.get_prompt(name, {})
                assert refused.value.code == INVALID_PARAMS, refused.value
                said = refused.value.message
                assert f"no prompt {name!r} here" in said and "offers worker_init" in said
            with pytest.raises(MCPError) as refused:
                await worker.client.get_prompt("shard_init", {})
            assert "--role shard (or all)" in refused.value.message
        async with connect(build_server(core, role="all")) as anyone:
            with pytest.raises(MCPError) as refused:
                await anyone.client.get_prompt("boss_init", {})
            assert refused.value.code == INVALID_PARAMS
            assert "worker_init, shard_init, coordinator_init" in refused.value.message

    run(body)


def test_a_synthesis_citing_nothing_is_refused_as_the_cli_refuses_it(core: Swarm) -> None:
    async def body() -> None:
        async with connect(build_server(core, role="shard", name="shard-1")) as shard:
            message = await shard.error("synthesize", pass_name="P", text="bad", sources=[])
            assert "a synthesis cites the findings it rests on" in message
            assert "list_findings" in message

    run(body)
    assert core.syntheses().items == ()
