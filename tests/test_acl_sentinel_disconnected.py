"""A replica the sentinels cannot reach is down for ``topology`` (one rule:
``_topology.sentinel_down``). A replica stopped less than down-after-milliseconds ago is
``disconnected`` to the sentinel, not ``s_down`` yet: swarm doctor counts it down (Sentinel
fails over to no replica so flagged). ``apply_role`` tries such a replica all the same (the
sentinel's link, not the replica, may be what is down: a busy machine's sentinel drops a
link slow to answer, and a healthy replica left out missed the user after a failover; CI
found it), and leaves it out saying both when it does not answer."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from redis_swarm import Settings, apply_role, topology

from ._sentinel import SERVICE, LocalSentinel, start_sentinel
from ._servers import ServerFactory

SWARM = "acl-disconnected"


@pytest.fixture(scope="module")
def sentinel(servers: ServerFactory) -> Iterator[LocalSentinel]:
    """A master, its replica and one sentinel that waits a minute before it calls a server
    down (s_down): a replica stopped meanwhile is only ``disconnected`` to it."""
    made = start_sentinel(servers, sentinels=1)
    with _sentinel_client(made) as client:
        client.execute_command("SENTINEL", "SET", SERVICE, "down-after-milliseconds", 60_000)
    yield made
    for server in (*made.sentinels, *made.data_nodes()):
        server.stop()


def _sentinel_client(setup: LocalSentinel) -> redis.Redis:
    port = setup.sentinels[0].port or 0
    return redis.Redis(host="127.0.0.1", port=port, decode_responses=True)


def _replica_flags(setup: LocalSentinel) -> str:
    with _sentinel_client(setup) as client:
        (entry,) = client.execute_command("SENTINEL", "REPLICAS", SERVICE)
    return str(entry.get("flags", ""))


def test_a_disconnected_replica_is_down_for_the_apply_as_for_doctor(
    sentinel: LocalSentinel,
) -> None:
    master = f"127.0.0.1:{sentinel.master.port}"
    where = f"127.0.0.1:{sentinel.replica.port}"
    sentinel.replica.stop()
    deadline = time.monotonic() + 20
    while "disconnected" not in (flags := _replica_flags(sentinel)):
        assert time.monotonic() < deadline, f"the sentinel still lists the replica {flags}"
        time.sleep(0.1)
    assert "s_down" not in flags  # (down-after-milliseconds is a minute)

    settings = Settings.from_url(sentinel.url, swarm=SWARM)
    view = topology(settings).sentinel
    assert view is not None and (view.replicas, view.replicas_up) == (1, 0)
    made = apply_role(settings, "worker", "while-disconnected")
    assert list(made.persisted) == [master]
    assert made.skipped == {
        where: "did not answer (Connection refused), and the sentinels' link to it is down "
        "(disconnected)"
    }
