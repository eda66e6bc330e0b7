"""A claim of a queue no task was ever posted to (a misspelt name): the MCP tool told the
agent to stop ("no task is ready in these queues: stop if your work is done"), where the CLI
said to check the name. Both faces now say the core's words (``unknown_queues``)."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest

from redis_swarm import ConnectionFailed, Swarm
from redis_swarm._codec import dumps
from redis_swarm._hints import LIST_PASSES
from redis_swarm._models import NAMES_LISTED, listed_names, unknown_pass, unknown_queues
from redis_swarm.mcp_server import build_server
from redis_swarm.mcp_server._render import TOOL_WORDS

from ._cli import Cli
from .mcp_server._helpers import connect


@pytest.fixture
def core(redis_url: str) -> Iterator[Swarm]:
    swarm = Swarm(redis_url, swarm="test")
    yield swarm
    swarm.close()


def test_the_core_names_the_unknown_queues_and_those_there_are() -> None:
    said = unknown_queues(["research", "reserach", "reserach"], ["research", "review"])
    assert said == (
        'no task was ever posted to queue "reserach": check the name (the queues: "research", '
        f'"review"; {LIST_PASSES})'
    )
    two = unknown_queues(["a", "b"], [])
    assert two is not None and two.startswith('no task was ever posted to queues "a", "b":')
    assert unknown_queues(["research"], ["research"]) is None


def test_unknown_queues_and_passes_quote_and_list_names_by_one_rule() -> None:
    """A name holding a comma or a space reads as one name, quoted as the pass name asked
    for is (JSON), in both messages; both list as many names as NAMES_LISTED, then a count."""
    known = ["a, b", *(f"q{i:02}" for i in range(NAMES_LISTED + 2))]
    queues = unknown_queues(["c d"], known)
    passes = unknown_pass("c d", known)
    assert queues is not None
    listed = f'"a, b", {", ".join(dumps(q) for q in known[1:NAMES_LISTED])} and 3 more'
    assert listed_names(known) == listed
    assert f"(the queues: {listed};" in queues and f"(the passes: {listed};" in passes
    assert 'to queue "c d":' in queues and 'to pass "c d":' in passes


def test_claim_task_of_a_misspelt_queue_names_the_queues_and_does_not_say_stop(
    core: Swarm,
) -> None:
    core.post_task("research", "find the thing")
    core.post_task("review", "check the thing")
    claimed = core.claim("review", worker="w0")
    assert claimed is not None  # review: posted to, now empty

    async def body() -> None:
        async with connect(build_server(core, role="worker")) as worker:
            got, _ = await worker("claim_task", queue="nosuch")
            assert got["task"] is None and got["queues"] == ["nosuch"]
            said = got["next"]
            assert said.startswith('no task was ever posted to queue "nosuch": check the name')
            assert 'the queues: "research", "review"' in said
            # The core's hint, in this server's words (TOOL_WORDS): no command to run.
            assert TOOL_WORDS[LIST_PASSES] in said and LIST_PASSES not in said
            assert "stop" not in said and "wait_s" in said

            # A queue posted to that is empty now: nothing is wrong with its name.
            empty, _ = await worker("claim_task", queue="review")
            assert "no task is ready in these queues: stop if your work is done" in (empty["next"])
            assert "never" not in empty["next"]

            # report_finding's claim_next says the same of a misspelt queue.
            held, _ = await worker("claim_task", queue="research")
            done, _ = await worker(
                "report_finding",
                task_id=held["task"]["id"],
                summary="found",
                claim_next=["research", "nosuch"],
            )
            assert done["next_task"] is None and "task" not in done
            assert done["next"].startswith('no task was ever posted to queue "nosuch"')

    anyio.run(body)


class _StatsFail(Swarm):
    """A real handle whose queue counts cannot be read (a Redis blip on that one read)."""

    def queue_stats(self) -> dict[str, dict[str, int]]:
        raise ConnectionFailed("the queue counts could not be read (a blip)")


def test_a_report_whose_next_look_fails_to_read_the_queues_still_returns_its_finding(
    redis_url: str,
) -> None:
    """The report is stored; only the read that tells a misspelt queue from an empty one
    failed: the result is the report's (its finding id), not an error that would have the
    agent report again and meet AlreadyCompleted."""
    with _StatsFail(redis_url, swarm="test") as swarm:
        swarm.post_task("research", "find the thing")

        async def body() -> None:
            async with connect(build_server(swarm, role="worker")) as worker:
                held, _ = await worker("claim_task", queue="research")
                done, _ = await worker(
                    "report_finding",
                    task_id=held["task"]["id"],
                    summary="found",
                    claim_next="research",
                )
                assert done["finding_id"] and done["next_task"] is None
                assert done["next"].startswith("no task is ready in these queues")

        anyio.run(body)


def test_the_peer_assist_queue_is_never_said_misspelt(cli: Cli) -> None:
    """``assist`` is a target before anything was posted to it (docs/ask.md recommends
    ``swarm run --queue research --queue assist``): a claim of it finds nothing without
    telling the user to check its name; a misspelt queue beside it still is named."""
    cli("task", "post", "research", "find the thing")
    cli("task", "claim", "research", "--worker", "w0")
    assert unknown_queues(["assist", "research"], ["research"]) is None
    empty = cli("task", "claim", "research", "assist", "--worker", "w1", expect=3)
    assert "check the name" not in empty.stderr, empty
    misspelt = cli("task", "claim", "assist", "asist", "--worker", "w1", expect=3)
    assert 'no task was ever posted to queue "asist": check the name' in misspelt.stderr
