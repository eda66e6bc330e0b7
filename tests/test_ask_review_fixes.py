"""An adversarial run of ``swarm ask``: a timeout after the answering ``swarm serve`` was
killed (its lease ran out before the timeout) says so, ``claimed`` false, and asks whether
anyone still serves the queue (docs/ask.md), not to ask again with a longer timeout."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from redis_swarm import Swarm, Timeout
from redis_swarm._keys import ask_queue

from ._cli import Cli


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        handle.publish_context("docs1", "text\n", source="d.md")
        yield handle


def killed_answerer(swarm: Swarm) -> threading.Thread:
    """An answerer that claims the next question with a 1 s lease and dies (never renews,
    never answers), as a ``kill -9``'d ``swarm serve`` does."""
    thread = threading.Thread(
        target=lambda: swarm.claim([ask_queue("docs1")], worker="serve-docs1-1", wait_s=5,
                                   lease_s=1),
        daemon=True,
    )  # fmt: skip
    thread.start()
    return thread


def test_a_lease_run_out_reads_as_not_claimed(swarm: Swarm, redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as other:
        thread = killed_answerer(other)
        with pytest.raises(Timeout) as caught:
            swarm.ask("docs1", "Who?", timeout_s=4)
        thread.join(10)
    error = caught.value
    assert error.claimed is False
    said = str(error)
    assert "answerer serve-docs1-1 claimed it (attempt 1) and its lease ran out" in said
    assert "is anyone serving queue 'ask.docs1'?" in said
    assert "longer timeout" not in said and "Start an answerer" in said


def test_the_cli_says_the_same(cli: Cli, swarm: Swarm, redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as other:
        thread = killed_answerer(other)
        out = cli("ask", "docs1", "Who?", "--timeout", "4", expect=3)
        thread.join(10)
    assert "its lease ran out" in out.stderr and "longer timeout" not in out.stderr
