"""``swarm doctor`` says when Redis may drop the swarm's records to free memory: a
maxmemory-policy of allkeys-* evicts any key (tasks, leases, findings) without a word, as a
cache would. With a limit set that fails the check (exit 1); without one it is a warning."""

from __future__ import annotations

import pytest

from ._cli import Cli
from ._servers import ServerFactory


@pytest.mark.parametrize(
    ("policy", "maxmemory", "code", "warned"),
    [
        ("allkeys-lru", "100mb", 1, True),
        ("allkeys-random", "0", 0, True),
        ("volatile-lru", "100mb", 0, False),  # only keys with a TTL: no record has one
        ("noeviction", "100mb", 0, False),
    ],
)
def test_doctor_warns_when_redis_may_evict_the_swarms_records(
    servers: ServerFactory, policy: str, maxmemory: str, code: int, warned: bool
) -> None:
    server = servers.start(extra=["--maxmemory-policy", policy, "--maxmemory", maxmemory])
    try:
        cli = Cli(server.url)
        report = cli("doctor", "--json", expect=code).json()
        assert report["maxmemory_policy"] == policy
        assert report["ok"] is (code == 0)
        # (the test server keeps nothing on disk: warned of apart, test_doctor_persistence.py)
        warnings = [w for w in report.get("warnings", []) if "in memory only" not in w]
        assert bool(warnings) is warned
        if warned:
            assert policy in warnings[0] and "set maxmemory-policy noeviction" in warnings[0]
        human = cli("doctor", expect=code)
        assert ("warning: maxmemory-policy is" in human.stdout) is warned
    finally:
        server.stop()
