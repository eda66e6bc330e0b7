"""What a hostile worker or a careless operator can feed the CLI: stored text with terminal
escapes (shown escaped in every human output), JSON nested 10,000 levels deep (a one-line
error, never a RecursionError), an empty SWARM_NAME (refused, not silently ``default``)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from redis_swarm import ConfigError, Swarm, SwarmMemoryShard, TaskStatus
from redis_swarm._printable import printable
from redis_swarm._runner import OutcomeStatus
from redis_swarm.cli._run import _print_outcome

from ._cli import Cli

# OSC 52 (write the clipboard), clear the screen, an 8-bit CSI, a bell, a right-to-left override.
CLIPBOARD = "\x1b]52;c;cm0gLXJmIH4=\x07"
HOSTILE = f"fine{CLIPBOARD}\x1b[2J\x9b31m\r\u202eevil"
# Any control character but newline and tab, any bidirectional override.
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def test_printable_escapes_c0_c1_and_overrides_and_keeps_layout() -> None:
    assert printable("a\tb\nc") == "a\tb\nc"
    assert printable(TaskStatus.PENDING) == "pending" and printable(3) == "3"
    shown = printable(HOSTILE)
    assert not CONTROL.search(shown)
    assert shown.startswith("fine\\x1b]52;c;") and "\\x07" in shown and "\\x9b31m" in shown
    assert "\\x0d" in shown and "\\u202eevil" in shown


def test_stored_escapes_are_shown_escaped(cli: Cli, redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        swarm.register("shard", name="s1", metadata={"note": HOSTILE})
        # (a new pass name with control characters is refused: test_edge_fixes_pass_names.py)
        task = swarm.post_task("q", HOSTILE, pass_name="P", parent="s1")
        claimed = swarm.claim("q", worker="w1")
        assert claimed is not None
        finding = swarm.report(claimed.id, claimed.token, {"summary": HOSTILE, "details": HOSTILE})
        swarm.post_task("q", "dies", max_attempts=1)
        doomed = swarm.claim("q", worker="w1")
        assert doomed is not None
        swarm.fail(doomed.id, doomed.token, HOSTILE, retry=False)
        synthesis = swarm.synthesize("s1", "P", HOSTILE, [finding.id])
        swarm.send("s1", HOSTILE, sender="w1")
        swarm.publish_context("s1", "text\n", source="notes.md")
    outputs = {
        "findings": cli("findings"),
        "finding": cli("findings", finding.id),
        "task list": cli("task", "list"),
        "task show": cli("task", "show", task.id),
        "dead task": cli("task", "show", doomed.id),
        "status": cli("status", "--pass", HOSTILE),
        "status of a pass never posted to": cli("status", "--pass", HOSTILE + "2"),
        "agents": cli("agents"),
        "events": cli("events"),
        "synth list": cli("synth", "list"),
        "synth show": cli("synth", "show", synthesis.id),
        "inbox": cli("msg", "inbox", "s1"),
        "contexts": cli("context", "list"),
        "watch": cli("watch", "--once"),
    }
    for name, out in outputs.items():
        assert not CONTROL.search(out.stdout + out.stderr), (name, out)
    assert "\\x1b]52;c;" in outputs["findings"].stdout
    assert "\\x1b]52;c;" in outputs["watch"].stdout
    assert "fine" in outputs["task list"].stdout and "\\x9b31m" in outputs["task show"].stdout


def test_context_text_is_escaped_on_a_terminal_and_exact_in_a_pipe(
    cli: Cli, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        swarm.publish_context("s1", f"one\n{HOSTILE}\nthree\n", source="notes.md")
    piped = cli("context", "search", "s1", "fine").stdout
    assert CLIPBOARD in piped and CLIPBOARD in cli("context", "read", "s1").stdout
    monkeypatch.setattr("redis_swarm.cli._common.on_terminal", lambda: True)
    for args in (("context", "search", "s1", "fine"), ("context", "read", "s1")):
        shown = cli(*args).stdout
        assert "fine\\x1b]52;c;" in shown and not CONTROL.search(shown), args


def test_run_output_is_shown_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    outcome = SimpleNamespace(
        status=OutcomeStatus.FAILED,
        task_id="t-1",
        worker="w",
        duration_s=1.0,
        finding_id=None,
        detail=HOSTILE,
    )
    _print_outcome(Any, outcome, None)  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert "\\x1b]52" in out and not CONTROL.search(out)


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize(
    "args",
    [
        ("task", "post", "q", "d", "--data", "@{file}"),
        ("task", "report", "t-0000", "--token", "1", "--finding", "@{file}"),
        ("msg", "send", "a1", "hello", "--data", "@{file}"),
        ("agents", "register", "a1", "--role", "worker", "--metadata", "{deep}"),
        ("task", "post", "q", "--jsonl", "{jsonl}"),
    ],
    ids=["--data", "--finding", "msg send --data", "--metadata", "--jsonl"],
)
def test_json_10000_levels_deep_is_a_one_line_error(
    cli: Cli, tmp_path: Path, args: tuple[str, ...]
) -> None:
    deep = _deep(10_000)
    file = tmp_path / "deep.json"
    file.write_text(deep)
    jsonl = tmp_path / "tasks.jsonl"
    jsonl.write_text('{"queue": "q", "description": "fine"}\n' + deep + "\n")
    argv = [a.format(file=file, deep=deep, jsonl=jsonl) for a in args]
    out = cli(*argv, expect=2)
    assert "Traceback" not in out.stderr and "RecursionError" not in out.stderr
    assert "nested 10000 levels deep; the limit is 200" in out.stderr, out
    if "--jsonl" in args:
        assert "line 2 is nested" in out.stderr


def test_an_empty_swarm_name_is_refused(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    out = cli("status", env={"SWARM_NAME": ""}, expect=2)  # a bad option: docs/cli.md
    assert "SWARM_NAME is set but empty" in out.stderr and "Traceback" not in out.stderr
    out = cli("--swarm", "", "status", expect=2)  # so is an empty --swarm
    assert "swarm name" in out.stderr
    monkeypatch.setenv("SWARM_NAME", "")
    with pytest.raises(ConfigError, match="SWARM_NAME is set but empty"):
        SwarmMemoryShard(url=cli.url)
