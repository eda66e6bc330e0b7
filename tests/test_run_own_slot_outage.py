"""``swarm run`` when the Redis Cluster master of the swarm's own slot (its hash tag's, where
every key of the swarm lives) is killed, from a deployment walk:

The run said nothing at all until the replica took over: its agents' slots beat (their
heartbeat, ``slot_presence``) at the first tick of each run, and that beat waited inside the
client's retries (up to about a minute on a cluster) where no notice watched it, holding the
tick (and so the renewals, the agent's end, its report). Every request of the pool that can
wait through an outage is now watched by the one notice: within seconds the run says Redis
has not answered, and once a replica is promoted, that it answers again; every task is done
by its one agent run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from redis_swarm import Swarm
from redis_swarm._runner import OutcomeStatus

from ._own_slot import NOTICE_WITHIN_S, Heard, own_slot_cluster, pool_through_own_master_death
from ._servers import ServerFactory

pytestmark = pytest.mark.slow

SWARM = "own"
TASKS = 3


def test_swarm_run_says_so_when_its_own_slots_master_dies(
    servers: ServerFactory, tmp_path: Path
) -> None:
    heard = Heard()
    with own_slot_cluster(servers) as cluster, Swarm(cluster.url, swarm=SWARM) as swarm:
        pool, posted = pool_through_own_master_death(cluster, swarm, tmp_path, heard, TASKS)
        told = heard.told()
        assert told[0][0] <= NOTICE_WITHIN_S, (told, heard.said)
        # (the probe's words: the node of the swarm's slot refused, or the cluster down)
        assert "it may be paused" not in told[0][1], told
        back = heard.back()
        assert len(back) == 1 and back[0] > told[0][0], heard.said  # (once, after the notice)
        runs = (tmp_path / "runs").read_text().split()
        assert sorted(runs) == sorted(posted), runs  # every task run once, none twice
        assert len(pool.outcomes) == TASKS, pool.outcomes
        assert {o.status for o in pool.outcomes} == {OutcomeStatus.COMPLETED}, pool.outcomes
        assert {t.status.value for t in map(swarm.get_task, posted)} == {"completed"}
