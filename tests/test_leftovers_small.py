"""Four leftovers: a refused synthesis names the findings it did not find in an attribute
(the seed's adapter reads it, not the message); the largest page of a listing is said in one
public place (the A2A handler counts through it); ``swarm lineage`` of an id nothing has
says so, and how to list what it takes; ``usage_line`` takes a usage in one form."""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
from collections.abc import Iterator
from typing import Any

import pytest

import redis_swarm
from redis_swarm import AsyncSwarm, NotFound, Swarm, SwarmMemoryShard, ValidationError
from redis_swarm._usage import usage_line
from redis_swarm.a2a_server import _handler
from redis_swarm.roles import UncitedSources
from redis_swarm.roles._seed import REFERENCES

from ._cli import Cli


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def _finding(swarm: Swarm) -> str:
    task = swarm.post_task("q", "look")
    return swarm.report(task.id, None, {"summary": "seen"}).id


# --- 1. the ids a synthesis cites that are not findings: an attribute of the refusal


def test_a_refused_synthesis_names_the_missing_findings_in_its_error(swarm: Swarm) -> None:
    real = _finding(swarm)
    with pytest.raises(NotFound) as refused:
        swarm.synthesize("shard-a", "P1", "text", ["f-ghost2", real, "f-ghost1", "f-ghost2"])
    assert refused.value.missing == ("f-ghost2", "f-ghost1")  # in the order cited, each once
    assert str(refused.value) == (  # the message as users have always read it
        "no finding f-ghost2, f-ghost1: a synthesis may cite only stored findings "
        "(list them with swarm findings)"
    )
    with pytest.raises(NotFound) as other:  # another refusal names none
        swarm.get_synthesis("s-nope")
    assert other.value.missing == ()


def test_the_async_handle_names_them_too(redis_url: str) -> None:
    async def refuse() -> NotFound:
        async with AsyncSwarm(redis_url, swarm="test") as handle:
            with pytest.raises(NotFound) as refused:
                await handle.synthesize("shard-a", "P1", "text", ["f-ghost"])
        return refused.value

    assert asyncio.run(refuse()).missing == ("f-ghost",)


def test_the_seed_adapter_reads_the_ids_not_the_words(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The core's refusal reworded (its ids kept): the seed's synthesis still keeps the
    made-up sources as references, as it did when it read them out of the message."""
    shard = SwarmMemoryShard(url=redis_url, specialization="mixed")
    try:
        real = shard.collect_worker_finding(
            shard.spawn_worker_task("mixed", "Read"), {"summary": "a"}
        )
        synthesize = shard.swarm.synthesize

        def reworded(*args: Any, **kwargs: Any) -> Any:
            try:
                return synthesize(*args, **kwargs)
            except NotFound as exc:
                raise NotFound("some other words", missing=exc.missing) from None

        monkeypatch.setattr(shard.swarm, "synthesize", reworded)
        with pytest.warns(UncitedSources, match="without citing f-made-up"):
            sid = shard.synthesize_findings("P1", "It holds.", ["f-made-up", real])
        stored = shard.swarm.get_synthesis(sid)
        assert stored.sources == (real,)
        assert stored.text == f'It holds.\n\n{REFERENCES}["f-made-up"]'
    finally:
        shard.close()


# --- 2. the largest page of a listing, said once


def test_the_page_bound_is_public_and_is_the_cores(swarm: Swarm) -> None:
    assert "MAX_PAGE" in redis_swarm.__all__
    MAX_PAGE = redis_swarm.MAX_PAGE
    assert swarm.list_tasks(limit=MAX_PAGE).items == ()
    with pytest.raises(ValidationError, match=f"{MAX_PAGE:,}"):
        swarm.list_tasks(limit=MAX_PAGE + 1)


def test_the_a2a_handler_counts_with_the_cores_bound_not_its_own() -> None:
    MAX_PAGE = getattr(redis_swarm, "MAX_PAGE", 1_000)
    tree = ast.parse(inspect.getsource(_handler))
    numbers = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)]
    assert MAX_PAGE not in numbers
    assert "MAX_PAGE" in {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


# --- 3. swarm lineage of an id nothing has


@pytest.mark.parametrize("ident", ["x-123", "nope", "s-nope", "f-nope", "t-nope"])
def test_lineage_of_an_unknown_id_says_what_it_takes(cli: Cli, ident: str) -> None:
    err = cli("lineage", ident, expect=1).stderr
    assert f"no synthesis, finding, task or pipeline is called '{ident}' in swarm 'test'" in err
    for lists in ("swarm synth list", "swarm findings", "swarm task list", "swarm context list"):
        assert lists in err, err
    assert "swarm pipeline run" not in err  # (not told to start a pipeline of that name)


def test_lineage_follows_a_task_posted_under_its_posters_id(cli: Cli, swarm: Swarm) -> None:
    """A task posted under an id of its poster's (no t-) has its lineage like any task."""
    swarm.post_task("q", "look", task_id="job-1")
    out = cli("lineage", "job-1", "--json").stdout
    tree = json.loads(out)
    assert (tree["kind"], tree["id"], tree["status"]) == ("task", "job-1", "pending")


def test_a_synthesis_citing_a_finding_gone_says_that_finding(cli: Cli, swarm: Swarm) -> None:
    """The record named exists and one it leads to is gone: lineage shows it as missing
    (it never says the named one does not exist)."""
    task = swarm.post_task("q", "look")
    claimed = swarm.claim("q", worker="w")
    assert claimed is not None and claimed.id == task.id
    finding = swarm.report(claimed.id, claimed.token, {"summary": "s"}, worker="w")
    synthesis = swarm.synthesize("shard-1", "p1", "all of it", [finding.id])
    swarm.redis.hdel(swarm.keys.findings, finding.id)
    tree = json.loads(cli("lineage", synthesis.id, "--json").stdout)
    assert tree["findings"] == [{"kind": "finding", "id": finding.id, "missing": True}]


# --- 4. usage_line: one form


def test_usage_line_takes_a_usage_not_its_figures_one_by_one() -> None:
    spent = {"cost_usd": 0.1, "tokens_in": 110, "tokens_out": 10, "runs": 2, "runs_without_cost": 1}
    assert usage_line(spent) == "$0.1000 · 110 in / 10 out"  # (swarm run's spent(), whole)
    with pytest.raises(TypeError):
        usage_line(0.1, 110, 10)  # type: ignore[call-arg,arg-type]
    with pytest.raises(TypeError):
        usage_line(0.1)  # type: ignore[arg-type]
