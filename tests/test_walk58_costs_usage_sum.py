"""A run's figure below its models' sum is raised to the sum (``Usage.reconciled``): the sum
kept as every total keeps a sum of money (``figure_json``: $0.6 + $0.3 is 0.9, not the float
noise 0.8999999999999999), and the warning says the costs as every view says a cost
(``usd``: ``$0.5000 under the models' $0.9000``), the counts with their thousands
separated. Before, it printed the raw floats ("cost_usd 0.5 under the models'
0.8999999999999999") and kept the noise. Real server for the run: the finding stored holds
the sum kept."""

from __future__ import annotations

import json
import time
from pathlib import Path

from redis_swarm import Swarm
from redis_swarm._runner import OutcomeStatus, Runner, RunOptions
from redis_swarm._usage import Usage

NOTE = "usage figures below their models' sum, the sum taken: "


def test_the_sum_taken_is_no_float_noise_and_is_said_as_costs_are() -> None:
    printed = Usage(
        source="claude",
        cost_usd=0.5,
        tokens_in=100,
        models={"a": {"cost_usd": 0.6, "tokens_in": 80}, "b": {"cost_usd": 0.3, "tokens_in": 1270}},
    )
    usage, notes = printed.reconciled()
    assert usage.cost_usd == 0.9 and usage.tokens_in == 1350, usage
    assert notes == [
        NOTE + "cost_usd $0.5000 under the models' $0.9000",
        NOTE + "tokens_in 100 under the models' 1,350",
    ]
    assert usage.faults() == []


def test_a_run_keeps_the_sum_on_its_finding(redis_url: str, tmp_path: Path) -> None:
    result = {
        "type": "result",
        "is_error": False,
        "result": "found it",
        "total_cost_usd": 0.5,
        "modelUsage": {
            "model-a": {"inputTokens": 10, "outputTokens": 1, "costUSD": 0.6},
            "model-b": {"inputTokens": 10, "outputTokens": 1, "costUSD": 0.3},
        },
    }
    printer = tmp_path / "result.json"
    printer.write_text(json.dumps(result))
    name = f"usagesum-{time.monotonic_ns()}"
    with Swarm(redis_url, swarm=name) as swarm:
        posted = swarm.post_task("work", "one")
        pool = Runner(
            swarm,
            RunOptions(queues=("work",), command=f"cat >/dev/null; cat {printer}", max_tasks=1),
        )
        pool.run()
        (outcome,) = pool.outcomes
        task = swarm.get_task(posted.id)
        assert task.finding_id is not None, outcome
        finding = swarm.get_finding(task.finding_id)
    assert outcome.status is OutcomeStatus.COMPLETED, outcome
    assert NOTE + "cost_usd $0.5000 under the models' $0.9000" in outcome.detail, outcome.detail
    assert "0.8999" not in outcome.detail, outcome.detail
    assert finding.usage is not None and finding.usage.cost_usd == 0.9, finding.usage
