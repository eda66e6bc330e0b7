"""``swarm hook SubagentStop`` given a last message whose finding the core refuses (a JSON
object over the finding limit, 256 KiB): the subagent's task is reported with a finding cut
to fit (its summary, the message's start, why the whole was refused, where the whole message
is kept on this machine: docs/live.md), the hook answers its client's JSON with exit 0 and
tells the user in ``systemMessage``; never exit 1 with the task left leased to a subagent
that is gone, nor a traceback, nor the subagent's work thrown away."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import Settings, Swarm, TaskStatus
from redis_swarm._hooks import HookOptions, agent_for
from redis_swarm._hooks.events import subagent_for
from redis_swarm._lease_tokens import remember

from ._cli import Cli

SESSION = "8c1d2e3f-4a5b-4c6d-8e7f-901a2b3c4d5e"
REFUSED = "the finding was refused: the finding is "


@pytest.fixture
def swarm(redis_url: str, swarm_home: Path) -> Iterator[Swarm]:
    with Swarm(Settings.from_url(redis_url, swarm="test", home=swarm_home)) as handle:
        yield handle


def subagent_stop(cli: Cli, client: str, message: str) -> dict[str, Any]:
    """The SubagentStop event as ``client`` sends it, answered with exit 0 and parsed."""
    payload = {
        "session_id": SESSION,
        "hook_event_name": "SubagentStop",
        "agent_id": "sub-1",
        "agent_type": "general-purpose",
        "stop_hook_active": False,
        "last_assistant_message": message,
    }
    out = cli("hook", "SubagentStop", "--client", client, input=json.dumps(payload))
    assert "Traceback" not in out.stderr
    answer: dict[str, Any] = json.loads(out.stdout)
    return answer


@pytest.mark.parametrize("client", ["claude", "codex"])
@pytest.mark.parametrize("pretty", [False, True], ids=["compact", "pretty"])
def test_a_refused_finding_is_reported_cut_and_the_message_kept_whole(
    redis_url: str, swarm_home: Path, swarm: Swarm, client: str, pretty: bool
) -> None:
    me = agent_for({"session_id": SESSION}, HookOptions(client=client))
    worker = subagent_for(me, "sub-1")
    swarm.post_task("q", "investigate", max_attempts=3)
    task = swarm.claim("q", worker=worker)
    assert task is not None and task.token is not None
    remember(swarm.settings, worker, task.id, task.token)
    finding = {"summary": "found it", "details": "D" * 300_000, "sources": ["a.py:1"]}
    message = "Done. {x} and {y}\n" + json.dumps(finding, indent=2 if pretty else None)
    cli = Cli(redis_url, env={"SWARM_AGENT": "", "SWARM_HOME": str(swarm_home)})
    answer = subagent_stop(cli, client, message)
    said = answer["systemMessage"]
    assert f"{task.id} reported with its finding cut to fit ({REFUSED}" in said, said
    assert "the limit is 262,144" in said
    after = swarm.get_task(task.id)
    assert after.status == TaskStatus.COMPLETED and after.finding_id is not None
    stored = swarm.get_finding(after.finding_id)
    assert stored.summary == "found it"
    assert str(stored.extra["finding_refused"]).startswith(REFUSED)
    host, _, kept = str(stored.extra["last_message_kept_in"]).partition(":")
    assert host and Path(kept).read_text() == message
