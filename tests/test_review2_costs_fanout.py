"""Second review of the pipeline's costs and the event fan-out, on real servers: lineage prices
the findings a synthesis cites that their agents reported themselves in one round trip,
however many (it read every run of the pipeline once per finding); ``swarm task show`` takes
the lost-finding rule from the core; a listener catching up on a long backlog is not dropped
for it; a closed fan-out lends no listener to Redis and waits for every follower it stopped;
a pipeline checks a shared context owner by its content hash, not by downloading it."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import InvalidState, Swarm
from redis_swarm._models import own_report_key, unrecorded_owner_of, unrecorded_run_key
from redis_swarm._pipeline.lineage import lineage
from redis_swarm._usage import Usage

from ._handles import must
from ._raw import command_calls, reset_stats

LABEL = "walk: one"  # a pass label of run 1 of pipeline "walk"


def _self_reported(swarm: Swarm, n: int) -> list[str]:
    """``n`` findings of pass ``LABEL`` their agents reported themselves with no usage, each
    run's cost ($0.01) kept by the pipeline as ``swarm pipeline run`` keeps it."""
    owner = must(unrecorded_owner_of(LABEL))
    ids = []
    for i in range(n):
        swarm.post_task("pipeline.walk", f"work {i}", pass_name=LABEL)
        leased = must(swarm.claim("pipeline.walk", worker="w"))
        found = swarm.report(leased.id, leased.token, {"summary": f"result {i}"}, worker="w")
        assert found.usage is None
        key = unrecorded_run_key(own_report_key(found.id))
        spent = Usage(source="claude", cost_usd=0.01)
        swarm.record_unrecorded_run(owner, key, LABEL, "its own report", usage=spent)
        ids.append(found.id)
    return ids


def test_lineage_prices_every_self_reported_finding_in_one_read(redis_url: str, raw: Any) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        ids = _self_reported(swarm, 6)
        synthesis = swarm.synthesize("shard-1", LABEL, "all of it", ids)
        reset_stats(raw)
        tree = lineage(swarm, synthesis.id)
        calls = command_calls(raw)
    assert [f["cost_usd"] for f in tree["findings"]] == [pytest.approx(0.01)] * 6
    assert tree["total"]["cost_usd"] == pytest.approx(0.06)
    assert tree["runs_without_cost"] == 1  # (the synthesis written by hand: no usage)
    # the pipeline's runs read once, not once per cited finding (an HGETALL each)
    assert calls.get("hgetall", 0) == 0, calls
    assert calls.get("hmget", 0) == 1, calls


def test_a_shared_context_owner_is_told_by_its_hash_not_read(
    redis_url: str, raw: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plan naming the context owner another pipeline publishes is checked against it by
    the published version (the content hash of this plan's text), not by downloading the
    context; its files are read once, for the check and the publishing both."""
    from redis_swarm._pipeline import plan as plan_module
    from redis_swarm._pipeline.plan import load_plan
    from redis_swarm._pipeline.run import Pipeline

    from .test_pipeline_run import three_passes

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = three_passes(tmp_path / "a")
    b = three_passes(tmp_path / "b")
    b.write_text(b.read_text().replace('name = "audit"', 'name = "other"'))
    material = secrets.token_hex(300_000)  # (600 KB that compress poorly: a download shows)
    for plan in (a, b):
        (plan.parent / "notes.md").write_text(material)
    real = plan_module.context_file_text
    reads: list[Path] = []

    def counted(file: Path, base: Path) -> str:
        reads.append(file)
        return real(file, base)

    with Swarm(redis_url, swarm="test") as publisher:  # (its cache of contexts: not ours)
        Pipeline(publisher, load_plan(a)).publish_contexts()  # "audit" publishes "notes"
    with Swarm(redis_url, swarm="test") as swarm:
        monkeypatch.setattr(f"{plan_module.__name__}.context_file_text", counted)
        other = Pipeline(swarm, load_plan(b))
        sent = _sent_bytes(raw)
        other._check_owners()  # the same material: no clash
        sent = _sent_bytes(raw) - sent
        other.publish_contexts()
        assert len(reads) == 1, reads  # (notes.md: read once for both)
        (tmp_path / "b" / "notes.md").write_text("other material\n")
        with pytest.raises(InvalidState, match="context owner 'notes'"):
            Pipeline(swarm, load_plan(b))._check_owners()
    # its version's manifest read (context_info), not its 600 KB
    assert sent < 50_000, sent


def _sent_bytes(raw: Any) -> int:
    """What the server has sent its clients so far."""
    return int(raw.info("stats")["total_net_output_bytes"])


def test_a_self_reported_findings_run_is_counted_under_its_usages_models(redis_url: str) -> None:
    """A finding reported with ``model`` and no usage, whose run the pipeline kept with usage
    naming another model and no cost: that run goes under the usage's model, unpriced (it
    stayed under the finding's model, which has no figures, and the line showing the usage's
    tokens read as a whole sum)."""
    owner = must(unrecorded_owner_of(LABEL))
    with Swarm(redis_url, swarm="test") as swarm:
        swarm.post_task("pipeline.walk", "work", pass_name=LABEL)
        leased = must(swarm.claim("pipeline.walk", worker="w"))
        found = swarm.report(leased.id, leased.token, {"summary": "r"}, worker="w", model="sonnet")
        key = unrecorded_run_key(own_report_key(found.id))
        spent = Usage(
            source="claude",
            tokens_in=100,
            models={"claude-sonnet-4-5": {"tokens_in": 100}},
        )
        swarm.record_unrecorded_run(owner, key, LABEL, "its own report", usage=spent)
        costs = swarm.pass_costs(LABEL)
    assert (costs.runs, costs.runs_without_cost) == (1, 1)
    assert costs.model_runs == {"claude-sonnet-4-5": {"runs": 1, "runs_without_cost": 1}}
