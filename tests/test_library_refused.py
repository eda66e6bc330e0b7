"""A server without the swarm's Functions library that refuses writes (out of memory, or
cannot persist) refuses its FUNCTION LOAD too, whatever the user: the error is the server's
refusal, naming the library it could not load, not advice to load it as an admin (an
admin's load is refused the same way). Real servers of the test's own."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest
import redis

from redis_swarm import ConnectionFailed, Swarm
from redis_swarm._embedded import _version_of
from redis_swarm._scripts import LIBRARY

from ._servers import RedisServer, ServerFactory


@pytest.fixture
def fresh(servers: ServerFactory) -> Iterator[RedisServer]:
    """A server of the test's own, with Functions (Redis >= 7) and no library loaded."""
    if (_version_of(servers.binary) or (0,))[0] < 7:
        pytest.skip("the library needs Redis Functions (Redis >= 7)")
    extra = ["--save", "3600 1", "--enable-protected-configs", "yes"]  # (CONFIG SET dir)
    server = servers.start(extra=extra)
    with contextlib.closing(server.client()) as admin:
        assert admin.function_list() == []
    try:
        yield server
    finally:
        with contextlib.closing(server.client()) as admin:
            admin.config_set("save", "")  # (else its shutdown might try to save, and fail)
        server.stop()


def _refused(server: RedisServer) -> str:
    """The error of a post to ``server`` (its message), which must load the library first."""
    with Swarm(server.url, swarm="refused") as swarm, pytest.raises(ConnectionFailed) as info:
        swarm.post_task("q.refused", "x")
    return str(info.value)


def _names_the_library(message: str) -> None:
    assert f"the {LIBRARY} function library" in message, message
    assert "could not be loaded" in message, message
    # (not the advice for a user that may not load it: an admin's load is refused too)
    assert "admin user" not in message and "'swarm up'" not in message, message


def test_a_full_server_says_the_library_could_not_be_loaded(fresh: RedisServer) -> None:
    with contextlib.closing(fresh.client()) as admin:
        admin.set("ballast", b"x" * (4 << 20))  # a few MB used, so the limit is below
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", str(1 << 20))
        with pytest.raises(redis.exceptions.OutOfMemoryError):  # an admin is refused too
            admin.function_load("#!lua name=probe\nredis.register_function('p', function() end)")
    message = _refused(fresh)
    _names_the_library(message)
    assert "is out of memory" in message and "free memory" in message, message
    with contextlib.closing(fresh.client()) as admin:
        admin.config_set("maxmemory", "0")  # room again: the next call loads it
    with Swarm(fresh.url, swarm="refused") as swarm:
        assert swarm.post_task("q.refused", "y").id


def test_a_server_that_cannot_persist_says_the_library_could_not_be_loaded(
    fresh: RedisServer,
) -> None:
    with contextlib.closing(fresh.client()) as admin:
        gone = fresh.dir / "gone"
        gone.mkdir()
        admin.config_set("dir", str(gone))
        gone.rmdir()  # (a chmod would not stop root)
        admin.bgsave()
        deadline = time.monotonic() + 15
        while admin.info("persistence")["rdb_last_bgsave_status"] != "err":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with pytest.raises(redis.ResponseError, match=r"^MISCONF"):
            admin.ping()
    message = _refused(fresh)
    _names_the_library(message)
    assert "cannot persist writes" in message and "Free space" in message, message
