"""What the MCP tools still got wrong after the fifth walkthrough.

1. claim_task, renew_task, post_task and post_tasks took a lease as whole seconds from 1,
   where the Python API, ``--jsonl`` and the CLI's ``--lease`` take the core's range (a
   fraction of a second too, from ``MIN_LEASE_S`` to ``MAX_LEASE_S``);
2. search_context measured its hits against the budget in Python's characters, where the
   clients count UTF-16 units (an emoji is two): a page of emoji was twice its budget;
3. a worker whose task's shard holds a context that is not text (a PDF) was told to search
   and read it, and get_context said it was not UTF-8 ("fix that argument"), where the
   prompts say its media type, its size and the command that writes it to a file.

And what a later walkthrough found:

4. a refused answer_question (an empty text, one too large) let the session's question go:
   the answer made again, fixed, was refused (LeaseLost), the lease no longer renewed, and
   the asker timed out; the lease is now let go as report_finding lets it go, only when the
   answer was taken or the question settled first;
5. any server started under an agent id (``SWARM_AGENT=alice claude mcp list``) took the
   agent's kept leases (``swarm task claim --worker alice``, the hooks') as it opened and
   released them as it closed: the task went back to its queue, its token deleted. A lease
   found kept is now left, at close, leased and its token kept, as found;
6. ``read_inbox(message_id=...)`` of an unknown id said the CLI's command and a hint about
   queues; ``swarm ask --keep`` said to read the answer "with swarm findings", naming no id;
   ``list_findings`` of a misspelt pass listed nothing where wait_for_pass and swarm_status
   refuse it naming the passes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from redis_swarm import Limits, NotFound, Settings, Swarm, TaskStatus
from redis_swarm import _hints as hints
from redis_swarm import _lease_tokens as tokens
from redis_swarm._budget import client_len
from redis_swarm._keys import ask_queue
from redis_swarm._validate import MAX_LEASE_S, MIN_LEASE_S
from redis_swarm.mcp_server import build_server
from redis_swarm.mcp_server._render import TOOL_WORDS

from ._cli import Cli
from .mcp_server._helpers import SRC, connect, texts
from .test_mcp_question_lease import _others_claim
from .test_mcp_review_fixes import _call, _send


def _lease_schema(tool: Any) -> dict[str, Any]:
    """The schema of a tool's lease_s (the number's, of an optional one)."""
    schema = tool.input_schema["properties"]["lease_s"]
    if "anyOf" in schema:
        (schema,) = (s for s in schema["anyOf"] if s.get("type") != "null")
    assert isinstance(schema, dict)
    return schema


def test_the_lease_tools_take_the_cores_range_fractions_too(redis_url: str) -> None:
    core = Swarm(redis_url, swarm="test")

    async def body() -> None:
        async with connect(build_server(core, role="all", name="planner")) as agent:
            listed = {tool.name: tool for tool in (await agent.client.list_tools()).tools}
            items = listed["post_tasks"].input_schema["$defs"]["TaskInput"]
            schemas = [_lease_schema(listed[name]) for name in ("claim_task", "renew_task")]
            schemas += [_lease_schema(listed["post_task"]), items["properties"]["lease_s"]]
            for schema in schemas:
                assert schema["type"] == "number", schema
                assert (schema["minimum"], schema["maximum"]) == (MIN_LEASE_S, MAX_LEASE_S)
            posted, _ = await agent("post_task", queue="frac", description="d", lease_s=0.25)
            many, _ = await agent(
                "post_tasks", tasks=[{"queue": "frac", "description": "e", "lease_s": 2.5}]
            )
            claimed, _ = await agent("claim_task", queue="frac", lease_s=30.5)
            task_id = claimed["task"]["id"]
            assert claimed["task"]["lease_s"] == 30.5
            held = core.get_task(task_id)
            assert held.lease_deadline is not None and held.claimed_at is not None
            assert held.lease_deadline - held.claimed_at == 30_500
            before = time.time() * 1000
            renewed, _ = await agent("renew_task", task_id=task_id, lease_s=3.75)
            later = time.time() * 1000
            assert renewed["renewed"] is True
            after = core.get_task(task_id).lease_deadline
            assert after is not None and before + 3750 - 50 <= after <= later + 3750 + 50
            said = await agent.error("claim_task", queue="frac", lease_s=0)
            assert f"lease_s: must be at least {MIN_LEASE_S:g}" in said, said
            said = await agent.error("renew_task", task_id=task_id, lease_s=MAX_LEASE_S * 2)
            assert "lease_s: must be at most" in said, said
        assert core.get_task(posted["task"]["id"]).lease_s == 0.25
        assert core.get_task(many["ids"][0]).lease_s == 2.5

    try:
        anyio.run(body)
    finally:
        core.close()


def test_search_hits_fit_the_budget_as_the_clients_count_it(redis_url: str) -> None:
    core = Swarm(redis_url, swarm="test")
    # A line of 37 characters is 67 UTF-16 units: by len(), twice as many fitted.
    core.publish_context("emoji", "".join(f"needle {'🐝' * 30}\n" for _ in range(40)), source="t")

    async def body() -> None:
        server = build_server(core, role="worker", budget_tokens=500)
        budget = 500 * 4
        body_chars = budget - 1_200  # (a page's body: the budget but the header's room)
        async with connect(server, budget_tokens=500) as worker:
            head, hits = await worker("search_context", owner="emoji", pattern="needle")
            assert hits is not None and head["hits"][0] == 1
            assert client_len(hits) <= body_chars, (client_len(hits), head)
            assert 3 <= head["hits"][1] < 40 and "next_cursor" in head
            result = await worker.raw("search_context", owner="emoji", pattern="needle")
            assert sum(client_len(text) for text in texts(result)) <= budget

    try:
        anyio.run(body)
    finally:
        core.close()


def test_a_context_that_is_not_text_is_said_with_its_media_type_and_command(
    redis_url: str,
) -> None:
    core = Swarm(redis_url, swarm="test")
    # ASCII bytes: UTF-8 as it happens, yet a PDF by its media type (the one rule).
    pdf = b"%PDF-1.7 not text to an agent"
    info = core.publish_context("shard-pdf", pdf, media_type="application/pdf", source="report.pdf")
    core.post_task("work", "read the report", parent="shard-pdf")
    command = f"`swarm context get shard-pdf --version {info.version} -o <FILE>`"

    async def body() -> None:
        async with connect(build_server(core, role="worker")) as worker:
            claimed, _ = await worker("claim_task", queue="work")
            assert claimed["context"] == {
                "owner": "shard-pdf",
                "version": info.version,
                "media_type": "application/pdf",
                "size_bytes": len(pdf),
            }
            said = claimed["next"]
            assert "search_context(" not in said and "get_context(" not in said, said
            assert f"is not text: {len(pdf)} bytes of `application/pdf`" in said, said
            assert command in said and "report_finding(" in said, said
            # get_context of the task's shard (its default owner): the same, no error.
            head, text = await worker("get_context")
            assert text is None
            assert head["media_type"] == "application/pdf"
            assert head["size_bytes"] == len(pdf)
            assert command in head["next"] and "UTF-8" not in head["next"], head
            again, _ = await worker("get_context", owner="shard-pdf", version=info.version)
            assert again == head

    try:
        anyio.run(body)
    finally:
        core.close()


# --- 4. a refused answer keeps its question held

ASK_S = 12.0  # an ask of 12 s gives its question the shortest lease there is: 5 s
LEASE_S = 5.0


def test_a_refused_answer_keeps_the_question_held_and_renewed(redis_url: str) -> None:
    core = Swarm(redis_url, swarm="test")
    core.publish_context("shard-1", "notes\n3 retries\n", source="notes.md")
    got: dict[str, Any] = {}

    async def body() -> None:
        shard_server = build_server(core, role="shard", name="shard-1")
        asker_server = build_server(core, role="worker", name="asker")
        async with connect(shard_server) as shard, connect(asker_server) as asker:

            async def ask() -> None:
                got["answer"], _ = await asker(
                    "ask", target="shard-1", question="Q", timeout_s=ASK_S
                )

            async with anyio.create_task_group() as group:
                group.start_soon(ask)
                question, _ = await shard("next_question", wait_s=10)
                qid = question["question_id"]
                said = await shard.error("answer_question", question_id=qid, text="")
                assert "ValidationError: an answer must be a non-empty text" in said, said
                big = "x" * (Limits().max_finding_bytes + 1)
                said = await shard.error("answer_question", question_id=qid, text=big)
                assert "PayloadTooLarge: " in said, said[:300]
                # Past its lease: still renewed, nobody else is handed the question.
                taken = await anyio.to_thread.run_sync(_others_claim, core, "shard-1", LEASE_S + 1)
                assert taken == [], f"another answerer took {taken} while the shard held it"
                answered, _ = await shard(
                    "answer_question", question_id=qid, text="3 retries", sources=["notes.md:2"]
                )
                assert answered["answered"] and "lease_lost" not in answered, answered
                again = await shard.error("answer_question", question_id=qid, text="more")
                assert f"question {qid} was already answered" in again, again

    try:
        anyio.run(body)
        assert got["answer"]["text"] == "3 retries", got
        question = core.get_task(got["answer"]["question_id"])
        assert question.status is TaskStatus.COMPLETED and question.attempts == 1
    finally:
        core.close()


# --- 5. a server leaves the leases it found kept as it found them


def _kept_claim(redis_url: str, home: Path, queue: str) -> str:
    """``swarm task claim QUEUE --worker alice``: the task it leased (its token kept)."""
    cli = Cli(redis_url, env={"SWARM_HOME": str(home)})
    claimed = cli("task", "claim", queue, "--worker", "alice", "--json").json()
    task_id = str(claimed["id"])
    assert task_id in tokens.known(Settings.from_url(redis_url, swarm="test", home=home), "alice")
    return task_id


def _left_as_claimed(core: Swarm, task_id: str, since_ms: float) -> None:
    task = core.get_task(task_id)
    assert (task.status, task.worker, task.attempts) == (TaskStatus.CLAIMED, "alice", 1), task
    released = [
        e for e in core.events(types=["task.released"])
        if e.fields.get("task") == task_id and e.at >= since_ms
    ]  # fmt: skip
    assert released == [], released
    assert task_id in tokens.known(core.settings, "alice")


def test_a_server_opened_and_closed_leaves_a_kept_lease_leased(
    redis_url: str, swarm_home: Path
) -> None:
    """``SWARM_AGENT=alice claude mcp list``: the server starts, is initialized, exits."""
    core = Swarm(Settings.from_url(redis_url, swarm="test", home=swarm_home))
    core.post_task("audit", "audit it", lease_s=600)
    task_id = _kept_claim(redis_url, swarm_home, "audit")
    started = time.time() * 1000
    env = {**os.environ, "PYTHONPATH": SRC, "SWARM_URL": redis_url, "SWARM_NAME": "test",
           "SWARM_HOME": str(swarm_home), "SWARM_AGENT": "alice"}  # fmt: skip
    argv = [sys.executable, "-m", "redis_swarm", "mcp", "--role", "worker"]
    try:
        with subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, env=env,
        ) as proc:  # fmt: skip
            info = {"name": "claude-code", "version": "0"}
            init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": info}
            _call(proc, 1, "initialize", init)
            _send(proc, {"jsonrpc": "2.0", "method": "notifications/initialized"})
            held = _call(proc, 2, "tools/call", {"name": "swarm_status", "arguments": {}})
            assert json.loads(held["content"][0]["text"])["holding"] == [task_id], held
            assert proc.stdin is not None
            proc.stdin.close()  # (the client is done: the server closes its session, exits)
            assert proc.wait(30) == 0
        _left_as_claimed(core, task_id, started)
        # ...so the process that claimed it still reports it with its kept token.
        cli = Cli(redis_url, env={"SWARM_HOME": str(swarm_home)})
        cli("task", "report", task_id, "--worker", "alice", "--summary", "audited")
        assert core.get_task(task_id).status is TaskStatus.COMPLETED
    finally:
        core.close()


def test_a_lease_found_kept_is_left_at_close_and_held_again_at_the_next_start(
    redis_url: str, swarm_home: Path
) -> None:
    """The crash-restart case: a server started again holds the lease it finds kept and
    settles it without a token; closed before that, it leaves the lease to the next start.
    What the session claimed itself is released at its close, as before."""
    core = Swarm(Settings.from_url(redis_url, swarm="test", home=swarm_home))
    core.post_task("audit", "audit it", lease_s=600)
    core.post_task("mine", "claimed by the session", lease_s=600)
    task_id = _kept_claim(redis_url, swarm_home, "audit")
    started = time.time() * 1000

    async def session(report: bool) -> str | None:
        server = build_server(core, role="worker", name="alice", keep_tokens=True)
        async with connect(server) as alice:
            status, _ = await alice("swarm_status")
            assert status["holding"] == [task_id], status
            if report:
                done, _ = await alice("report_finding", task_id=task_id, summary="audited")
                assert done["completed"] is True, done
                return None
            claimed, _ = await alice("claim_task", queue="mine")
            return str(claimed["task"]["id"])

    try:
        own = anyio.run(session, False)
        _left_as_claimed(core, task_id, started)
        assert own is not None and core.get_task(own).status is TaskStatus.PENDING
        assert own not in tokens.known(core.settings, "alice")
        anyio.run(session, True)
        assert core.get_task(task_id).status is TaskStatus.COMPLETED
        assert task_id not in tokens.known(core.settings, "alice")
    finally:
        core.close()


# --- 6. hints in the words of their face; a misspelt pass refused by list_findings


def test_an_unknown_message_id_is_said_in_tool_words_once(redis_url: str) -> None:
    core = Swarm(redis_url, swarm="test")

    async def body() -> None:
        async with connect(build_server(core, role="worker")) as agent:
            said = await agent.error("read_inbox", message_id="m-nope")
        assert "NotFound: message m-nope is unknown" in said, said
        assert "swarm msg" not in said and "swarm_status" not in said, said
        assert said.count("check the id") == 1, said
        assert said.endswith(TOOL_WORDS[hints.CHECK_MESSAGE_ID]), said

    try:
        anyio.run(body)
    finally:
        core.close()
    out = Cli(redis_url)("msg", "status", "m-nope", expect=1)
    assert hints.CHECK_MESSAGE_ID in out.stderr, out  # (the CLI's own words)


def test_a_kept_question_names_the_commands_that_read_its_answer(redis_url: str) -> None:
    cli = Cli(redis_url)
    with Swarm(redis_url, swarm="test") as core:
        core.publish_context("shard-1", "one line\n", source="t")
        out = cli("ask", "shard-1", "kept question", "--timeout", "2", "--keep", expect=3)
        claimed = core.claim(ask_queue("shard-1"), worker="shard-1")  # (the kept question)
        assert claimed is not None
        said = f"(swarm task show {claimed.id}): swarm findings FINDING_ID prints its text"
        assert said in out.stderr, out
        # Both run as said, once the question is answered.
        core.answer(claimed, claimed.token, "the answer, kept")
    finding_id = cli("task", "show", claimed.id, "--json").json()["finding_id"]
    assert "the answer, kept" in cli("findings", finding_id).stdout


def test_list_findings_refuses_a_misspelt_pass_as_wait_for_pass_does(redis_url: str) -> None:
    core = Swarm(redis_url, swarm="test")
    core.post_task("q", "a task of the pass", pass_name="Pass 1")

    async def body() -> None:
        async with connect(build_server(core, role="coordinator")) as agent:
            listed = await agent.error("list_findings", pass_name="nope")
            waited = await agent.error("wait_for_pass", pass_name="nope", timeout_s=1)
            status = await agent.error("swarm_status", pass_name="nope")
            # (each as the SDK says a tool's error: "Error executing tool NAME: ...")
            # (the same words, but for what there is not to do: list, or wait)
            for said in (listed, waited):
                assert 'NotFound: no task has ever been posted to pass "nope": ' in said, said
            assert '"nope": no finding to list. Check its name' in listed, listed
            assert '(the passes: "Pass 1"; swarm_status lists them)' in listed, listed
            assert '(the passes: "Pass 1"' in status, status
            # A pass with tasks and no finding yet lists none, as before.
            none, _ = await agent("list_findings", pass_name="Pass 1")
            assert none["findings"] == [] and none["count"] == 0, none

    try:
        anyio.run(body)
        # The core lists nothing unless asked to refuse (the seed's and the views' callers).
        assert core.findings(pass_name="nope").items == ()
        with pytest.raises(NotFound, match="swarm status --all lists them"):
            core.findings(pass_name="nope", refuse_unknown_pass=True)
    finally:
        core.close()
