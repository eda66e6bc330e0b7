"""``swarm hook SubagentStop`` for a subagent holding two tasks, one of which its lease loses
to another worker (which completes it) between the hook's look at what the subagent holds
and its report: the other is reported, the lost one said as not settled here, and the hook
answers with exit 0. It exited 1 on the first refusal, leaving every task after it leased
to a subagent that is gone."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import Swarm, Task, TaskStatus
from redis_swarm._hooks import HookOptions, agent_for, events
from redis_swarm._hooks.events import subagent_for
from redis_swarm._lease_tokens import remember

from ._cli import Cli
from .test_hooks_big_finding import SESSION, subagent_stop
from .test_hooks_big_finding import swarm as swarm  # (the fixture)


def test_a_task_lost_to_another_worker_does_not_stop_the_others_being_reported(
    redis_url: str, swarm_home: Path, swarm: Swarm, monkeypatch: pytest.MonkeyPatch
) -> None:
    me = agent_for({"session_id": SESSION}, HookOptions(client="claude"))
    worker = subagent_for(me, "sub-1")
    lost_id = swarm.post_task("q", "short lease", lease_s=1).id
    kept_id = swarm.post_task("q2", "long lease").id
    for queue in ("q", "q2"):
        task = swarm.claim(queue, worker=worker)
        assert task is not None and task.token is not None
        remember(swarm.settings, worker, task.id, task.token)
    time.sleep(1.2)  # (the short lease ended, the task not taken yet: still listed as held)
    listed = events.held_tasks

    def held_then_lost(*args: Any, **kwargs: Any) -> list[Task]:
        held = listed(*args, **kwargs)
        other = swarm.claim("q", worker="other-worker")  # (and completes it, meanwhile)
        assert other is not None and other.id == lost_id and other.token is not None
        swarm.report(other.id, other.token, {"summary": "done by the other"})
        return held

    monkeypatch.setattr(events, "held_tasks", held_then_lost)

    cli = Cli(redis_url, env={"SWARM_AGENT": "", "SWARM_HOME": str(swarm_home)})
    said = subagent_stop(cli, "claude", json.dumps({"summary": "found it"}))["systemMessage"]
    assert f"{lost_id} not settled here: " in said, said
    assert f"{kept_id} reported" in said, said
    kept = swarm.get_task(kept_id)
    assert kept.status is TaskStatus.COMPLETED
    assert [f.summary for f in swarm.findings().items if f.task_id == kept_id] == ["found it"]
    assert swarm.get_task(lost_id).status is TaskStatus.COMPLETED  # (the other's finding)
