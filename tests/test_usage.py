"""What a run cost (``Usage``) as callers give it: figures no run could report are refused
with what to give instead; ``Usage.parse`` reads the JSON a worker gives (CLI, MCP)."""

from __future__ import annotations

from typing import Any

import pytest

from redis_swarm import Swarm, Usage, ValidationError


def _claimed_id(swarm: Swarm) -> tuple[str, str]:
    swarm.post_task("q", "d", max_attempts=5)
    task = swarm.claim("q", worker="w")
    assert task is not None and task.token is not None
    return task.id, task.token


@pytest.mark.parametrize(
    ("usage", "said"),
    [
        (Usage("x", tokens_in=1.5), "usage tokens_in is 1.5: give a whole number of tokens"),  # type: ignore[arg-type]
        (Usage("x", tokens_out=-2), "usage tokens_out is -2: give a whole number of tokens"),
        (Usage("x", cost_usd=float("nan")), "usage cost_usd is NaN: give a number of US dollars"),
        (Usage("x", cost_usd=1e30), "usage cost_usd is 1e+30"),
        (Usage("x", cost_usd="0.5"), 'usage cost_usd is "0.5"'),  # type: ignore[arg-type]
        (
            Usage("x", tokens_in=100, cached_in=400),
            "usage cached_in (400) is more than tokens_in (100): tokens_in counts every input "
            "token, the cached ones included",
        ),
        (Usage("x", models={"m": {"tokens_out": 0.5}}), "usage of m: tokens_out is 0.5"),
        (Usage("x", models=["m"]), "usage models must be an object"),  # type: ignore[arg-type]
    ],
)
def test_impossible_figures_are_refused_on_every_write(
    swarm: Swarm, usage: Usage, said: str
) -> None:
    task_id, token = _claimed_id(swarm)
    for write in (
        lambda: swarm.report(task_id, token, {"summary": "s"}, usage=usage),
        lambda: swarm.fail(task_id, token, "e", usage=usage),
        lambda: swarm.synthesize("shard", "P", "text", [], usage=usage),
    ):
        with pytest.raises(ValidationError) as caught:
            write()
        assert said in str(caught.value)
    task = swarm.get_task(task_id)
    assert task.status == "claimed" and task.failures == 0  # nothing was written
    with pytest.raises(ValidationError):
        Usage.parse(usage.to_dict())  # the faces' reading refuses the same


def test_whole_counts_are_stored_as_integers(swarm: Swarm) -> None:
    task_id, token = _claimed_id(swarm)
    models = {"m": {"tokens_in": 1000.0}}
    usage = Usage("x", 0.5, tokens_in=1000.0, cached_in=400, models=models)  # type: ignore[arg-type]
    finding = swarm.report(task_id, token, {"summary": "s"}, usage=usage)
    stored = swarm.get_finding(finding.id).usage
    assert stored is not None and stored.tokens_in == 1000 and type(stored.tokens_in) is int
    assert type(stored.models["m"]["tokens_in"]) is int


def test_parse_reads_the_json_a_worker_gives() -> None:
    given: dict[str, Any] = {"cost_usd": 0.02, "tokens_in": 900, "cached_in": 800}
    assert Usage.parse(given) == Usage("reported", 0.02, 900, cached_in=800)
    assert Usage.parse({**given, "source": "claude-json"}).source == "claude-json"
    with pytest.raises(ValidationError) as caught:
        Usage.parse({"tokens": 5, "cost": 1})
    assert str(caught.value) == (
        "usage has no field cost, tokens: give any of source, cost_usd, tokens_in, "
        "tokens_out, cached_in, session_id, models"
    )
    with pytest.raises(ValidationError, match="usage must be a JSON object"):
        Usage.parse([1])
    with pytest.raises(ValidationError) as caught:
        Usage.parse({"tokens_in": -1, "cost_usd": -1})
    assert str(caught.value) == (
        "usage cost_usd is -1: give a number of US dollars, 0 or from 1e-12 to 1e15, or leave "
        "it out; "
        "usage tokens_in is -1: give a whole number of tokens from 0 to 1e15, or leave it out"
    )
