"""The swarm's status (what every face shows) and the newest records of the live views, on
both shells and both kinds of server."""

from __future__ import annotations

import time

from redis_swarm import AgentCounts, Swarm, SwarmStatus

from ._handles import must


def test_an_empty_swarm(swarm: Swarm) -> None:
    st = swarm.status()
    assert isinstance(st, SwarmStatus)
    assert st.swarm == "test" and st.last_event_id == "0-0"
    assert st.queues == {} and st.passes == () and st.roster == () and st.contexts == ()
    assert st.agents == AgentCounts(total=0, alive=0, stale=0, by_role={})
    assert set(st.totals) == {"pending", "delayed", "claimed", "completed", "dead", "cancelled"}
    assert not any(st.totals.values())
    recent = swarm.recent()
    assert recent.findings == () and recent.syntheses == () and recent.dead == ()


def test_status_counts_queues_passes_agents_and_contexts(swarm: Swarm) -> None:
    swarm.register("shard", name="shard-a")
    swarm.post_task("q1", "a", pass_name="P")
    swarm.post_task("q1", "b", pass_name="P")
    swarm.post_task("q2", "c", data={"big": "x" * 100})
    claimed = must(swarm.claim("q1", worker="w1"))
    swarm.report(claimed.id, claimed.token, {"summary": "one"})
    doomed = must(swarm.claim("q2", worker="w1"))
    swarm.fail(doomed.id, doomed.token, "broken", retry=False)
    swarm.publish_context("shard-a", "hello\n", source="notes.md")

    st = swarm.status()
    assert st.last_event_id == swarm.last_event_id()
    assert st.queues["q1"]["pending"] == 1 and st.queues["q1"]["completed"] == 1
    assert st.queues["q2"]["dead"] == 1
    assert st.totals["pending"] == 1 and st.totals["completed"] == 1 and st.totals["dead"] == 1
    [progress] = st.passes
    assert (progress.name, progress.total, progress.settled) == ("P", 2, 1)
    assert progress.fraction == 0.5 and progress.to_dict()["fraction"] == 0.5
    assert st.agents.alive == 2 and st.agents.by_role == {"shard": 1, "worker": 1}
    assert [a.id for a in st.roster] == ["shard-a", "w1"]
    assert [c.owner for c in st.contexts] == ["shard-a"]
    assert SwarmStatus.from_dict(st.to_dict()).roster == st.roster

    recent = swarm.recent()
    assert [f.summary for f in recent.findings] == ["one"]
    assert [t.id for t in recent.dead] == [doomed.id] and recent.dead[0].data is None


def test_stale_agents_are_counted_apart(swarm: Swarm) -> None:
    swarm.register("worker", name="w1")
    time.sleep(0.01)
    st = swarm.status(stale_after_s=0.001)
    assert st.agents == AgentCounts(total=1, alive=0, stale=1, by_role={})
