"""What a walk of ``ask`` found: a question holding a lone surrogate was refused as a
"description" (the task's word, not the asker's)."""

from __future__ import annotations

import pytest

from redis_swarm import Swarm, Timeout, ValidationError
from redis_swarm._keys import ask_queue


@pytest.fixture
def owned(swarm: Swarm) -> Swarm:
    swarm.publish_context("lib", "the answer is in chapter 42\n", source="book.md")
    return swarm


def _queued(swarm: Swarm) -> int:
    return swarm.queue_stats().get(ask_queue("lib"), {}).get("pending", 0)


def test_a_question_with_a_lone_surrogate_is_said_as_the_question(owned: Swarm) -> None:
    with pytest.raises(ValidationError, match=r"^the question is not valid Unicode text"):
        owned.ask("lib", "what is \ud83d?", timeout_s=5)
    assert _queued(owned) == 0


def test_timeout_zero_returns_a_shared_answer_already_there(owned: Swarm) -> None:
    """docs/ask.md: ``timeout_s=0`` looks once; a dedupe key's answered question is returned."""
    with pytest.raises(Timeout):
        owned.ask("lib", "shared?", timeout_s=0, keep=True, dedupe_key="shared")
    task = owned.claim(ask_queue("lib"), worker="librarian")
    assert task is not None
    owned.answer(task.id, task.token, "yes", worker="librarian")
    assert owned.ask("lib", "shared?", timeout_s=0, dedupe_key="shared").text == "yes"
