"""Follow-ups of ``swarm run`` through an outage of its own slot's Cluster master
(tests/test_run_own_slot_outage.py), from its review:

- A pipeline's own agents (its synthesizer, its planner) beat without the pool's watch
  (``SlotPresence`` made its beats as they are): killed under a running synthesizer, the
  master of the swarm's slot kept its first beat waiting in the client's retries until a
  replica took over, and the run said nothing meanwhile. Their beats, renewals and writes
  ridden out are watched as ``swarm run``'s pool watches its own.
- In one outage the first notice said the probe's words (the node of the swarm's slot
  refused, the cluster down) and every later one of the same outage fell back to the guess
  "it may be paused, busy or out of reach", which read as contradicting it. The cause is now
  kept for the outage: later notices refer to it, and repeat neither it nor a guess.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from redis_swarm import Swarm
from redis_swarm._pipeline import Pipeline, load_plan

from ._own_slot import (
    NOTICE_WITHIN_S,
    Heard,
    killed_when,
    own_slot_cluster,
    pool_through_own_master_death,
)
from ._servers import ServerFactory
from .test_pipeline_run import SYNTH, plan_text

pytestmark = pytest.mark.slow

GUESS = "it may be paused"
REFERRED = "the cause said above"  # (pool_state.CAUSE_SAID)

# The synthesizer of test_pipeline_run, its first run saying it started, then working 3 s.
SLOW_SYNTH = (
    r"""
import pathlib, time
started = pathlib.Path(__file__).parent / "synth-started"
if not started.exists():
    started.touch()
    time.sleep(3)
"""
    + SYNTH
)


def test_a_pipelines_synthesizer_says_so_when_its_own_slots_master_dies(
    servers: ServerFactory, tmp_path: Path
) -> None:
    path = plan_text(tmp_path)
    (tmp_path / "synth.py").write_text(SLOW_SYNTH)
    heard = Heard()
    with own_slot_cluster(servers) as cluster, Swarm(cluster.url, swarm="piped") as swarm:
        run = Pipeline(swarm, load_plan(path), say=heard)
        started = (tmp_path / "synth-started").exists
        killed_when(cluster, swarm.name, heard, started, run.run)
        assert len(run.results) == 2 and run.results[-1].synthesis is not None, heard.said
    told = heard.told()
    assert told[0][0] <= NOTICE_WITHIN_S, (told, heard.said)
    assert told[0][1].startswith("pass 1/2 'Pass 1': Redis has not answered"), told
    assert "take the heartbeat" in told[0][1] and GUESS not in told[0][1], told
    back = heard.back()
    assert len(back) == 1 and back[0] > told[0][0], heard.said
    again = next(line for line in heard.said if "Redis answers again" in line)
    assert again.endswith("the run goes on"), again


def test_later_notices_of_one_outage_keep_the_probes_cause(
    servers: ServerFactory, tmp_path: Path
) -> None:
    heard = Heard()
    with own_slot_cluster(servers) as cluster, Swarm(cluster.url, swarm="kept") as swarm:
        pool_through_own_master_death(cluster, swarm, tmp_path, heard)
    told = [line for _, line in heard.told()]
    assert len(heard.back()) == 1, heard.said  # (one outage)
    assert len(told) >= 2, heard.said  # (each task's request, and the pool's own)
    first, later = told[0], told[1:]
    assert GUESS not in first, told  # (the probe's words)
    assert not [line for line in later if GUESS in line], told
    assert all(REFERRED in line for line in later), told
    cause = first.split(": ", 1)[1].split("; still waiting")[0]
    assert not [line for line in later if cause in line], told  # (said once)
