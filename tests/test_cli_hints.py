"""The core's hints, said in commands: an error a command prints names the command that
helps (``redis_swarm._hints``), never the Python call behind it."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest

from redis_swarm import Swarm, _hints
from redis_swarm._errors import InvalidState, ValidationError

from ._cli import Cli
from ._servers import ServerFactory

# What a hint naming the Python API looked like: a call (`agents()`) or a keyword (`regex=False`).
_PYTHON_WORDS = re.compile(r"\b[a-z_]+\(\)|\b[a-z_]+=(False|True|None)\b")


def _ask_as_its_server_dies(servers: ServerFactory) -> str:
    """What ``swarm ask`` prints when its server dies while it waits: it cannot withdraw its
    question either, and says how to cancel it later."""
    server = servers.start()
    url = f"{server.url}?retries=1"
    with Swarm(url, swarm="test") as swarm:
        swarm.publish_context("shard-1", "one line\n", source="t")

        def kill_once_asked() -> None:
            while not swarm.list_tasks(queue="ask.shard-1").items:
                time.sleep(0.01)
            time.sleep(0.2)  # (waiting for the answer)
            server.kill()

        killer = threading.Thread(target=kill_once_asked, daemon=True)
        killer.start()
        stderr = Cli(url)("ask", "shard-1", "why?", "--timeout", "60", expect=1).stderr
        killer.join(10)
    return stderr


def _cancel_of_a_dead_task(swarm: Swarm) -> str:
    """What the core says of a dead task withdrawn, not dropped (no command does: ``swarm task
    cancel`` drops it), as the CLI prints an error."""
    swarm.post_task("doomed", "a task", max_attempts=1)
    task = swarm.claim("doomed", worker="w1")
    assert task is not None
    swarm.fail(task.id, task.token, "broken")
    with pytest.raises(InvalidState) as exc:
        swarm.cancel(task.id)
    return f"error: {exc.value}"


def _report_with_no_token(cli: Cli, swarm: Swarm) -> str:
    """What a report with an attempt number for its token says."""
    task = swarm.post_task("qt", "d")
    return cli("task", "report", task.id, "--summary", "s", "--token", "7", expect=2).stderr


def test_every_hint_a_command_prints_names_a_command(
    cli: Cli, swarm: Swarm, tmp_path: Path, servers: ServerFactory
) -> None:
    swarm.publish_context("shard-1", "one line\n", source="t")
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"blob": "x" * 1_100_000}))
    said = {
        _hints.LIST_CONTEXTS: cli("context", "get", "nobody", expect=1).stderr,
        _hints.CONTEXT_VERSIONS: cli(
            "context", "get", "shard-1", "--version", "zz", expect=None
        ).stderr,
        _hints.CURRENT_VERSION: cli(
            "context", "read", "shard-1", "--version", "0" * 64, expect=1
        ).stderr,
        _hints.CHECK_AGENT_ID: cli("agents", "deregister", "ghost", expect=1).stderr
        + cli("msg", "send", "ghost", "hello", expect=1).stderr,  # (said by a Lua script)
        _hints.PUBLISH_CONTEXT: cli("task", "post", "q", "x", "--data", f"@{big}", expect=2).stderr,
        _hints.CHECK_TASK_ID: cli("task", "show", "t-nope", expect=1).stderr,
        _hints.LIST_FINDINGS: cli("findings", "f-nope", expect=1).stderr,
        _hints.LIST_PASSES: cli(
            "task", "wait", "--pass", "nope", "--timeout", "1", expect=1
        ).stderr,
        _hints.ASK_TARGETS: cli("ask", "nobody", "why?", "--timeout", "1", expect=1).stderr,
        _hints.SERVE_QUESTIONS: cli("ask", "shard-1", "why?", "--timeout", "1", expect=3).stderr,
        _hints.SHOW_TASK: cli(
            "ask", "shard-1", "why?", "--timeout", "0.2", "--keep", expect=3
        ).stderr,
        _hints.READ_FINDING: cli(
            "ask", "shard-1", "how?", "--timeout", "0.2", "--keep", expect=3
        ).stderr,
        _hints.CHECK_MESSAGE_ID: cli("msg", "status", "m-nope", expect=1).stderr,
        _hints.CANCEL_TASK: _ask_as_its_server_dies(servers),
        _hints.REGISTER_AGENT: cli("msg", "inbox", "ghost", expect=1).stderr,  # (Lua's)
        _hints.REQUEUE_TASK: _cancel_of_a_dead_task(swarm),  # (Lua's)
        _hints.KEPT_TOKEN: _report_with_no_token(cli, swarm),
    }
    regex = cli("context", "search", "shard-1", "(", "--regex", expect=None).stderr
    assert "search for plain text instead of a regex" in regex
    for hint, stderr in said.items():
        # (a hint that takes an id says the id the error is about: a command to copy as is)
        found = _hints.said_of_any(hint).findall(stderr)
        assert len(found) == stderr.count("error:") and "ID" not in found, (hint, stderr)
    # (every hint met; CITES_NONE, which no command prints, by the test below)
    assert set(said) | {_hints.CITES_NONE} == {getattr(_hints, name) for name in _hints.__all__}
    for stderr in [*said.values(), regex]:
        assert not _PYTHON_WORDS.search(stderr), stderr


def test_the_hint_no_command_prints_is_said_to_a_python_caller(cli: Cli, swarm: Swarm) -> None:
    """A synthesis citing no finding is refused by the core unless ``cites_none``: in the
    Python API's words (``_hints.CITES_NONE``), since only a Python caller meets that refusal
    as the core says it; ``swarm synth create`` asks for what it cites first, in its options,
    and each face says the core's refusal in its own words (``TOOL_WORDS``, ``A2A_WORDS``)."""
    with pytest.raises(ValidationError) as refused:
        swarm.synthesize("shard-1", "Pass 1", "nothing", [])
    assert _hints.CITES_NONE in str(refused.value) and _hints.LIST_FINDINGS in str(refused.value)
    create = ("synth", "create", "--shard", "shard-1", "--pass", "Pass 1", "--text", "t")
    stderr = cli(*create, expect=2).stderr
    assert "--cites-none" in stderr and _hints.CITES_NONE not in stderr, stderr
    assert not _PYTHON_WORDS.search(stderr), stderr
    assert swarm.syntheses().items == ()


def test_the_scripts_say_the_hints_in_the_same_words() -> None:
    """A Lua script cannot import ``_hints``: what its messages say is held to it here."""
    lua = Path(_hints.__file__).parent / "lua"
    texts = [
        text
        for path in sorted(lua.glob("*.lua"))
        for text in re.findall(r"'([^'\n]*)'", path.read_text(encoding="utf-8"))
    ]
    said = " ".join(texts)
    checks = re.findall(r"check the id with [a-z ]+", said)
    assert len(checks) >= 4  # (task_report, task_update, agent_deregister, message_send)
    for check in checks:
        assert check.strip() in (_hints.CHECK_TASK_ID, _hints.CHECK_AGENT_ID), check
    assert said.count("swarm findings") == said.count(_hints.LIST_FINDINGS) >= 1
    # A hint naming an id, said by a script of its id: the hint as is, the id spliced in; the
    # command said nowhere else (another wording, which no face would reword).
    for script, hint in (
        ("_prelude.lua", _hints.REGISTER_AGENT),
        ("task_update.lua", _hints.REQUEUE_TASK),
        ("task_update.lua", _hints.CANCEL_TASK),
    ):
        source = (lua / script).read_text(encoding="utf-8")
        assert _hints.said_of(hint, "' .. id .. '") in source, (script, hint)
        command = hint.removeprefix("(").split(" ID")[0]  # ("swarm task requeue")
        assert said.count(command) == said.count("(" + command) >= 1, command
    assert not [text for text in texts if _PYTHON_WORDS.search(text)]
