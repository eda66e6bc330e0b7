"""A task the hooks hand a session names its shard's context as ``swarm run``'s prompt does.

A task of a shard (``--parent``) handed over by a hook (loop mode's next task at ``Stop`` /
``AfterAgent``, a held task at a refused stop or at ``SessionStart``) used to give its
description, data, lease and report / fail commands and never the shard whose context it is
about, nor how to read it. Now it says what ``swarm run``'s prompt says (the one text:
``_prompts.task_context_note``, with the hook's own ``swarm`` command): the shard, the size and
version of its context and the commands that search and read it; that the shard published
none; nothing for a task of no shard. Run through ``swarm hook`` for each client.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import Swarm
from redis_swarm._budget import estimate_tokens
from redis_swarm._hooks import HookOptions, agent_for

from .test_hooks import Hooks, _claim, _context, hooks, swarm

__all__ = ["hooks", "swarm"]  # (the fixtures, used by name)

EVENTS = {"claude": ("Stop", "block"), "codex": ("Stop", "block"), "gemini": ("AfterAgent", "deny")}
CONTEXT = "".join(f"line {i}: the retry policy backs off {i} s\n" for i in range(1, 40))


def _publish(swarm: Swarm, tmp_path: Path, owner: str = "shard-1") -> Any:
    path = tmp_path / "ctx.txt"
    path.write_text(CONTEXT, encoding="utf-8")
    return swarm.publish_context(owner, path, source="ctx.txt", media_type="text/plain")


def _command(text: str) -> str:
    """The hook's own ``swarm`` command, as its report line spells it."""
    found = re.search(r"When done, report it: (.+?) task report ", text)
    assert found is not None, text
    return found.group(1)


def _stop(hooks: Hooks, client: str, session: str, *options: str) -> str:
    event, decision = EVENTS[client]
    answer = hooks(event, *options, client=client, session_id=session)
    assert answer.get("decision") == decision, answer
    return str(answer["reason"])


@pytest.mark.parametrize("client", ["claude", "codex", "gemini"])
def test_loop_next_task_names_its_shard_context_and_how_to_read_it(
    hooks: Hooks, swarm: Swarm, tmp_path: Path, client: str
) -> None:
    info = _publish(swarm, tmp_path)
    swarm.post_task("dq", "task with data", data={"q": "retry"}, parent="shard-1")
    loop = ("--queue", "dq", "--loop")
    reason = _stop(hooks, client, f"s-loop-{client}", *loop)
    assert "task with data" in reason and '"retry"' in reason
    sw = _command(reason)
    for line in (
        "The memory shard `shard-1` holds the context this task is about",
        f"{sw} context search shard-1 'words to find' --around 3 --version {info.version} -i",
        f"{sw} context read shard-1 --lines 1:200 --version {info.version}",
    ):
        assert line in reason
    # the very text swarm run's prompt gives (one place), after the report and fail commands
    from redis_swarm._prompts import task_context_note

    note = task_context_note("shard-1", info, sw)
    assert note in reason
    assert reason.index(note) > reason.index(" task fail ")


@pytest.mark.parametrize("client", ["claude", "codex", "gemini"])
def test_a_task_of_no_shard_is_unchanged_and_one_without_context_says_so(
    hooks: Hooks, swarm: Swarm, client: str
) -> None:
    me = f"s-plain-{client}"
    swarm.post_task("plain", "no parent task")
    reason = _stop(hooks, client, me, "--queue", "plain", "--loop")
    assert "no parent task" in reason
    # (no word of a shard: the words, as the reason's paths may hold "shard" themselves)
    for words in ("memory shard", "The shard's context", "published", "context search"):
        assert words not in reason
    assert "context read" not in reason
    # a shard that published no context: named, and the agent told to work without one
    swarm.post_task("orphan", "task of a shard with no context", parent="shard-2")
    reason = _stop(hooks, client, f"s-orphan-{client}", "--queue", "orphan", "--loop")
    assert "`shard-2`, which has not published a context" in reason
    assert "context search" not in reason


@pytest.mark.parametrize("client", ["claude", "codex", "gemini"])
def test_held_task_at_resume_and_refused_stop_names_its_shard_context(
    hooks: Hooks, swarm: Swarm, tmp_path: Path, client: str
) -> None:
    info = _publish(swarm, tmp_path)
    session = f"s-held-{client}"
    hooks("SessionStart", client=client, session_id=session)
    swarm.post_task("hq", "held task", parent="shard-1")
    swarm.post_task("hq", "held plain task")
    me = agent_for({"session_id": session}, HookOptions(client=client))
    first, second = _claim(swarm, "hq", me), _claim(swarm, "hq", me)
    context = _context(hooks("SessionStart", client=client, session_id=session, source="resume"))
    reason = _stop(hooks, client, session)
    for text in (context, reason):
        assert first.id in text and second.id in text
        assert f"context search shard-1 'words to find' --around 3 --version {info.version}" in (
            text
        )
        assert f"context read shard-1 --lines 1:200 --version {info.version}" in text
        # said once: for the task of the shard, not for the plain one
        assert text.count("## The shard's context") == 1


def test_the_guidance_is_held_to_the_hooks_budget(
    hooks: Hooks, swarm: Swarm, tmp_path: Path
) -> None:
    """The smallest budget: the answer stays within it, the task's report and fail commands
    whole (the guidance comes after them, so a cut takes it first, naming ``task show``)."""
    _publish(swarm, tmp_path)
    swarm.post_task("bq", "budget task " + "x" * 600, parent="shard-1")
    for client in ("claude", "gemini"):
        reason = _stop(hooks, client, f"s-budget-{client}", "--queue", "bq", "--loop",
                       "--budget", "500")  # fmt: skip
        assert estimate_tokens(reason) <= 500, len(reason)
        assert " task fail " in reason and "shard-1" in reason
        swarm.post_task("bq", "budget task " + "x" * 600, parent="shard-1")


def test_a_context_that_cannot_be_looked_up_costs_the_session_no_task(
    hooks: Hooks, swarm: Swarm, raw: Any
) -> None:
    """A shard's context stored damaged (written around redis-swarm): ``context info``
    fails, and the task claimed is handed over all the same, naming the shard, why, and the
    command that says what its context holds (the hook does not fail holding a lease the
    session is never told of)."""
    from redis_swarm._keys import Keys

    raw.hset(Keys("test").contexts, "shard-3", "not json")
    task = swarm.post_task("dq3", "task of a damaged context", parent="shard-3")
    reason = _stop(hooks, "claude", "s-damaged", "--queue", "dq3", "--loop")
    assert task.id in reason and " task report " in reason
    assert "The memory shard shard-3 holds the context this task is about" in reason
    assert "damaged" in reason and f"{_command(reason)} context info shard-3 says" in reason


@pytest.mark.parametrize("client", ["claude", "codex", "gemini"])
def test_a_session_with_its_own_mcp_server_is_told_its_reading_tools(
    hooks: Hooks, swarm: Swarm, tmp_path: Path, client: str
) -> None:
    """A session whose own stdio MCP server runs settles its task with that server's tools
    (``renew_task``, ``report_finding``): it is told to read the shard's context with them too
    (``search_context``, ``read_context_lines``, ``get_context``), not with the CLI's commands
    it may have no shell for; the names are the server's (``_mcp_names``, checked against its
    tool table)."""
    from redis_swarm._mcp_names import GET_CONTEXT, READ_CONTEXT_LINES, SEARCH_CONTEXT

    info = _publish(swarm, tmp_path)
    session = f"s-mcp-{client}"
    me = agent_for({"session_id": session}, HookOptions(client=client))
    server = {"via": "mcp", "transport": "stdio", "host": socket.gethostname()}
    swarm.register("worker", name=me, metadata={**server, "pid": os.getpid()})  # (it runs)
    swarm.post_task("mq", "task for an mcp session", parent="shard-1")
    event, decision = EVENTS[client]
    answer = hooks(event, "--queue", "mq", "--loop", client=client, session_id=session)
    assert answer.get("decision") == decision, answer
    reason = str(answer["reason"])
    assert "report_finding(task_id=" in reason  # (the session's tools settle it)
    version = f'version="{info.version}"'
    for line in (
        "The memory shard `shard-1` holds the context this task is about",
        f'{SEARCH_CONTEXT}(owner="shard-1", pattern="words to find", ignore_case=true, {version})',
        f'{READ_CONTEXT_LINES}(owner="shard-1", start=1, end=200, {version})',
        f'{GET_CONTEXT}(owner="shard-1", {version})',
    ):
        assert line in reason, (line, reason)
    assert "context search" not in reason and "context read" not in reason
