"""``swarm doctor`` reads whether each replica follows its master, on Sentinel too: the
sentinels list each replica's ``master-link-status`` (its own INFO, as they read it), and a
replica whose link is down while the master is up (one that cannot log in to it) was counted
up and said nothing of. Now it is named in a warning in the cluster check's words, counted out
of the replicas up, and listed in ``replica_links_down``, the cluster's JSON key. And the human
row says, as the JSON does, that a user that may not run INFO (a worker on a cluster) did not
check the replicas' links, where it said nothing. Real servers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from redis_swarm import Settings, apply_role
from redis_swarm._topology import REPLICA_LINKS_NOT_VISIBLE

from ._cli import Cli
from ._cluster import LocalCluster
from ._sentinel import SERVICE, LocalSentinel, guarded_sentinel
from ._servers import ServerFactory
from ._waiting import until

pytestmark = pytest.mark.slow

SWARM = "links"
# The sentinels read a replica's INFO every 10 s: the link seen down within two looks.
SEEN_S = 25.0


@pytest.fixture(scope="module")
def sentinel(servers: ServerFactory) -> Iterator[LocalSentinel]:
    with guarded_sentinel(servers) as setup:
        yield setup


def _rows(cli: Cli) -> dict[str, str]:
    """The human report: row name -> its text, wrapped lines joined."""
    rows: dict[str, str] = {}
    last = ""
    for line in cli("doctor", expect=None, env={"COLUMNS": "1000"}).stdout.splitlines():
        if line.startswith("warning:") or not line.strip():
            last = ""
        elif line.startswith("  ") and last:
            rows[last] += " " + line.strip()
        else:
            key, _, value = line.strip().partition(" ")
            rows[key], last = value.strip(), key
    return rows


def _link_status(setup: LocalSentinel) -> set[str]:
    """Each replica's master-link-status as every sentinel lists it."""
    seen: set[str] = set()
    for node in setup.sentinels:
        with redis.Redis(port=node.port or 0, decode_responses=True) as client:
            for replica in client.execute_command("SENTINEL", "REPLICAS", SERVICE):
                fields: Any = replica
                if not isinstance(fields, dict):
                    fields = dict(zip(fields[::2], fields[1::2], strict=True))
                seen.add(str(fields.get("master-link-status")))
    return seen


def _refuse_its_login(replica: redis.Redis, broken: bool) -> None:
    """The replica logs in to its master as a user the master does not have (as a replica
    without masteruser/masterauth does once the master's default user is off), or as before;
    its link dropped, so that it logs in again now."""
    replica.config_set("masteruser", "nobody" if broken else "")
    replica.config_set("masterauth", "no-such-password" if broken else "")
    replica.client_kill_filter(_type="master")


def test_a_replica_that_does_not_follow_its_master_is_named(sentinel: LocalSentinel) -> None:
    sentinel.wait_ready()
    cli = Cli(sentinel.url, swarm=SWARM)
    healthy = cli.json("doctor")
    assert healthy["sentinel"]["replica_links_down"] == [], healthy["sentinel"]
    assert healthy["sentinel"]["replicas_up"] == 1
    replica = f"127.0.0.1:{sentinel.replica.port}"
    master = f"127.0.0.1:{sentinel.master_port()}"
    with sentinel.replica.client() as client:
        _refuse_its_login(client, broken=True)
        try:
            until(lambda: _link_status(sentinel) == {"err"}, "link seen down", SEEN_S)
            # (exit 1: the master, min-replicas-to-write 1, refuses writes with no replica
            # following it; that row says so)
            report = cli("doctor", "--json", expect=1).json()
            rows = _rows(cli)
        finally:
            _refuse_its_login(client, broken=False)
    assert report["min_replicas_to_write"].startswith("refusing writes now (0 good replicas")
    state = report["sentinel"]
    assert state["replica_links_down"] == [replica], state
    assert state["replicas"] == 1 and state["replicas_up"] == 0, state
    (warning,) = [w for w in report["warnings"] if "does not follow its master" in w]
    assert warning.startswith(
        f"replica {replica} does not follow its master {master} (master_link_status:down on "
        f"{replica}, down for "
    ), warning
    # The cluster check's words, from one place: the cause and what to do.
    assert "Most often the replica cannot log in to its master (NOAUTH or WRONGPASS" in warning
    assert "masteruser and masterauth for the replication user" in warning
    # Not told to start a replica: it runs, and the warning above says what it lacks.
    assert not [w for w in report["warnings"] if "no replica of" in w], report["warnings"]
    assert "1 replica, down; failover:" in rows["sentinel"], rows["sentinel"]
    sentinel.wait_ready()


@pytest.fixture(scope="module")
def worker_url(redis_cluster: LocalCluster) -> str:
    redis_cluster.wait_ok()
    made = apply_role(Settings.from_url(redis_cluster.url), "worker", "links-worker", swarm=SWARM)
    return redis_cluster.url.replace("://", f"://links-worker:{made.user.password}@")


def test_the_cluster_row_says_the_links_were_not_checked(worker_url: str) -> None:
    """A worker may not run INFO: its JSON said the links were not checked, its row nothing."""
    cli = Cli(worker_url, swarm=SWARM)
    said = cli.json("doctor")["cluster"]["replica_links_down"]
    assert said == REPLICA_LINKS_NOT_VISIBLE
    row = _rows(cli)["cluster"]
    assert f"3 of them up; replica links {REPLICA_LINKS_NOT_VISIBLE}; 6 of 6 nodes" in row, row
    assert "may not run INFO" in row
