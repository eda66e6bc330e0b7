"""``swarm a2a`` as an agent of Google ADK (``google-adk``, a client nobody here wrote): a
``RemoteA2aAgent`` pointed at the card URL, run by ADK's own runner as the root agent (no model:
the remote agent forwards the user's message), while a worker of ours claims the task and
reports a finding. What runs is the snippet of docs/a2a.md ("Google ADK"), as written."""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from google.adk.agents.remote_a2a_agent import AGENT_CARD_WELL_KNOWN_PATH

from redis_swarm import Swarm

from ._a2a import QUEUE, A2AServer, work_one

DOC = Path(__file__).resolve().parent.parent / "docs" / "a2a.md"
SECTION = "### Google ADK"

# ADK marks its A2A support experimental with UserWarnings (warnings are errors here).
pytestmark = pytest.mark.filterwarnings(r"ignore:\[EXPERIMENTAL\]:UserWarning")


def documented_ask() -> Any:
    """The ``ask`` of the section's Python block: the swarm as ADK's root agent."""
    section = DOC.read_text(encoding="utf-8").split(SECTION, 1)[1]
    found = re.search(r"```python\n(.*?)\n```", section, re.S)
    assert found, f"docs/a2a.md: no python block under {SECTION!r}"
    namespace: dict[str, Any] = {"__name__": "adk_snippet"}
    exec(compile(found[1], "docs/a2a.md#google-adk", "exec"), namespace)
    return namespace["ask"]


def test_an_adk_agent_hands_a_question_to_the_swarm(a2a: A2AServer, a2a_worker: Swarm) -> None:
    ask = documented_ask()
    claimed: list[str] = []
    worker = threading.Thread(
        target=lambda: claimed.append(work_one(a2a_worker, QUEUE, "the answer is 42"))
    )
    worker.start()  # it waits for the task ADK's message posts
    try:
        card = a2a.url + AGENT_CARD_WELL_KNOWN_PATH
        events = asyncio.run(asyncio.wait_for(ask(card, a2a.token, "what is the answer?"), 30))
    finally:
        worker.join(15)
    [task_id] = claimed
    task = a2a_worker.get_task(task_id)
    assert task.description == "what is the answer?"  # the user's message, forwarded

    texts = [p.text for e in events if e.content for p in e.content.parts or () if p.text]
    assert texts == ["the answer is 42"]  # the finding's summary, as ADK content
    meta: list[dict[str, Any]] = [e.custom_metadata or {} for e in events]
    assert {m["a2a:task_id"] for m in meta} == {task_id}
    assert {m["a2a:context_id"] for m in meta} == {task.pass_name}
    states = [m["a2a:response"]["status"]["state"] for m in meta]
    assert states[0] == "TASK_STATE_SUBMITTED" and states[-1] == "TASK_STATE_COMPLETED"
    assert all(e.author == "research_swarm" and not e.error_message for e in events)
