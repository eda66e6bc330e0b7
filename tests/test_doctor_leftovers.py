"""Operator-facing leftovers of ``swarm doctor`` and ``swarm watch``: a cluster's masters'
``min-replicas-to-write`` row; a server that refuses writes for memory while INFO still shows
room below ``maxmemory`` (the write's own request counts); and a watch that meets a
certificate that does not verify, which no retry will fix."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import ConnectionFailed, Swarm

from ._cli import Cli
from ._cluster import LocalCluster
from ._servers import RedisServer, ServerFactory
from ._tls import make_pki, start_tls_server
from .test_doctor_memory import ballasted  # noqa: F401  (a server with 8 MB of another app)

SWARM = "test"


def _swarm(*args: str, url: str) -> list[str]:
    return [sys.executable, "-m", "redis_swarm", "--url", url, "--swarm", SWARM, *args]


# --- swarm watch: a certificate that does not verify is said and ends the watch


def test_watch_exits_when_the_server_certificate_no_longer_verifies(
    servers: ServerFactory, tmp_path: Path
) -> None:
    """The server now presents a certificate that does not name the host of the URL (as
    after a certificate swapped for a wrong one): the watch exits 1 with the error every
    command gives for it and what to do, instead of retrying it for ever. (A transient
    outage is still ridden out: tests/test_watch_outage.py.)"""
    pki = make_pki(tmp_path / "pki")
    server = start_tls_server(servers, pki)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONUNBUFFERED", "FORCE_COLOR")}
    watch = subprocess.Popen(
        _swarm("watch", "--interval", "1", url=server.url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert watch.stdout is not None
        first = [watch.stdout.readline()]
        while "no context yet" not in first[-1] and first[-1]:
            first.append(watch.stdout.readline())
        assert "no queue with tasks" in "".join(first), first
        with contextlib.closing(server.client()) as admin:
            # (both at once: Redis checks the pair it is left with)
            admin.execute_command(  # type: ignore[no-untyped-call]
                "CONFIG", "SET", "tls-cert-file", str(pki.wrong_host_cert),
                "tls-key-file", str(pki.wrong_host_key),
            )  # fmt: skip
            admin.client_kill_filter(_type="normal", skipme=True)  # the watch reconnects
        _, err = watch.communicate(timeout=20)
        # What any command says of this server now (here: watch --once, which never retried).
        once = subprocess.run(
            _swarm("watch", "--once", url=server.url),
            capture_output=True, text=True, timeout=20, env=env,
        )  # fmt: skip
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.communicate()
        server.stop()
    assert watch.returncode == 1, err
    assert once.returncode == 1 and err == once.stderr, (err, once.stderr)
    # That wording: what is wrong, and what to do; said once, no retrying announced.
    assert err.startswith("error: TLS to rediss://127.0.0.1:"), err
    assert "refused: the server's certificate does not name this host" in err, err
    assert "connect by a name or IP the certificate lists" in err, err
    assert "retrying" not in err and err.count("\n") == 1, err


# --- swarm doctor on a cluster: each master's min-replicas-to-write


@pytest.fixture
def masters(redis_cluster: LocalCluster) -> Iterator[list[str]]:
    """The session cluster's masters (host:port), their min-replicas-to-write set back to 0
    (the cluster's own) after the test."""
    redis_cluster.wait_ok()
    ports = redis_cluster.masters()
    yield [f"127.0.0.1:{port}" for port in ports]
    for port in ports:
        with contextlib.closing(redis_cluster.node(port).client()) as node:
            node.config_set("min-replicas-to-write", 0)


def _set_guard(cluster: LocalCluster, where: str, to_write: int) -> None:
    port = int(where.rpartition(":")[2])
    with contextlib.closing(cluster.node(port).client()) as node:
        node.config_set("min-replicas-to-write", to_write)


def test_doctor_shows_each_cluster_masters_min_replicas_to_write(
    redis_cluster: LocalCluster, masters: list[str]
) -> None:
    cli = Cli(redis_cluster.url)
    report = cli.json("doctor", "--quick")
    assert report["ok"] is True
    row = report["min_replicas_to_write"]
    assert row == "; ".join(f"{m}: 0, max lag 10 s: off" for m in sorted(masters)), row
    [warning] = [w for w in report["warnings"] if "min-replicas-to-write is 0" in w]
    assert f"on 3 masters of the cluster ({', '.join(sorted(masters))})" in warning
    # What to set, below the cluster's own timeout (tests/_cluster.py: 2000 ms).
    assert "cluster-node-timeout (2000 ms here)" in warning, warning
    assert "Set min-replicas-to-write 1 and min-replicas-max-lag 1 on every node" in warning
    assert "docs/deployment.md, 'Redis Cluster'" in warning and "\n" not in warning

    # Set on one master: the warning names the two others only.
    first, *others = sorted(masters)
    _set_guard(redis_cluster, first, 1)
    report = cli.json("doctor", "--quick")
    assert report["ok"] is True
    assert f"{first}: 1, max lag 10 s;" in report["min_replicas_to_write"]
    [warning] = [w for w in report["warnings"] if "min-replicas-to-write is 0" in w]
    assert f"on 2 masters of the cluster ({', '.join(others)})" in warning
    assert first not in warning

    # Set above the replicas a master has: it refuses every write, and doctor fails.
    _set_guard(redis_cluster, first, 2)
    report = cli.json("doctor", "--quick", expect=1)
    assert report["ok"] is False
    assert (
        f"{first}: refusing writes now (1 good replica, 2 needed" in report["min_replicas_to_write"]
    )
    [refusal] = [w for w in report["warnings"] if "refuses every write now" in w]
    assert first in refusal and "CONFIG SET min-replicas-to-write 1" in refusal
    human = cli("doctor", "--quick", expect=1).stdout
    assert "min_replicas_to_write" in human and "warning: min-replicas-to-write is 0" in human


# --- swarm doctor: writes refused for memory while INFO still shows room below maxmemory


def _leave(server: RedisServer, left: int) -> None:
    """maxmemory set ``left`` bytes above the memory in use now, under noeviction."""
    with contextlib.closing(server.client()) as admin:
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", int(admin.info("memory")["used_memory"]) + left)


def _post(server: RedisServer, data_bytes: int) -> None:
    with Swarm(server.url, swarm=SWARM) as swarm:
        swarm.post_task("q", "a post", data={"blob": "x" * data_bytes})


def test_doctor_fails_while_writes_are_refused_below_maxmemory(
    ballasted: RedisServer,  # noqa: F811
) -> None:
    """Redis counts a write's own request against maxmemory before it takes it: with 150 KB
    left, a post of 100 KB of data is refused (out of memory) while INFO shows the memory in
    use below maxmemory; doctor fails saying so, not only warns. At maxmemory every write is
    refused. With room for it, the post is taken and doctor passes."""
    cli = Cli(ballasted.url)
    # (a first doctor leaves Redis's memory in use some 100-200 KB higher for good, whatever
    # the server's allocator keeps of its replies: run it before the room is measured)
    cli("doctor", "--quick", expect=None)
    _leave(ballasted, 150_000)
    with pytest.raises(ConnectionFailed) as refused:
        _post(ballasted, 100_000)
    assert "out of memory" in str(refused.value)
    report = cli.json("doctor", "--quick", expect=1)
    assert report["ok"] is False
    assert report["used_memory_bytes"] < report["maxmemory_bytes"]  # room, as INFO tells
    assert report["memory"].startswith("may refuse writes now: "), report["memory"]
    [warning] = [w for w in report["warnings"] if w.startswith("Redis may refuse writes now: ")]
    assert "bytes are left below maxmemory" in warning and "100 KB" in warning, warning
    assert "CONFIG SET maxmemory" in warning and "swarm gc" in warning and "\n" not in warning
    assert "warning: Redis may refuse writes now" in cli("doctor", "--quick", expect=1).stdout

    _leave(ballasted, 0)  # (at maxmemory: a new connection's request alone goes over it)
    with pytest.raises(ConnectionFailed):
        _post(ballasted, 10)
    report = cli.json("doctor", "--quick", expect=1)
    assert report["memory"].startswith("refusing every write now: "), report["memory"]
    assert any(w.startswith("Redis refuses every write now: ") for w in report["warnings"])

    _leave(ballasted, 1_000_000)
    _post(ballasted, 100_000)  # taken
    report = cli.json("doctor", "--quick")
    assert report["ok"] is True
    assert report["memory"].endswith("of maxmemory: close to refusing writes (see the warnings)")
