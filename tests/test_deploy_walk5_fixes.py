"""The fifth deployment walkthrough's fixes, on real servers.

1. A ``unix://`` URL with two slashes (``unix://tmp/r.sock``) dropped its first path part as a
   host (redis-py does), and the error named a socket the user never typed: refused when
   read, naming the URL to write (the host folded back into the path); ``localhost``, the one
   host that means this machine, is taken.
2. Behind Sentinel, the NOREPLICAS error's ``-h MASTER -p PORT`` said nothing of where to
   find the master: it names the master that refused (the refusal carries its connection).
3. A worker's post of a pass said passes are posted by "a shard (or admin)" user: a
   coordinator may too, and does.
4. A Sentinel URL whose service name no sentinel can have is refused when the URL is read,
   as one with no name is (exit 2, the server never asked), not when a client is made.
5. The strict-durability refusal told to turn on AOF that was on: it says only the steps
   still missing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from redis_swarm import ConfigError, ConnectionFailed, Settings, Swarm
from redis_swarm._acl import AclUser
from redis_swarm._embedded import _version_of

from ._cli import Cli
from ._sentinel import LocalSentinel, running_sentinel
from ._servers import RedisServer, ServerFactory, free_port, system_redis
from .test_acl import SWARM, acl_server, users  # noqa: F401 (test_acl's fixtures)


def _said(text: str) -> str:
    return re.sub(r"\s+", " ", text)


# --- 1. unix://HOST/path


def test_a_unix_url_with_two_slashes_is_refused_naming_the_url_to_write() -> None:
    out = Cli("unix://tmp/walk/home/redis.sock")("status", expect=2)
    said = _said(out.stderr)
    assert "names the host 'tmp', which a unix URL does not take" in said, said
    assert "write it as unix:///tmp/walk/home/redis.sock" in said, said
    assert "cannot reach" not in said and "unix:///walk" not in said, said


def test_the_url_to_write_keeps_the_login_masked_and_the_options() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_url("unix://w:s3cret-pw@run/redis.sock?db=2")
    said = str(info.value)
    assert "write it as unix://***@/run/redis.sock?db=2" in said, said
    assert "s3cret" not in said, said


def test_a_login_written_without_its_at_is_never_shown() -> None:
    """``unix://default:secret/run/r.sock`` (the '@' forgotten): the host part is a login,
    and neither it nor the URL is shown, only where a login goes."""
    with pytest.raises(ConfigError) as refused:
        Settings.from_url("unix://default:s3cret-pw/run/redis.sock")
    said = str(refused.value)
    assert "s3cret-pw" not in said and "default" not in said, said
    assert "a login goes before an '@' (unix://USER:PASSWORD@/path/to/redis.sock)" in said


def test_localhost_is_the_one_host_a_unix_url_takes(servers: ServerFactory) -> None:
    server = servers.start(unix=True)
    try:
        settings = Settings.from_url(f"unix://localhost{server.socket_path}")
        assert settings == Settings.from_url(f"unix://{server.socket_path}")
        with Swarm(settings.with_swarm("walk5")) as swarm:
            assert swarm.post_task("q", "x").queue == "q"
    finally:
        server.stop()


# --- 2. NOREPLICAS behind Sentinel


@pytest.fixture(scope="module")
def sentinel(servers: ServerFactory) -> Iterator[LocalSentinel]:
    with running_sentinel(servers) as setup:
        yield setup


def test_the_noreplicas_error_behind_sentinel_names_the_master(
    sentinel: LocalSentinel,
) -> None:
    master = sentinel.node(sentinel.master_port())
    client = master.client()
    with Swarm(sentinel.url + "?retries=1", swarm="walk5") as swarm:
        swarm.post_task("q", "before")  # (the library loaded while writes are taken)
        client.config_set("min-replicas-to-write", "2")  # (it has 1 replica)
        try:
            with pytest.raises(ConnectionFailed) as refused:
                swarm.post_task("q", "refused")
        finally:
            client.config_set("min-replicas-to-write", "0")
            client.close()
    said = str(refused.value)
    # the master that refused, named: the refusal carries the connection that met it
    named = (
        f"-h 127.0.0.1 -p {master.port} --user ADMIN --askpass CONFIG SET min-replicas-to-write 0"
    )
    assert named in said, said
    assert "MASTER" not in said.replace("min-replicas", ""), said


# --- 3. who posts a pass


def test_a_worker_is_told_a_coordinator_posts_passes_too_and_one_does(
    acl_server: RedisServer,  # noqa: F811
    users: dict[str, AclUser],  # noqa: F811
) -> None:
    def cli(role: str) -> Cli:
        spec = users[role]
        return Cli(f"redis://{spec.user}:{spec.password}@127.0.0.1:{acl_server.port}", SWARM)

    out = cli("worker")("task", "post", "review", "x", "--pass", "p1", expect=1)
    said = _said(out.stderr)
    assert "passes are posted by a shard, coordinator or admin user" in said, said
    assert "or as a shard or coordinator user" in said, said
    cli("coordinator")("task", "post", "review", "x", "--pass", "p1")  # as it says


# --- 4. a Sentinel service name, checked when the URL is read


@pytest.mark.parametrize("service", ["", "/my master", "/my&master"])
def test_a_bad_sentinel_service_name_is_refused_at_once_as_a_missing_one_is(
    service: str,
) -> None:
    url = f"redis+sentinel://127.0.0.1:{free_port()}{service}"  # (nothing listens there)
    out = Cli(url)("status", expect=2)
    said = _said(out.stderr)
    assert "write it as redis+sentinel://[USER:PASSWORD@]HOST:PORT" in said, said
    assert "answered" not in said, said  # (no sentinel was asked)
    if service:
        with pytest.raises(ConfigError, match="cannot be a Sentinel service name"):
            Settings.from_url(url)
        assert f"in {url!r} cannot be" in said, said  # (the URL as written)


# --- 5. strict durability: only the steps still missing


def test_strict_on_aof_everysec_before_7_2_says_only_what_is_missing(
    servers: ServerFactory,
) -> None:
    binary = system_redis()
    version = _version_of(binary) or (0, 0)
    if version[:2] >= (7, 2):
        pytest.skip(f"Redis {version} has WAITAOF: strict holds on AOF with everysec")
    server = servers.start(binary=binary, appendonly=True)  # (appendfsync everysec)
    try:
        with (
            Swarm(f"{server.url}?durability=strict", swarm="walk5") as swarm,
            pytest.raises(ConfigError) as refused,
        ):
            swarm.post_task("q", "x")
    finally:
        server.stop()
    said = str(refused.value)
    assert "appendonly is yes, appendfsync is everysec, 0 replica(s)" in said, said
    assert "CONFIG SET appendonly yes" not in said and "Turn AOF on" not in said, said
    assert "Make AOF fsync every write (CONFIG SET appendfsync always)" in said, said
    assert "or use Redis >= 7.2, which waits for AOF as it is (WAITAOF)" in said, said
    assert "or add a replica (WAIT)" in said, said


def test_the_error_names_the_steps_each_server_misses() -> None:
    from redis_swarm._durability import choose

    def said(version: str, aof: int, appendfsync: str) -> str:
        info: dict[str, Any] = {"redis_version": version, "aof_enabled": aof}
        with pytest.raises(ConfigError) as refused:
            choose(info, appendfsync, "redis://h:1/0")
        return str(refused.value)

    off = said("7.0.15", 0, "everysec")
    assert "Turn AOF on with fsync on every write (CONFIG SET appendonly yes; CONFIG SET " in off
    assert "use Redis >= 7.2 with appendonly yes (WAITAOF)" in off
    always = said("7.2.4", 0, "always")  # (AOF on alone: one step, whatever the version)
    assert "Turn AOF on (CONFIG SET appendonly yes), or add a replica" in always, always
    fsync_no = said("7.2.4", 1, "no")
    assert "CONFIG SET appendonly yes" not in fsync_no, fsync_no
    assert "let AOF fsync once a second (CONFIG SET appendfsync everysec" in fsync_no, fsync_no
