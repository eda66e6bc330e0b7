"""The repair commands a damaged record's words give, and the NOREPLICAS advice, reach the
server and log in as a user that may run them, as swarm doctor's other repair commands do
(one ``_durability.redis_cli``): the HDEL of a damaged finding or message entry (the doctor's
row, a refused inbox read) said a bare ``redis-cli HDEL ...``, with no connection and no login
(the default user is off on the documented setup: it stops at NOAUTH); the NOREPLICAS advice
said ``--cluster add-node`` and ``CONFIG SET`` with neither. CONFIG SET and ``--cluster`` are
an admin's alone, as is the repair of what a worker met: those log in as an admin user. Real
servers."""

from __future__ import annotations

import contextlib
import shlex
import subprocess
from types import SimpleNamespace

import pytest
import redis

from redis_swarm import ConnectionFailed, CorruptRecord, Settings, Swarm
from redis_swarm._durability import ADMIN_LOGIN
from redis_swarm._keys import Keys
from redis_swarm._replica_guard import replica_guard
from redis_swarm._translate import refused_write

from ._cli import Cli
from ._cluster import redis_cli
from ._role_users import role_urls
from ._servers import RedisServer

SWARM = "hints"
K = Keys(SWARM)
NOREPLICAS = "NOREPLICAS Not enough good replicas to write."


@pytest.fixture
def server(acl_server: RedisServer) -> RedisServer:
    with contextlib.closing(acl_server.client()) as client:
        client.flushall()
        client.config_set("min-replicas-to-write", "0")
    return acl_server


def _row(url: str) -> str:
    return Cli(url, swarm=SWARM)("doctor", expect=None, env={"COLUMNS": "2000"}).stdout


def test_the_hdel_of_a_damaged_finding_reaches_the_server_and_logs_in(
    server: RedisServer,
) -> None:
    with Swarm(server.url, swarm=SWARM) as swarm:
        swarm.post_task("q", "one")
    with contextlib.closing(server.client()) as client:
        client.hset(K.findings, "f-damaged", "not json {")
    row = " ".join(_row(server.url).split())
    hdel = f"HDEL {shlex.quote(K.findings)} ID"
    assert f"or delete it: redis-cli -u URL {hdel};" in row, row  # (the default user: no login)
    worker = role_urls(server, SWARM, "hl", roles=("worker",))["worker"]
    row = " ".join(_row(worker).split())
    # A worker may delete no finding: an admin user's login.
    assert f"or delete it: redis-cli -u URL {ADMIN_LOGIN}{hdel};" in row, row
    assert "hl-worker" not in row.partition("or delete it")[2].partition(";")[0], row


def test_the_hdel_of_a_damaged_message_entry_logs_in_as_an_admin(server: RedisServer) -> None:
    with Swarm(server.url, swarm=SWARM) as swarm:
        swarm.register("worker", name="a")
        sent = swarm.send("a", "hello", sender="lead")
        with contextlib.closing(server.client()) as client:
            client.hset(K.messages, sent.id, "junk")
        with pytest.raises(CorruptRecord) as caught:
            swarm.message_status(sent.id)
    said = str(caught.value)
    command = f"redis-cli -u URL {ADMIN_LOGIN}HDEL {shlex.quote(K.messages)} {sent.id}"
    assert f"repair it as an admin or shard user (its name for ADMIN): {command} (" in said, said
    # Pasted with the server's URL (its default user: any password logs in), it runs.
    words = shlex.split(command.replace("URL", server.url, 1))
    done = subprocess.run(
        [redis_cli(), *words[1:]],
        input="any\n", capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip().endswith("1"), (command, done)


def test_a_master_refusing_writes_says_the_config_set_with_its_login(
    server: RedisServer,
) -> None:
    with contextlib.closing(server.client()) as client:
        client.config_set("min-replicas-to-write", "1")
    try:
        with Swarm(server.url, swarm=SWARM) as swarm, pytest.raises(ConnectionFailed) as caught:
            swarm.post_task("q", "refused")
        guard = replica_guard(Settings.from_url(server.url, swarm=SWARM))
    finally:
        with contextlib.closing(server.client()) as client:
            client.config_set("min-replicas-to-write", "0")
    lower = f"redis-cli -u URL {ADMIN_LOGIN}CONFIG SET min-replicas-to-write 0"
    assert f"an admin user sets it on the master: {lower}," in str(caught.value), caught.value
    assert guard is not None and guard.warning is not None
    assert f"an admin user lowers the setting: {lower}, and the same" in guard.warning


@pytest.mark.parametrize(
    ("url", "node", "words"),
    [
        (
            "redis+cluster://w:pw-123@10.0.0.5:7000",
            "10.0.0.6:7001",
            [
                f"add one as an admin user (redis-cli {ADMIN_LOGIN}--cluster add-node NEW:PORT "
                "10.0.0.6:7001 --cluster-slave)",
                f"on 10.0.0.6:7001: redis-cli -h 10.0.0.6 -p 7001 {ADMIN_LOGIN}CONFIG SET "
                "min-replicas-to-write 0,",
            ],
        ),
        (
            "rediss+cluster://10.0.0.5:7000?ssl_ca_certs=/c/ca.pem",
            None,
            [
                # (the cluster's TLS options: a node of a rediss cluster takes no plain one)
                f"(redis-cli --tls --cacert /c/ca.pem {ADMIN_LOGIN}--cluster add-node NEW:PORT "
                "MASTER:PORT",
                "on MASTER:PORT: redis-cli -h MASTER -p PORT --tls --cacert /c/ca.pem "
                f"{ADMIN_LOGIN}CONFIG SET min-replicas-to-write 0,",
            ],
        ),
        (
            "redis+sentinel://w:pw-123@10.0.0.9:26379/mymaster/2",
            None,
            [
                "sets it on the master: redis-cli -h MASTER -p PORT -n 2 "
                f"{ADMIN_LOGIN}CONFIG SET min-replicas-to-write 0,"
            ],
        ),
    ],
)
def test_the_noreplicas_advice_reaches_the_node_as_an_admin(
    url: str, node: str | None, words: list[str]
) -> None:
    error = redis.ResponseError(NOREPLICAS)
    if node is not None:  # (as redis-py's cluster client names the node that refused)
        host, _, port = node.rpartition(":")
        error.connection = SimpleNamespace(host=host, port=int(port))  # type: ignore[attr-defined]
    shown = Settings.from_url(url).url
    said = refused_write(error, shown) or ""
    for word in words:
        assert word in said, said
    assert "--user w " not in said, said  # (CONFIG SET, --cluster: an admin's alone)
