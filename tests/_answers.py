"""A stand-in answerer for the ask tests: a thread that answers one question of a queue."""

from __future__ import annotations

import threading

from redis_swarm import Swarm


def answer_one(
    swarm: Swarm, queue: str, text: str, *, name: str = "librarian", model: str = "m-1"
) -> threading.Thread:
    """Start a thread that claims one question of ``queue`` and answers it with ``text``."""

    def run() -> None:
        question = swarm.claim(queue, worker=name, wait_s=60)
        assert question is not None
        swarm.answer(question.id, question.token, text, worker=name, model=model)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread
