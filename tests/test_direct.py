"""A handle's commands (``_direct.Direct``), one or several in one round trip: the
connection it keeps between them, handed back to a pipeline, replaced when the server closed
it, never shared with a fork."""

from __future__ import annotations

import os
from typing import Any

import pytest
import redis

from redis_swarm import ConnectionFailed, Settings, Swarm
from redis_swarm._direct import Direct
from redis_swarm._protocol import Batch, Cmd, Operation


def _one(request: Cmd | Batch) -> Operation[Any]:
    reply = yield request
    return reply


def _client_id(swarm: Swarm) -> int:
    return int(swarm._run(_one(Cmd("CLIENT", "ID"))))


def test_single_commands_keep_one_connection_and_a_pipeline_takes_it(redis_url: str) -> None:
    with Swarm(redis_url, swarm="direct") as swarm:
        first = _client_id(swarm)
        assert _client_id(swarm) == first
        batch = Batch((Cmd("CLIENT", "ID"), Cmd("CLIENT", "ID")))
        assert swarm._run(_one(batch)) == [first, first]  # no second connection opened
        assert _client_id(swarm) == first
        assert isinstance(swarm.redis, redis.Redis)
        pool = swarm.redis.connection_pool
        assert len(pool._in_use_connections) == 1  # the one kept
    assert len(pool._in_use_connections) == 0  # given back at close


def test_a_connection_the_server_closed_is_replaced_before_the_command(
    redis_url: str, raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With no retry, a command sent down the closed connection would fail: the poll of a
    # connection idle longer than POLL_AFTER_S replaces it first.
    monkeypatch.setattr(Direct, "POLL_AFTER_S", 0.0)
    settings = Settings.from_url(redis_url, swarm="direct", retries=0)
    with Swarm(settings) as swarm:
        first = _client_id(swarm)
        raw.client_kill_filter(_id=first)
        assert _client_id(swarm) != first


def test_without_the_poll_the_closed_connection_fails_the_command(
    redis_url: str, raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The other side of the test above: what the poll is for.
    monkeypatch.setattr(Direct, "POLL_AFTER_S", 3600.0)
    settings = Settings.from_url(redis_url, swarm="direct", retries=0)
    with Swarm(settings) as swarm:
        first = _client_id(swarm)
        raw.client_kill_filter(_id=first)
        with pytest.raises(ConnectionFailed):
            _client_id(swarm)
        assert _client_id(swarm) != first  # the failed attempt dropped it: reconnected


def test_a_forked_child_opens_its_own_connection(redis_url: str) -> None:
    with Swarm(redis_url, swarm="direct") as swarm:
        parent = _client_id(swarm)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report its connection's id, then leave at once
            try:
                os.write(write, str(_client_id(swarm)).encode())
            finally:
                os._exit(0)
        os.close(write)
        child = int(os.read(read, 64))
        os.close(read)
        os.waitpid(pid, 0)
        assert child != parent
        assert _client_id(swarm) == parent  # the parent's connection was left alone


def test_a_client_given_with_a_single_connection_is_used_as_it_is(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, single_connection_client=True)
    with Swarm(redis_url, swarm="direct", client=client) as swarm:
        assert swarm._execute == client.execute_command
        assert _client_id(swarm) == client.client_id()


def test_handles_dropped_without_close_give_their_connection_back(redis_url: str) -> None:
    # A client shared by handles made per use (swarm bench makes one per cold fetch).
    client = redis.Redis.from_url(redis_url)
    try:
        for _ in range(20):
            _client_id(Swarm(redis_url, swarm="direct", client=client))
        assert len(client.connection_pool._in_use_connections) == 0
        assert client.connection_pool._created_connections == 1
    finally:
        client.close()


def test_several_commands_go_down_the_kept_connection_with_every_reply_in_order(
    redis_url: str,
) -> None:
    """An error reply is a value in its place (the connection stays in step), and each
    command's response callback applies, as in a pipeline."""
    with Swarm(redis_url, swarm="direct") as swarm:
        first = _client_id(swarm)
        replies = swarm._execute_many(
            [
                ("DEL", "direct:k", "direct:h"),
                ("SET", "direct:k", "v"),
                ("LPUSH", "direct:k", "x"),  # WRONGTYPE
                ("HSET", "direct:h", "f", "1"),
                ("HGETALL", "direct:h"),
                ("CLIENT", "ID"),
            ]
        )
        assert replies[1] is True  # SET's callback
        assert isinstance(replies[2], redis.ResponseError) and "WRONGTYPE" in str(replies[2])
        assert replies[4] == {"f": "1"} or replies[4] == {b"f": b"1"}  # HGETALL's callback
        assert replies[5] == first  # the kept connection, no other opened
        assert _client_id(swarm) == first  # and still in step
        assert isinstance(swarm.redis, redis.Redis)
        assert len(swarm.redis.connection_pool._in_use_connections) == 1  # kept, not released


def test_several_commands_are_sent_again_on_a_new_connection_after_a_failed_attempt(
    redis_url: str, raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Direct, "POLL_AFTER_S", 3600.0)  # no poll: the attempt itself fails
    with Swarm(redis_url, swarm="direct") as swarm:
        first = _client_id(swarm)
        raw.client_kill_filter(_id=first)
        replies = swarm._execute_many([("CLIENT", "ID"), ("PING",)])
        assert replies[0] != first and replies[1] is True
    settings = Settings.from_url(redis_url, swarm="direct", retries=0)
    with Swarm(settings) as swarm:  # without retries the failure is the caller's
        first = _client_id(swarm)
        raw.client_kill_filter(_id=first)
        with pytest.raises(ConnectionFailed):
            swarm._run(_one(Batch((Cmd("CLIENT", "ID"), Cmd("PING")))))
        assert _client_id(swarm) != first
