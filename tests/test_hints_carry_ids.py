"""A hint that names a command taking an id says the id where the error knows it: the CLI's
command copies as is (it said ``swarm task show ID``), and the MCP server and A2A say the
same id in their own words (``_hints.said_of`` / ``_hints.reworded``)."""

from __future__ import annotations

import re
import shlex
import threading
import time
from collections.abc import Callable

import pytest

from redis_swarm import Swarm, _hints
from redis_swarm._errors import InvalidState, NotFound, ValidationError
from redis_swarm.a2a_server._words import A2A_WORDS, in_a2a_words
from redis_swarm.mcp_server._render import TOOL_WORDS, tool_error

from ._cli import Cli

_DIED = re.compile(r"question (t-[A-Za-z0-9._-]+) to 'shard-1' died unanswered")


def _fail_the_next_question(swarm: Swarm) -> None:
    """Claim the question once it is posted and fail it for good (no answerer can answer)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        task = swarm.claim("ask.shard-1", worker="answerer")
        if task is not None:
            swarm.fail(task.id, task.token, "no answer here", retry=False)
            return
        time.sleep(0.05)


def _asked_as_it_dies(swarm: Swarm, ask: Callable[[], object]) -> None:
    killer = threading.Thread(target=_fail_the_next_question, args=(swarm,), daemon=True)
    killer.start()
    try:
        ask()
    finally:
        killer.join(20)


def test_the_cli_names_the_question_that_died_in_a_command_to_copy(
    cli: Cli, redis_url: str
) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        swarm.publish_context("shard-1", "one line\n", source="t")
        said: list[str] = []
        _asked_as_it_dies(
            swarm,
            lambda: said.append(
                cli("ask", "shard-1", "doomed?", "--timeout", "20", expect=None).stderr
            ),
        )
    stderr = said[0]
    found = _DIED.search(stderr)
    assert found is not None, stderr
    command = f"swarm task show {found[1]}"
    assert f"check its answerers ({command}), then ask again" in stderr, stderr
    assert "task show ID" not in stderr
    # The command, copied as is, shows the question that died.
    shown = cli.json(*shlex.split(command)[1:])
    assert shown["id"] == found[1] and shown["status"] == "dead"


def test_mcp_and_a2a_say_the_id_of_the_question_that_died_their_way(redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        swarm.publish_context("shard-1", "one line\n", source="t")
        caught: list[InvalidState] = []

        def ask() -> None:
            with pytest.raises(InvalidState) as exc:
                swarm.ask("shard-1", "doomed?", timeout_s=20)
            caught.append(exc.value)

        _asked_as_it_dies(swarm, ask)
    error = caught[0]
    found = _DIED.search(str(error))
    assert found is not None, error
    qid = found[1]
    assert f"(swarm task show {qid})" in str(error)  # (the core's words: the CLI's)
    mcp = str(tool_error(error))
    assert f"check its answerers (the swarm's operator can show task {qid}), then" in mcp, mcp
    a2a = in_a2a_words(str(error))
    assert f"check its answerers (the swarm's operator can show task {qid}), then" in a2a, a2a
    for message in (mcp, a2a):
        assert "swarm task" not in message and " ID" not in message, message


def test_each_face_says_a_hint_with_the_id_it_was_given() -> None:
    """A hint said with an id keeps that id in every face's words; said without one (of many
    tasks), it keeps ID; a hint that takes none is reworded as before."""
    for hint in (_hints.SHOW_TASK, _hints.CANCEL_TASK):
        said = f"of t-01ab.c_d: {_hints.said_of(hint, 't-01ab.c_d')}; of others: {hint}."
        assert "ID" not in _hints.said_of(hint, "t-01ab.c_d")
        for words in (TOOL_WORDS, A2A_WORDS):
            own = words[hint]
            assert "ID" in own  # (where the id goes)
            assert _hints.reworded(said, words) == (
                f"of t-01ab.c_d: {_hints.said_of(own, 't-01ab.c_d')}; of others: {own}."
            )
    plain = f"task t-1 does not exist: {_hints.CHECK_TASK_ID}"
    assert (
        _hints.reworded(plain, TOOL_WORDS)
        == "task t-1 does not exist: " + (TOOL_WORDS[_hints.CHECK_TASK_ID])
    )


def test_reading_a_message_as_an_agent_not_registered_names_the_command_that_registers_it(
    swarm: Swarm,
) -> None:
    """message_get said only "register it", as inbox_read and message_send did before."""
    with pytest.raises(NotFound) as exc:
        swarm.get_message("ghost-3", "m-nope")
    assert str(exc.value).endswith(
        "agent ghost-3 is not registered: register it before reading its inbox "
        "(swarm agents register ghost-3 --role ROLE)"
    ), exc.value


def test_a_version_that_is_no_version_names_the_command_listing_its_owners(
    cli: Cli, redis_url: str
) -> None:
    """It said ``swarm context versions OWNER`` of the owner it was asked for."""
    with Swarm(redis_url, swarm="test") as swarm:
        swarm.publish_context("shard-1", "one line\n", source="t")
        with pytest.raises(ValidationError) as exc:
            swarm.get_context("shard-1", version="zz")
    command = "swarm context versions shard-1"
    assert f"pass the hex hash shown by {command} (at least" in str(exc.value), exc.value
    assert cli.json(*shlex.split(command)[1:])["items"][0]["owner"] == "shard-1"
    for message in (str(tool_error(exc.value)), in_a2a_words(str(exc.value))):
        assert "swarm context" not in message and "OWNER" not in message, message
    assert "returned by get_context" in str(tool_error(exc.value))


def _dead_task(swarm: Swarm) -> str:
    swarm.post_task("doomed", "a task", max_attempts=1)
    task = swarm.claim("doomed", worker="w1")
    assert task is not None
    swarm.fail(task.id, task.token, "broken")
    return task.id


def test_what_the_scripts_say_of_an_agent_or_a_dead_task_each_face_says_its_way(
    swarm: Swarm,
) -> None:
    """The scripts named `swarm agents register ghost-4 --role ROLE` (a message to an agent not
    registered, its inbox, one message of it, its heartbeat) and `swarm task requeue t-...`
    (a dead task withdrawn), commands no face reworded: an MCP agent sending to a mistyped
    name was told a CLI command. Each is a hint now, said of its id in every face's words."""
    dead = _dead_task(swarm)
    calls: list[tuple[str, Callable[[], object]]] = [
        ("ghost-4", lambda: swarm.send("ghost-4", "hello", sender="w1")),
        ("ghost-4", lambda: swarm.inbox("ghost-4")),
        ("ghost-4", lambda: swarm.get_message("ghost-4", "m-nope")),
        ("ghost-4", lambda: swarm.heartbeat("ghost-4")),
        (dead, lambda: swarm.cancel(dead)),
    ]
    for of, call in calls:
        with pytest.raises((NotFound, InvalidState)) as exc:
            call()
        core = str(exc.value)
        hint = _hints.REQUEUE_TASK if of == dead else _hints.REGISTER_AGENT
        assert _hints.said_of(hint, of) in core, core  # (the CLI's words: a command to copy)
        for message, words in (
            (str(tool_error(exc.value)), TOOL_WORDS),
            (in_a2a_words(core), A2A_WORDS),
        ):
            assert _hints.said_of(words[hint], of) in message, message
            assert "swarm agents" not in message and "swarm task" not in message, message
            assert "ROLE" not in message and " ID" not in message, message
