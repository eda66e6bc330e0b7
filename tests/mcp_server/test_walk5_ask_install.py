"""Walkthrough 5 of docs/mcp.md: an MCP ask whose asker leaves withdraws the question it posted
(never one its dedupe key met)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner

from redis_swarm import Swarm, SwarmError
from redis_swarm._keys import ask_queue
from redis_swarm.cli import main
from redis_swarm.mcp_server import build_server

from .._raw import raw_client
from ._helpers import Tools, connect, eventually
from .test_install import _fake_claude


def _open_questions(core: Swarm, owner: str) -> list[Any]:
    return [t for t in core.list_tasks(ask_queue(owner)).items if t.status.value == "pending"]


async def _asked_then_left(
    core: Swarm,
    owner: str,
    leave: Callable[[Tools, anyio.CancelScope], Awaitable[None]],
    **args: Any,
) -> None:
    """A worker's ``ask`` of ``owner``'s shard (120 s), in flight once a question is pending
    in its queue; then ``leave`` ends it (the request cancelled, or the session closed),
    the ask still waiting (it returned nothing)."""
    scope = anyio.CancelScope()
    async with (
        connect(build_server(core, role="worker")) as worker,
        anyio.create_task_group() as tg,
    ):

        async def asking() -> None:
            with scope:
                ended = await worker.raw("ask", target=owner, question="Who signs?",
                                         timeout_s=120, **args)  # fmt: skip
                raise AssertionError(f"the ask ended before it was left: {ended}")

        tg.start_soon(asking)
        await eventually(lambda: bool(_open_questions(core, owner)), 10)
        await leave(worker, scope)


async def _cancel(_worker: Tools, scope: anyio.CancelScope) -> None:
    scope.cancel()


async def _next_question(core: Swarm, owner: str) -> dict[str, Any]:
    async with connect(build_server(core, role="shard", name=owner)) as shard:
        got, _ = await shard("next_question")
        return got


def test_a_cancelled_ask_withdraws_its_question(core: Swarm) -> None:
    core.publish_context("shard-auth", "a big book\n", source="book.md")

    async def body() -> None:
        with anyio.fail_after(30):
            await _asked_then_left(core, "shard-auth", _cancel)
            (question,) = core.list_tasks(ask_queue("shard-auth")).items
            await eventually(lambda: core.get_task(question.id).status.value == "cancelled")
            got = await _next_question(core, "shard-auth")
            assert got["question"] is None, got

    anyio.run(body)


def test_an_ask_whose_session_closes_withdraws_its_question(core: Swarm) -> None:
    core.publish_context("shard-gone", "a big book\n", source="book.md")

    async def body() -> None:
        with anyio.fail_after(30):
            # The session closes with the ask in flight (the task group's cancel: the client
            # gone), not its request first.
            async def close(_worker: Tools, _scope: anyio.CancelScope) -> None:
                raise _Closed

            try:
                await _asked_then_left(core, "shard-gone", close)
            except BaseException as exc:  # (an exception group, from the task group)
                if not _holds(exc, _Closed):
                    raise
            (question,) = core.list_tasks(ask_queue("shard-gone")).items
            await eventually(lambda: core.get_task(question.id).status.value == "cancelled")
            got = await _next_question(core, "shard-gone")
            assert got["question"] is None, got

    anyio.run(body)


class _Closed(Exception):
    """Raised in a session's body: the session ends."""


def _holds(exc: BaseException, kind: type[BaseException]) -> bool:
    if isinstance(exc, kind):
        return True
    return any(_holds(e, kind) for e in getattr(exc, "exceptions", ()))  # (a group)


def test_a_cancelled_ask_leaves_a_question_its_dedupe_key_met(core: Swarm) -> None:
    """Another asker posted the question with the key; the MCP ask met it, then was cancelled:
    the question stays open for its poster, which gets the answer."""
    core.publish_context("shard-met", "a big book\n", source="book.md")
    got: dict[str, Any] = {}

    def poster() -> None:
        got["answer"] = core.ask("shard-met", "Who signs?", timeout_s=60, dedupe_key="signer")

    thread = threading.Thread(target=poster, daemon=True)
    thread.start()

    async def body() -> None:
        with anyio.fail_after(40):
            await eventually(lambda: bool(_open_questions(core, "shard-met")), 10)

            async def later(worker: Tools, scope: anyio.CancelScope) -> None:
                await anyio.sleep(1.5)  # (the ask meets the question meanwhile)
                scope.cancel()

            await _asked_then_left(core, "shard-met", later, dedupe_key="signer")
            await anyio.sleep(1)  # (a withdrawal, were there one, lands meanwhile)
            # One question (the ask met it, posted none), still open.
            (question,) = core.list_tasks(ask_queue("shard-met")).items
            assert core.get_task(question.id).status.value == "pending"
            async with connect(build_server(core, role="shard", name="shard-met")) as shard:
                taken, _ = await shard("next_question")
                assert taken["question_id"] == question.id, taken
                await shard("answer_question", question_id=question.id, text="The mayor.")
            await anyio.to_thread.run_sync(thread.join, 20)

    anyio.run(body)
    assert got["answer"].text == "The mayor."


# --- swarm mcp install --client claude --http: the token stays a reference


def test_claude_http_write_keeps_the_token_out_of_argv_and_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--write gave `claude mcp add` the token itself (on its argv, then in ~/.claude.json),
    saying nothing; now the ${VAR} reference Claude Code expands as it connects, and
    --token-in-config (the old way) warns as --url-in-config does."""
    monkeypatch.setenv("HOME", str(tmp_path))
    log = _fake_claude(tmp_path, monkeypatch)
    args = ["mcp", "install", "--client", "claude", "--write", "--http",
            "http://127.0.0.1:18766/mcp", "--server-name", "swarmhttp"]  # fmt: skip
    done = CliRunner().invoke(main, args, env={"SWARM_MCP_TOKEN": "t0ken-of-16-chars"})
    assert done.exit_code == 0, done.output
    added = log.read_text().splitlines()[-1]
    assert "t0ken-of-16-chars" not in added, added
    assert added.endswith("--header Authorization: Bearer ${SWARM_MCP_TOKEN}"), added
    assert "Claude Code expands from its environment" in done.stderr, done.stderr
    clear = CliRunner().invoke(
        main, [*args, "--token-in-config"], env={"SWARM_MCP_TOKEN": "t0ken-of-16-chars"}
    )
    assert clear.exit_code == 0, clear.output
    assert log.read_text().splitlines()[-1].endswith("Bearer t0ken-of-16-chars")
    assert "(~/.claude.json) now holds the bearer token (SWARM_MCP_TOKEN) in clear" in (
        clear.stderr
    ), clear.stderr
    assert "command line of `claude mcp add`" in clear.stderr
    printed = CliRunner().invoke(main, args[:4] + args[5:], env={"SWARM_MCP_TOKEN": "x" * 16})
    assert "--header 'Authorization: Bearer ${SWARM_MCP_TOKEN}'" in printed.stdout, printed


def test_url_in_config_warns_in_the_same_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    log = _fake_claude(tmp_path, monkeypatch)
    with_password = redis_url.replace("redis://", "redis://:pw@")
    done = CliRunner().invoke(
        main, ["mcp", "install", "--client", "claude", "--write", "--url-in-config"],
        env={"SWARM_URL": with_password},
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "now holds the swarm's password in clear; it was also on the command line of" in (
        done.stderr
    ), done.stderr
    assert log.read_text()


def test_a_cancelled_ask_that_met_a_question_stops_waiting(core: Swarm, redis_url: str) -> None:
    """The wait a cancelled ask leaves behind ends within a second or so (the core's
    ``stop``) even when the question is another asker's: it held a thread and a blocked
    Redis connection until the question settled, so asks cancelled again and again could
    fill the server's threads. The question stays open for its poster."""
    core.publish_context("shard-met2", "a big book\n", source="book.md")
    poster = threading.Thread(target=lambda: _ask_quietly(core, "shard-met2"), daemon=True)
    poster.start()

    def waiting_reads() -> int:  # (the asks' XREAD BLOCKs on the event log)
        with raw_client(redis_url) as raw:
            return sum(1 for c in raw.client_list() if c.get("cmd") == "xread")

    async def body() -> None:
        with anyio.fail_after(40):
            await eventually(lambda: bool(_open_questions(core, "shard-met2")), 10)

            async def later(worker: Tools, scope: anyio.CancelScope) -> None:
                await eventually(lambda: waiting_reads() == 2, 10)  # (the poster's and this)
                scope.cancel()

            await _asked_then_left(core, "shard-met2", later, dedupe_key="signer")
            await anyio.sleep(2.5)  # (a slice of the wait ends meanwhile)
            seen = []
            for _ in range(30):
                seen.append(waiting_reads())
                await anyio.sleep(0.05)
            assert max(seen) <= 1, seen  # the poster's wait alone
            (question,) = core.list_tasks(ask_queue("shard-met2")).items
            assert core.get_task(question.id).status.value == "pending"

    anyio.run(body)
    core.cancel(core.list_tasks(ask_queue("shard-met2")).items[0].id)
    poster.join(20)


def _ask_quietly(core: Swarm, owner: str) -> None:
    """Another asker's ask under the key ``signer``, cancelled at the test's end."""
    with contextlib.suppress(SwarmError):
        core.ask(owner, "Who signs?", timeout_s=60, dedupe_key="signer")
