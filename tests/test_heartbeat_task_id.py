"""The task an agent says it works on (``heartbeat(..., current_task=...)``, ``swarm agents
heartbeat --task``) is a task id, checked as every task id is: the dashboard, ``swarm watch``
and ``swarm agents`` show it, so a control character in it is refused, not stored."""

from __future__ import annotations

import pytest

from redis_swarm import Swarm, ValidationError

from ._cli import Cli

ESCAPING = "t-1\x1b]52;c;aGk=\x07"  # an OSC 52 sequence: would rewrite the clipboard


def test_a_task_id_with_a_control_character_is_refused(swarm: Swarm) -> None:
    swarm.register("worker", name="w-1")
    for task_id in ("t-1", "t-01J9ZK.b_2"):  # (a heartbeat names only a task that exists)
        swarm.post_task("q", "work", task_id=task_id)
    swarm.heartbeat("w-1", current_task="t-1")
    with pytest.raises(ValidationError, match=r"task id .* contains '\\x1b': use only"):
        swarm.heartbeat("w-1", current_task=ESCAPING)
    assert swarm.get_agent("w-1").current_task == "t-1"  # the refused beat changed nothing
    with pytest.raises(ValidationError, match="task id must be a string, got int"):
        swarm.heartbeat("w-1", current_task=7)  # type: ignore[arg-type]
    assert swarm.heartbeat("w-1", current_task="t-01J9ZK.b_2").current_task == "t-01J9ZK.b_2"
    assert swarm.heartbeat("w-1", current_task="").current_task is None  # "" still clears it


def test_the_cli_refuses_it_with_a_clear_line(cli: Cli) -> None:
    cli("agents", "register", "w-1", "--role", "worker")
    posted = cli.json("task", "post", "q", "work")["id"]
    out = cli("agents", "heartbeat", "w-1", "--task", ESCAPING, expect=2)
    assert "task id" in out.stderr and "contains '\\x1b'" in out.stderr
    assert "\x1b" not in out.stderr and "\x07" not in out.stderr  # shown escaped
    assert cli.json("agents", "heartbeat", "w-1", "--task", posted)["current_task"] == posted
