"""The Python API as the 58th walk found it: ``Page`` and ``Inbox`` had no ``to_dict()``
while every other model returned does (a face renders JSON from it), and the role objects
(the seed's, V1's, the modern ones) showed Python's default repr. Real servers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from redis_swarm import (
    Coordinator,
    EphemeralWorker,
    MemoryShard,
    RedisSwarmCoordinator,
    SonnetCoordinator,
    Swarm,
    SwarmMemoryShard,
    Worker,
)
from redis_swarm._codec import dumps

from ._servers import RedisServer, ServerFactory

PASSWORD = "walk58-s3cret"


def _name(what: str) -> str:
    return f"{what}-{time.monotonic_ns()}"


# --- 1. Page and Inbox as dicts, as every record returned


def test_a_page_is_a_dict_as_its_records_are(redis_url: str) -> None:
    """``findings()``'s page: ``to_dict()`` holds each finding's ``to_dict()``, the cursor
    and the corrupt ids; ``to_json()`` and the one encoder (``dumps``) give the same JSON
    (it raised TypeError: a Page is no record)."""
    with Swarm(redis_url, swarm=_name("page")) as swarm:
        swarm.post_tasks([{"queue": "q", "description": d} for d in ("one", "two")])
        for _ in range(2):
            held = swarm.claim(["q"], worker="w")
            assert held is not None
            swarm.report(held.id, held.token, {"summary": f"s {held.id}"}, worker="w")
        page = swarm.findings(limit=1)
        assert len(page) == 1 and page.cursor is not None
        out = page.to_dict()
        assert out == {
            "items": [page[0].to_dict()],
            "cursor": page.cursor,
            "corrupt": [],
        }
        assert json.loads(page.to_json()) == out
        assert json.loads(dumps(page)) == out
        assert swarm.findings(cursor=page.cursor).to_dict()["cursor"] is None


def test_an_inbox_is_a_dict_with_what_the_read_says(redis_url: str) -> None:
    """``inbox()``: ``to_dict()`` holds each message's ``to_dict()``, ``more``,
    ``read_id`` and ``trimmed``; ``to_json()`` the same as JSON. The Inbox stays a list."""
    with Swarm(redis_url, swarm=_name("inbox")) as swarm:
        swarm.register("worker", name="reader")
        swarm.register("worker", name="sender")
        sent = [swarm.send("reader", f"hello {n}", sender="sender") for n in range(2)]
        inbox = swarm.inbox("reader", limit=1)
        assert [m.id for m in inbox] == [sent[0].id]
        out = inbox.to_dict()
        assert out == {
            "items": [inbox[0].to_dict()],
            "more": True,
            "read_id": inbox.read_id,
            "trimmed": None,
        }
        assert inbox.read_id is not None
        assert json.loads(inbox.to_json()) == out
        assert isinstance(json.loads(dumps(inbox)), list)  # (a list, encoded as one)
        peeked = swarm.inbox("reader", ack=False)
        assert peeked.to_dict()["read_id"] is None and not peeked.to_dict()["more"]


# --- 2. the roles' repr: class, agent, swarm; never the password


@pytest.fixture(scope="module")
def locked(servers: ServerFactory) -> Iterator[RedisServer]:
    """A server of the module's own that asks for a password."""
    server = servers.start()
    server.client().config_set("requirepass", PASSWORD)
    yield server
    server.stop()


def _url(server: RedisServer) -> str:
    return f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"


@pytest.mark.parametrize(
    ("cls", "kwargs", "named"),
    [
        (SwarmMemoryShard, {"agent_id": "shard-a"}, "agent_id='shard-a'"),
        (MemoryShard, {"agent_id": "shard-b"}, "agent_id='shard-b'"),
        (SonnetCoordinator, {"agent_id": "coord-a"}, "agent_id='coord-a'"),
        (Coordinator, {"agent_id": "coord-b"}, "agent_id='coord-b'"),
        (EphemeralWorker, {"worker_id": "worker-a"}, "worker_id='worker-a'"),
        (Worker, {"worker_id": "worker-b"}, "worker_id='worker-b'"),
        (RedisSwarmCoordinator, {}, "agent_id=None"),
    ],
)
def test_a_role_says_its_class_agent_and_swarm_not_its_password(
    locked: RedisServer, cls: type[Any], kwargs: dict[str, Any], named: str
) -> None:
    """``repr(role)``: ``Class(agent_id=..., swarm=..., url=...)``, the URL as ``Swarm``'s
    repr shows it (its password as ``***``); ``closed=True`` once closed. It was
    ``<redis_swarm.roles._seed.SwarmMemoryShard object at 0x...>``."""
    swarm = _name("roles")
    role = cls(url=_url(locked), swarm=swarm, **kwargs)
    with role:
        shown = repr(role)
        assert shown.startswith(f"{cls.__name__}({named}, swarm={swarm!r}, url='redis://"), shown
        assert PASSWORD not in shown and "***" in shown, shown
        assert len(shown) < 200, shown
    assert repr(role).endswith(", closed=True)"), repr(role)
    assert PASSWORD not in repr(role)


def test_a_v1_coordinator_names_the_agent_it_registered(locked: RedisServer) -> None:
    """V1's coordinator acts as no agent until ``register_agent``: then as that one."""
    with RedisSwarmCoordinator(url=_url(locked), swarm=_name("v1")) as v1:
        agent = v1.register_agent("haiku_worker")
        assert repr(v1).startswith(f"RedisSwarmCoordinator(agent_id={agent!r}, "), repr(v1)


def test_a_role_given_a_handle_shows_its_swarm(redis_url: str) -> None:
    """A role made on a shared ``Swarm`` handle names that handle's swarm."""
    handle = Swarm(redis_url, swarm=_name("shared"))
    with handle, Worker(swarm=handle, worker_id="w-shared") as worker:
        assert repr(worker) == (
            f"Worker(worker_id='w-shared', swarm={handle.name!r}, url={handle.settings.url!r})"
        )
