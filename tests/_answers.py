"""A stand-in answerer for the ask tests: a thread that answers one question of a queue."""

from __future__ import annotations

import threading

from redis_swarm import Conflict, Swarm


def answer_one(
    swarm: Swarm, queue: str, text: str, *, name: str = "librarian", model: str = "m-1"
) -> threading.Thread:
    """Start a thread that claims one question of ``queue`` and answers it with ``text``."""

    def run() -> None:
        try:
            question = swarm.claim(queue, worker=name, wait_s=60)
            assert question is not None
            swarm.answer(question.id, question.token, text, worker=name, model=model)
        except Conflict as exc:
            # The test ended (its handle closed) while this thread was on its way: its
            # answer is nobody's now. Raised, it was the next test's error (pytest's
            # thread-exception hook reports it wherever it lands).
            if "is closed" not in str(exc):
                raise

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread
