"""Every core operation of the a2a-sdk stores (redis_swarm.a2a), once each, the refusals
too: run by the ACL allowlist test (as a shard) and the script-keys test."""

from __future__ import annotations

import functools

from redis_swarm import Swarm


def a2a_workload(swarm: Swarm) -> None:
    owner, task = "owner-1", "a2a-task-1"
    save_first = functools.partial(
        swarm.a2a_save, owner, task, b"t1", context_id="c", state=1, timestamp_ns=None, event=b"e1"
    )
    assert save_first(write_id="w1") == 1
    assert save_first(write_id="w1") == 1  # resent after a lost reply: recognised, not stale
    assert save_first(write_id="w2") is None  # another writer's first write: stale
    stale = swarm.a2a_save(owner, task, b"t2", context_id="c", state=2, timestamp_ns=5)
    assert stale is None
    cancelled = swarm.a2a_save(
        owner, task, b"t3", context_id="c", state=5, timestamp_ns=6, mode="cancel",
        write_id="w3", event=b"e2", terminal_states=[5], events_ttl_ms=60_000,
    )  # fmt: skip
    assert cancelled == 2
    swarm.a2a_save(owner, "a2a-task-2", b"p", context_id="d", state=1, timestamp_ns=1, mode="plain")
    stored = swarm.a2a_get(owner, task)
    assert stored is not None and stored.version == 2
    assert swarm.a2a_list(owner, page_size=1).next is not None
    assert swarm.a2a_list(owner, page_size=5, context_id="c", state=5).total == 1
    assert swarm.a2a_list(owner, page_size=5, start_id=task).tasks == [b"t3", b"p"]
    assert swarm.a2a_publish(task, 3, b"e3", expire_ms=60_000)
    assert not swarm.a2a_publish(task, 3, b"again")
    assert [e.version for e in swarm.a2a_events(task, 1, 0.05)] == [2, 3]
    swarm.a2a_destroy(task)
    assert swarm.a2a_delete(owner, task)
    assert not swarm.a2a_delete(owner, task)
