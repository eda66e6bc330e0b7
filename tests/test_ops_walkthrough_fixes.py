"""What an operator found following docs/deployment.md, docs/reliability.md and
docs/dashboard.md, on real servers.

- ``swarm acl --apply`` through a Sentinel URL, with a replica up and synced whose only user
  is ``default on nopass`` (added without the aclfile): the user was made on the master and
  the replica skipped with a warning, exit 0. deployment.md ("Adding a replica") says it stops
  before any server gets the user, naming the replica and the step: it does now. A plain
  ``redis://`` URL of a master with replicas applied on the master without a word about them:
  they are named now (``skipped``), with how to include them.
- ``swarm dashboard --host 0.0.0.0`` printed ``http://0.0.0.0:PORT/?token=...``, which no
  other machine can open: it names the machine now, and says it listens on every interface.
- ``/api/status?token=GOOD&token=x`` was a 401 blaming the token; a parameter given twice is
  a 400 naming it, ``token`` included, whichever order (never accepted).
- ``/api/events?since=18446744073709551615-18446744073709551615`` is refused as "not an event
  id": it is one, beyond which no stream can go, and the core's message says so.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

import redis_swarm
from redis_swarm import AsyncSwarm, PermissionDenied, Settings, apply_role
from redis_swarm._net import announced_host, every_interface
from redis_swarm.dashboard.app import create_app

from ._cli import Cli, interrupt
from ._sentinel import LocalSentinel
from .test_acl_apply_operator import _master_and_replica, _raw, sentinel

__all__ = ["sentinel"]  # (the fixture, shared)

SWARM = "ops-walk"
ADMIN_PASSWORD = "ops-walk-password-0123456789"
ADMIN = ("ACL", "SETUSER", "ops", "on", f">{ADMIN_PASSWORD}", "~*", "&*", "+@all")


def test_a_replica_up_without_the_admin_stops_the_apply_naming_it(
    sentinel: LocalSentinel,
) -> None:
    master, replica = _master_and_replica(sentinel)
    with _raw(master) as client:
        client.execute_command(*ADMIN)  # (not replicated: the replica has default alone)
    url = sentinel.url.replace("://", f"://ops:{ADMIN_PASSWORD}@", 1)
    settings = Settings.from_url(url, swarm=SWARM)
    there = f"127.0.0.1:{replica.port}"
    try:
        with pytest.raises(PermissionDenied) as refused:
            apply_role(settings, "worker", "walk-worker")
        said = str(refused.value)
        assert said.startswith(f"authentication failed on replica {there} of ")
        assert f"Create user 'ops' on {there}" in said and "copy the aclfile" in said
        assert said.endswith("Nothing was applied")
        with _raw(master) as client:  # before any server got the user
            assert client.acl_getuser("walk-worker") is None

        out = Cli(url, swarm=SWARM)(
            "acl", "--role", "worker", "--user", "walk-worker", "--apply", expect=None
        )
        assert out.code == 1, out
        assert out.stderr.startswith(f"error: authentication failed on replica {there} of ")
        assert "warning: not applied" not in out.stderr
        with _raw(master) as client:
            assert client.acl_getuser("walk-worker") is None

        with _raw(replica) as client:  # the step the error names
            client.execute_command(*ADMIN)
        made = apply_role(settings, "worker", "walk-worker")
        assert set(made.persisted) == {f"127.0.0.1:{master.port}", there}
        assert made.skipped == {}
    finally:
        for node in (master, replica):
            with _raw(node) as client:
                client.execute_command("ACL", "DELUSER", "ops", "walk-worker")


def test_a_plain_url_names_the_replicas_it_did_not_reach(
    sentinel: LocalSentinel, redis_url: str
) -> None:
    alone = apply_role(Settings.from_url(redis_url, swarm=SWARM), "worker", "lonely-worker")
    assert alone.skipped == {}  # (a server without replicas: nothing more said)
    master, replica = _master_and_replica(sentinel)
    url = f"redis://127.0.0.1:{master.port}"
    there = f"127.0.0.1:{replica.port}"
    try:
        made = apply_role(Settings.from_url(url, swarm=SWARM), "worker", "plain-worker")
        assert len(made.persisted) == 1 and there not in made.persisted
        why = made.skipped[there]
        assert "not reached" in why and "redis+sentinel://" in why and there in why
        with _raw(replica) as client:  # what the warning is for
            assert client.acl_getuser("plain-worker") is None

        cli = Cli(url, swarm=SWARM)
        out = cli("acl", "--role", "worker", "--user", "plain-worker", "--apply")
        (line,) = [line for line in out.stderr.splitlines() if there in line]
        assert line.startswith(f"warning: not applied on replica {there}: a replica of ")
        assert "run this command again once" not in line
        data = cli.json("acl", "--role", "worker", "--user", "plain-worker", "--apply")
        assert [entry["node"] for entry in data["skipped"]] == [there]
    finally:
        with _raw(master) as client:
            client.execute_command("ACL", "DELUSER", "plain-worker")


# --- the dashboard


# Each web face started on every interface, and what its first line must name: the dashboard's
# URL (with its token), the A2A card's, the MCP server's.
_WILDCARD_FACES = {
    "dashboard": (["dashboard"], "?token=walk-token-0123456789"),
    "a2a": (["a2a", "--queue", "q"], "/.well-known/agent-card.json"),
    "mcp": (["mcp", "--transport", "http"], "/mcp"),
}


@pytest.mark.parametrize("face", sorted(_WILDCARD_FACES))
def test_a_wildcard_host_announces_the_machines_name(redis_url: str, face: str) -> None:
    """--host 0.0.0.0 printed (and the A2A card named) http://0.0.0.0:PORT, which no other
    machine can open: each names the machine, and says it listens on every interface."""
    # (the redis_swarm this test imports, as the subprocess's: the tree under test)
    src = str(Path(redis_swarm.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": src, "SWARM_URL": redis_url, "SWARM_NAME": SWARM}
    env["PYTHONUNBUFFERED"] = "1"
    command, shown = _WILDCARD_FACES[face]
    argv = [sys.executable, "-m", "redis_swarm", *command, "--host", "0.0.0.0"]
    argv += ["--port", "0", "--token", "walk-token-0123456789"]
    with subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stderr is not None
            line = proc.stderr.readline()
        finally:
            interrupt(proc)
    assert "0.0.0.0:" not in line, line
    names = {socket.gethostname(), socket.getfqdn()}
    assert any(f"http://{name}:" in line for name in names), line
    assert shown in line and "listening on every interface (0.0.0.0)" in line, line


def test_only_ipv4s_wildcard_is_named_by_the_machine() -> None:
    """``::`` is listened on IPv6 alone (``listen``), and the machine's name may resolve to
    IPv4 alone: its URL stays ``[::]`` (it named the machine, which refused connections)."""
    assert announced_host("::") == ("::", False) and every_interface("::") == ""
    assert announced_host("127.0.0.1") == ("127.0.0.1", False)
    name, wildcard = announced_host("0.0.0.0")
    assert wildcard and name in {socket.gethostname(), socket.getfqdn()}
    assert every_interface("0.0.0.0") == "listening on every interface (0.0.0.0); "


@pytest.fixture
def guarded(redis_url: str) -> Iterator[TestClient]:
    app = create_app(AsyncSwarm(redis_url, swarm=SWARM), token="good-token", close_swarm=True)
    with TestClient(app, base_url="http://10.0.0.5:8765") as client:
        yield client


@pytest.mark.parametrize(
    "query", ["token=good-token&token=x", "token=x&token=good-token", "token=x&token=y"]
)
def test_a_token_given_twice_is_400_naming_it(guarded: TestClient, query: str) -> None:
    for path in ("/api/status", "/api/tasks", "/api/events", "/"):
        response = guarded.get(f"{path}?{query}")
        assert response.status_code == 400, (path, query, response.text)
        body = response.json()
        assert body == {"error": "BadRequest", "message": body["message"]}
        assert "'token' is given twice" in body["message"] and "good-token" not in response.text
        assert response.headers["x-content-type-options"] == "nosniff"  # the guard's headers
    assert guarded.get("/api/status?token=good-token").status_code == 200
    assert guarded.get("/api/status?token=x").status_code == 401


def test_the_last_stream_id_is_refused_as_beyond_the_largest(guarded: TestClient) -> None:
    since = "18446744073709551615-18446744073709551615"
    response = guarded.get("/api/events", params={"since": since, "token": "good-token"})
    assert response.status_code == 400
    message = response.json()["message"]
    assert "is not an event id (like" not in message
    assert "beyond the largest event id a stream can hold" in message
