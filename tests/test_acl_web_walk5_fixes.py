"""What a user walkthrough found in the web faces' refusals and in ``swarm acl``, on real
servers.

- A face without a token refused a Host header other than its own saying "open it as
  http://127.0.0.1": port 80, not the one it listens on. The URLs it names carry the address
  and port the request came in on (dashboard, A2A, MCP over HTTP alike: one ``AccessGuard``).
- ``swarm acl --revoke U`` through a plain ``redis://`` URL of a master with a replica warned
  "To include the replicas, apply through the sentinels ... run this command again once it is
  back": the replica was never down, and a revoke is no apply. It names the revoke to run
  through the sentinels now, with no "once it is back"; a replica behind the sentinels that
  is down still gets that.
- ``swarm acl --role R --user U`` (rules printed, no --apply) against a server that does not
  answer said only to check that the server runs: it also says that ``--redis-version X.Y``
  prints the rules without a server.
"""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator

import httpx
import pytest
import redis

from redis_swarm import ConnectionFailed, Settings, revoke_user

from ._cli import Cli
from ._sentinel import LocalSentinel, running_sentinel
from ._servers import RedisServer, ServerFactory, free_port
from ._waiting import until
from .test_a2a_leftovers2 import FACES, _fetch, announced_face, guarded
from .test_acl_skipped_replicas import _reported_down

SWARM = "walk5-acl"
ADMIN_PASSWORD = "walk5-admin-password-0123456789"
ADMIN = ("ACL", "SETUSER", "ops", "on", f">{ADMIN_PASSWORD}", "~*", "&*", "+@all")
GONE = ("ACL", "SETUSER", "legal-coord", "on", ">legal-coord-password-0123456789", "+ping")

# --- 1. a face's 403 names the URLs to open, with the port it listens on


@pytest.mark.parametrize("face", FACES.keys())
def test_a_faces_refusal_names_its_own_port(redis_url: str, face: str) -> None:
    """``swarm dashboard --port P`` without a token (A2A and MCP alike): a Host header other
    than loopback's, or a page of another site, is told to open http://127.0.0.1:P, which
    is where it listens (it said http://127.0.0.1: port 80)."""
    with announced_face(redis_url, face) as url:
        found = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/.*", url)
        assert found, url
        here = f"http://127.0.0.1:{found[1]}"
        refused = _fetch(face, url, "evil.example")
        assert refused.status_code == 403, refused.text
        said = refused.json()["message"]
        assert said.endswith(f"answers only to localhost: open it as {here}, or start it "
                             "with --token"), said  # fmt: skip
        if face != "mcp-http":  # (a GET: a page of another site's)
            cross = httpx.get(url, headers={"Origin": "https://evil.example"}, timeout=30)
            assert cross.status_code == 403, cross.text
            assert f"send it from a page of its own ({here}) " in cross.json()["message"]


@pytest.mark.parametrize(
    ("base_url", "named"),
    [
        ("http://[::1]:9031", "http://[::1]:9031"),  # (a face on ::1 alone is not at 127.0.0.1)
        ("http://127.0.1.1:9032", "http://127.0.1.1:9032"),
        ("http://192.0.2.7:9033", "http://127.0.0.1:9033"),  # (off loopback: loopback's)
    ],
)
def test_the_urls_named_are_the_address_and_port_the_request_came_in_on(
    base_url: str, named: str
) -> None:
    refused = guarded(None, base_url=base_url).get("/", headers={"Host": "evil.example"})
    assert refused.status_code == 403
    assert refused.json()["message"].endswith(f"open it as {named}, or start it with --token")


# --- 2. a revoke through a plain URL names the revoke to run, not "once it is back"


@pytest.fixture(scope="module")
def sentinel(servers: ServerFactory) -> Iterator[LocalSentinel]:
    """A master, its replica and one sentinel (down-after-milliseconds 1 s)."""
    with running_sentinel(servers, sentinels=1) as made:
        yield made


def _master_and_replica(setup: LocalSentinel) -> tuple[RedisServer, RedisServer]:
    setup.wait_ready()
    master = setup.node(setup.master_port())
    replica = next(node for node in setup.data_nodes() if node is not master)
    return master, replica


def _raw(server: RedisServer) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port or 0, decode_responses=True)


def test_a_revoke_through_a_plain_url_says_how_to_revoke_on_the_replicas(
    sentinel: LocalSentinel,
) -> None:
    master, replica = _master_and_replica(sentinel)
    there = f"127.0.0.1:{replica.port}"
    for node in (master, replica):  # (ACLs are not replicated: each its own)
        with _raw(node) as client:
            client.execute_command(*ADMIN)
            client.execute_command(*GONE)
    url = f"redis://ops:{ADMIN_PASSWORD}@127.0.0.1:{master.port}"
    command = "swarm acl --revoke legal-coord"
    through = f"SWARM_URL=redis+sentinel://ops:PASSWORD@SENTINEL:26379/SERVICE {command}"
    try:
        out = Cli(url, swarm=SWARM)("acl", "--revoke", "legal-coord")
        (line,) = [line for line in out.stderr.splitlines() if there in line]
        assert line.startswith(f"warning: not revoked on replica {there}: a replica of "), line
        assert "To revoke the user there too, run it through the sentinels" in line, line
        assert f": {through}; or with SWARM_URL naming {there} (the same user and" in line
        # The replica was never down, and a revoke is no apply.
        assert "once it is back" not in line and "apply through" not in line, line
        assert "brings it back" not in line, line
        assert line.endswith(
            "user 'legal-coord' is still there (it logs in there, and keeps its rights "
            "after a failover to it)"
        ), line
        with _raw(replica) as client:  # what the warning is for
            assert client.acl_getuser("legal-coord") is not None
        with _raw(master) as client:
            assert client.acl_getuser("legal-coord") is None
            client.execute_command(*GONE)
        # The library says the same (``skipped``), the apply still its own words.
        gone = revoke_user(Settings.from_url(url, swarm=SWARM), "legal-coord")
        assert through in gone.skipped[there]
    finally:
        for node in (master, replica):
            with _raw(node) as client:
                client.execute_command("ACL", "DELUSER", "legal-coord", "ops")


def test_a_revoke_behind_the_sentinels_with_a_replica_down_says_once_it_is_back(
    sentinel: LocalSentinel,
) -> None:
    """The other case: a replica the sentinels report down is left out, and the revoke is
    to run again once it is back (said once, as the apply says it)."""
    master, replica = _master_and_replica(sentinel)
    where = f"127.0.0.1:{replica.port}"
    for node in (master, replica):
        with _raw(node) as client:
            client.execute_command(*GONE)
    replica.proc.send_signal(signal.SIGSTOP)  # it stops answering: the sentinel marks it s_down
    try:
        until(lambda: _reported_down(sentinel), "the sentinel reports the replica down")
        out = Cli(sentinel.url, swarm=SWARM)("acl", "--revoke", "legal-coord")
        (line,) = [line for line in out.stderr.splitlines() if where in line]
        assert line == (
            f"warning: not revoked on replica {where}: the sentinels report it down (s_down); "
            "user 'legal-coord' is still there (it logs in there, and keeps its rights after "
            "a failover to it): run this command again once the replica is back"
        ), line
    finally:
        replica.proc.send_signal(signal.SIGCONT)
        sentinel.wait_ready()
        for node in (master, replica):
            with _raw(node) as client:
                client.execute_command("ACL", "DELUSER", "legal-coord")


# --- 3. rules printed for a server that does not answer: --redis-version prints them


def test_rules_for_a_server_that_does_not_answer_name_redis_version() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0?retries=0"
    cli = Cli(url, swarm=SWARM)
    said = cli("acl", "--role", "worker", "--user", "w-x", expect=1).stderr
    assert said.startswith("error: cannot reach Redis at "), said
    assert said.rstrip().endswith(
        "; or print the rules without a server: add --redis-version X.Y, the version of the "
        "servers the user is for (e.g. --redis-version 7.2)"
    ), said
    out = cli("acl", "--role", "worker", "--user", "w-x", "--json", expect=1)
    data = json.loads(out.stderr)
    assert data["error"] == ConnectionFailed.__name__
    assert "add --redis-version X.Y" in data["message"]
    # What it says works; an apply, which needs the server, is not told so.
    assert cli("acl", "--role", "worker", "--user", "w-x", "--redis-version", "7.2").code == 0
    applying = cli("acl", "--role", "worker", "--user", "w-x", "--apply", expect=1).stderr
    assert applying.startswith("error: cannot reach Redis at "), applying
    assert "--redis-version" not in applying, applying
