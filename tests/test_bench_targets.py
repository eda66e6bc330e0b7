"""The targets' explanations say what the run's figures show (benchmarks/targets.py)."""

from __future__ import annotations

from typing import Any

from benchmarks import targets


def row(peer: str, workers: int, throughput: float, posts: float, **more: float) -> dict[str, Any]:
    spread = more.get("spread", 0.1)
    return {
        "peer": peer,
        "workers": workers,
        "throughput_per_s": throughput,
        "post_per_s": posts,
        "commands_per_task": more.get("commands", 4.0),
        "server_cpu_us_per_task": more.get("cpu", 60.0),
        "scripts_per_task": more.get("scripts", 0.0),
        "throughput_rounds": [throughput * (1 - spread), throughput, throughput * (1 + spread)],
    }


def lifecycle(swarm_16_posts: float) -> dict[str, Any]:
    return {
        "lifecycle": [
            row("redis-swarm", 1, 5000, 5800, commands=29.2, cpu=102, scripts=2.0),
            row("redis-swarm", 16, 2400, swarm_16_posts, commands=36, cpu=176, scripts=3.0),
            row("huey", 1, 3900, 12000),
            row("huey", 16, 7900, 13000),
        ]
    }


def test_a_throughput_the_producer_paces_is_said_with_both_post_rates() -> None:
    text = targets.report(lifecycle(swarm_16_posts=2420))
    assert "With 16 workers the throughput is the one producer's post rate" in text
    assert "(2,400/s against 2,420 posts/s)" in text
    assert "huey's producer posted 13,000/s beside 16 workers" in text
    assert "3.00 scripts run per task (against 2.00 with one" in text
    assert "| task throughput ahead of every peer, 1 worker | 5,000/s vs best peer huey" in text


def test_a_producer_that_kept_ahead_is_not_blamed() -> None:
    text = targets.report(lifecycle(swarm_16_posts=6000))
    assert "producer's post rate" not in text
    assert "3.00 scripts run per task" in text  # what the workers cost is still said


def test_rounds_that_overlap_are_called_a_tie() -> None:
    text = targets.report(lifecycle(swarm_16_posts=2420))
    # 1 worker: 4,500-5,500 against huey's 3,510-4,290: apart; 16: 2,160-2,640 vs 7,110-8,690
    assert "overlap" not in text
    close = lifecycle(swarm_16_posts=2420)
    close["lifecycle"][2] = row("huey", 1, 4800, 12000)
    text = targets.report(close)
    assert "5,000/s vs best peer huey 4,800/s (their rounds overlap: 4,500-5,500 vs " in text
