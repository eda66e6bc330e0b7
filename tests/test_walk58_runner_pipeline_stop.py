"""``swarm pipeline run``'s own agents (the planner, the synthesizer) at a hard stop during an
outage: what they still ask of Redis (the write they ride out, the claim of their task, the
deregistration of their name) shares one stop budget (``_outage.StopBudget``), as the worker
pool's exit does, so that the stop ends within about ``STOP_GRACE_S``, not 2 s per request and
a client timeout for the deregistration. A real server of the test's own, paused (SIGSTOP)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from redis_swarm import Swarm
from redis_swarm._errors import ConnectionFailed
from redis_swarm._outage import STOP_GRACE_S
from redis_swarm._pipeline import load_plan
from redis_swarm._pipeline.run import Pipeline

from ._servers import RedisServer
from .test_pipeline_run import plan_text

# What a stop may take past the budget: the poll of ``until_stopped`` and a loaded machine.
SLACK_S = 0.9


def test_a_hard_stop_in_an_outage_ends_the_synthesizer_within_one_budget(
    pausable_server: RedisServer, tmp_path: Path
) -> None:
    """A refused synthesizer run is being recorded (``_synthesis_failed``: the claim of its
    task, ridden out, then its name deregistered) while the server is paused; a hard stop
    0.5 s later: the call gives up within one stop budget of the stop. Before, the claim
    waited ``STOP_GRACE_S`` of its own, then the deregistration waited a whole client
    timeout, unbounded by the stop."""
    plan = load_plan(plan_text(tmp_path))
    with Swarm(pausable_server.url, swarm=f"stop-{time.monotonic_ns()}") as swarm:
        (posted,) = swarm.post_tasks([{"queue": "q", "description": "one"}])
        held = swarm.claim(["q"], worker="w")
        assert held is not None and held.id == posted.id
        finding = swarm.report(held.id, held.token, {"summary": "s"}, worker="w")
        pipeline = Pipeline(swarm, plan)
        os.kill(pausable_server.proc.pid, signal.SIGSTOP)
        try:
            stopped: list[float] = []

            def stop() -> None:
                stopped.append(time.monotonic())
                pipeline.stop(hard=True)

            timer = threading.Timer(0.5, stop)
            timer.start()
            with pytest.raises(ConnectionFailed):
                pipeline._synthesis_failed(0, finding, "refused: no citation", None, "run-1")
            took = time.monotonic() - stopped[0]
            timer.join()
        finally:
            os.kill(pausable_server.proc.pid, signal.SIGCONT)
    assert took < STOP_GRACE_S + SLACK_S, f"the stop took {took:.2f}s"
