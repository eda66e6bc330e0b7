"""``apply_role`` behind Sentinel says which replicas it left without the user: the ones the
sentinels report down (it cannot reach them). It skipped them without a word, and the user,
told nothing, lacked the role on them: a failover to one locked the agents out. ``swarm acl
--apply`` warns, naming the replica and what to do (run it again once the replica is back),
and ``--json`` carries them in ``skipped``."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
import redis

from redis_swarm import Settings, apply_role

from ._cli import Cli
from ._sentinel import SERVICE, LocalSentinel, start_sentinel
from ._servers import ServerFactory
from ._waiting import until

SWARM = "acl-skipped"


@pytest.fixture(scope="module")
def sentinel(servers: ServerFactory) -> Iterator[LocalSentinel]:
    """A master, its replica and one sentinel (down-after-milliseconds 1 s: a paused replica
    is reported down within seconds)."""
    made = start_sentinel(servers, sentinels=1)
    yield made
    for server in (*made.sentinels, *made.data_nodes()):
        server.stop()


def _reported_down(setup: LocalSentinel) -> bool:
    port = setup.sentinels[0].port or 0
    with redis.Redis(host="127.0.0.1", port=port, decode_responses=True) as client:
        listed = client.execute_command("SENTINEL", "REPLICAS", SERVICE)
    return any("s_down" in str(entry.get("flags", "")) for entry in listed)


def _has_user(port: int, user: str) -> bool:
    with redis.Redis(host="127.0.0.1", port=port) as client:
        return client.acl_getuser(user) is not None


def test_every_replica_up_none_skipped(sentinel: LocalSentinel) -> None:
    sentinel.wait_ready()
    made = apply_role(Settings.from_url(sentinel.url, swarm=SWARM), "worker", "all-up")
    nodes = {f"127.0.0.1:{node.port}" for node in sentinel.data_nodes()}
    assert set(made.persisted) == nodes and made.skipped == {}
    data = Cli(sentinel.url, swarm=SWARM).json("acl", "--role", "worker", "--user", "all-up2",
                                               "--apply")  # fmt: skip
    assert data["skipped"] == [] and {n["node"] for n in data["applied"]} == nodes


def test_a_replica_reported_down_is_named_with_what_to_do(sentinel: LocalSentinel) -> None:
    sentinel.wait_ready()
    replica = sentinel.node(next(p for p, r in sentinel.roles().items() if r == "slave"))
    master = f"127.0.0.1:{sentinel.master_port()}"
    where = f"127.0.0.1:{replica.port}"
    settings = Settings.from_url(sentinel.url, swarm=SWARM)
    cli = Cli(sentinel.url, swarm=SWARM)
    replica.proc.send_signal(signal.SIGSTOP)  # it stops answering: the sentinel marks it s_down
    try:
        until(lambda: _reported_down(sentinel), "the sentinel reports the replica down")
        made = apply_role(settings, "worker", "while-down")
        assert list(made.persisted) == [master]
        assert made.skipped == {where: "the sentinels report it down (s_down)"}

        data = cli.json("acl", "--role", "worker", "--user", "while-down-cli", "--apply")
        assert [n["node"] for n in data["applied"]] == [master]
        assert data["skipped"] == [{"node": where, "reason": made.skipped[where]}]

        out = cli("acl", "--role", "worker", "--user", "while-down-cli", "--apply")
        (warning,) = [line for line in out.stderr.splitlines() if where in line]
        assert warning.startswith(f"warning: not applied on replica {where}: the sentinels")
        assert "user 'while-down-cli' is there as it was" in warning
        assert warning.endswith("run this command again once the replica is back")
        assert f"# applied on {master}" in out.stdout and where not in out.stdout
    finally:
        replica.proc.send_signal(signal.SIGCONT)
    sentinel.wait_ready()
    assert not _has_user(replica.port or 0, "while-down")  # what the warning was for
    again = apply_role(settings, "worker", "while-down")  # run again, the replica back
    assert again.skipped == {} and where in again.persisted
    assert _has_user(replica.port or 0, "while-down")
