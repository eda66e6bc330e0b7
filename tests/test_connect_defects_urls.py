"""Cluster and Sentinel URLs written wrong, or pointing at the wrong servers: a ConfigError or a
ConnectionFailed that says what is wrong and how the URL is written, never a redis-py
traceback; a service name no Sentinel can have is refused at once; sentinels that do not
answer are said in one short line."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from redis_swarm import AsyncSwarm, ConfigError, ConnectionFailed, Settings, Swarm, SwarmError

from ._servers import RedisServer, ServerFactory, _spawn, _wait_ready, free_port, system_redis

SWARM = "urls"
CLUSTER_FORM = "write it as redis+cluster://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]"
SENTINEL_FORM = "write it as redis+sentinel://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]/SERVICE"


def _refusal(url: str, kind: str) -> SwarmError:
    """What making a handle on ``url`` and pinging raises, sync or asyncio."""
    if kind == "sync":
        with pytest.raises(SwarmError) as info, Swarm(url, swarm=SWARM) as swarm:
            swarm.ping()
        return info.value

    async def ping() -> None:
        async with AsyncSwarm(url, swarm=SWARM) as swarm:
            await swarm.ping()

    with pytest.raises(SwarmError) as ainfo:
        asyncio.run(ping())
    return ainfo.value


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("redis+cluster://host name:7000", "'host name' in "),
        ("redis+cluster://h_1..:7000", "'h_1..' in "),
        ("redis+cluster://10.0.0.5:7000,bad&host:7001", "'bad&host' in "),
        ("redis+cluster://[::1:7000", "an IPv6 host is written in brackets"),
        # (Python 3.10's URL parser takes the brackets, and the host is then told as no
        # IPv6 address; 3.11's refuses them)
        ("redis+cluster://[node-1]:7000", "in brackets"),
        ("redis+cluster://:7000", "a host is missing"),
        ("redis+cluster://10.0.0.5:70000", "port 70000"),
        ("redis+cluster://10.0.0.5:seven", "port 'seven'"),
        ("redis+cluster://10.0.0.5:7000/0", "a cluster URL has no database"),
        ("redis+sentinel://10.0.0.5:26379", "no service name"),
        ("redis+sentinel://10.0.0.5:26379/", "no service name"),
        ("redis+sentinel://10.0.0.5:port/mymaster", "port 'port'"),
        ("redis+sentinel://sentinel one:26379/mymaster", "'sentinel one' in "),
        ("redis+sentinel://10.0.0.5:26379/mymaster/0/x", "too many path parts"),
    ],
)
def test_a_url_written_wrong_is_a_config_error_that_shows_the_form(url: str, said: str) -> None:
    with pytest.raises(ConfigError) as info:
        Swarm(url, swarm=SWARM)
    message = str(info.value)
    assert said in message, message
    form = CLUSTER_FORM if "+cluster" in url else SENTINEL_FORM
    assert form in message and "e.g. redis+" in message, message


def test_a_tls_option_on_a_plain_url_says_to_use_rediss() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_url("redis+cluster://10.0.0.5:7000?ssl_ca_certs=/etc/ca.pem")
    assert "ssl_ca_certs is for TLS: use the rediss scheme" in str(info.value)


@pytest.mark.parametrize(
    "service", ["my&master", "my%26master", "my%20master", "my:master", "m%C3%A4ster"]
)
def test_a_service_name_no_sentinel_can_have_is_refused(service: str) -> None:
    with pytest.raises(ConfigError) as info:
        Swarm(f"redis+sentinel://10.0.0.5:26379/{service}", swarm=SWARM)
    message = str(info.value)
    assert "cannot be a Sentinel service name" in message, message
    assert "letters, digits, '.', '-' and '_'" in message and SENTINEL_FORM in message


def test_options_written_into_the_service_name_are_said_to_follow_a_question_mark() -> None:
    with pytest.raises(ConfigError) as info:
        AsyncSwarm("redis+sentinel://10.0.0.5:26379/mymaster&retries=3", swarm=SWARM)
    assert "options come after a '?', as in /mymaster?retries=30" in str(info.value)


def test_good_names_and_hosts_pass() -> None:
    settings = Settings.from_url("redis+sentinel://s-1.local:26380,[::1]/my.master-1_x/2")
    assert settings.service_name == "my.master-1_x" and settings.db == 2
    # An omitted port is Sentinel's own (26379), not the master's.
    assert settings.nodes == (("s-1.local", 26380), ("::1", 26379))
    cluster = Settings.from_url("redis+cluster://redis_1:7000,10.0.0.6:7001,[::1]:7002")
    assert cluster.nodes == (("redis_1", 7000), ("10.0.0.6", 7001), ("::1", 7002))


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_cluster_url_on_a_plain_server_says_use_redis_url(
    redis_server: RedisServer, kind: str
) -> None:
    error = _refusal(f"redis+cluster://127.0.0.1:{redis_server.port}?retries=0", kind)
    assert isinstance(error, ConfigError), error
    message = str(error)
    assert "is not a Redis Cluster (cluster mode is not enabled on it)" in message, message
    assert message.endswith(f"redis://127.0.0.1:{redis_server.port}?retries=0"), message


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_cluster_no_node_of_which_answers_is_connection_failed(kind: str) -> None:
    port = free_port()
    error = _refusal(f"redis+cluster://127.0.0.1:{port}?retries=0", kind)
    assert isinstance(error, ConnectionFailed), error
    message = str(error)
    assert "no node of the URL answered" in message and f"127.0.0.1:{port}" in message, message
    assert "redis+cluster://HOST:PORT[,HOST:PORT...]" in message


# --- sentinels that do not answer


@pytest.fixture(scope="module")
def lone_sentinel(servers: ServerFactory) -> Iterator[RedisServer]:
    """A real sentinel that monitors nothing."""
    binary = system_redis()
    workdir = servers.new_dir()
    port = free_port()
    config = workdir / "sentinel.conf"
    config.write_text(f"port {port}\nbind 127.0.0.1\ndir {workdir}\n")
    args = [binary, str(config), "--sentinel"]
    server = RedisServer(_spawn(args, workdir), workdir, port=port, args=args)
    servers.servers.append(server)
    _wait_ready(server)
    yield server
    server.stop()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_sentinels_that_do_not_answer_are_said_in_one_short_line(
    redis_server: RedisServer, kind: str
) -> None:
    closed, plain = free_port(), redis_server.port
    url = f"redis+sentinel://127.0.0.1:{closed},127.0.0.1:{plain}/mymaster?retries=0"
    error = _refusal(url, kind)
    assert isinstance(error, ConnectionFailed), error
    message = str(error)
    assert len(message) < 400, (len(message), message)
    assert message.startswith("no Sentinel of redis+sentinel://"), message
    assert f"tried 127.0.0.1:{closed} (Connection refused)" in message, message
    assert f"127.0.0.1:{plain} (not a Sentinel: unknown command 'SENTINEL')" in message
    assert "check that the sentinels run" in message and "26379 by default" in message
    assert "<redis" not in message and "ConnectionPool" not in message


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_sentinels_that_know_no_such_master_say_check_the_service_name(
    lone_sentinel: RedisServer, kind: str
) -> None:
    closed = free_port()
    url = f"redis+sentinel://127.0.0.1:{lone_sentinel.port},127.0.0.1:{closed}/nosuch?retries=0"
    error = _refusal(url, kind)
    # A sentinel's answer that it monitors no such service is an answer: said at once, as
    # a mistake in the URL (not retried as an outage would be).
    assert isinstance(error, ConfigError), error
    message = str(error)
    assert len(message) < 600, (len(message), message)
    assert f"127.0.0.1:{lone_sentinel.port} monitors no master at all" in message, message
    assert f"no answer from 127.0.0.1:{closed} (Connection refused)" in message, message
    assert "SENTINEL MONITOR nosuch" in message, message
