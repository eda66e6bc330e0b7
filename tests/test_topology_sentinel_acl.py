"""A sentinel whose ACL refuses the client's user a command of ``topology``'s view is said as
such, not taken for a sentinel that does not watch the service or a failover that cannot be
agreed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from redis_swarm import Settings, topology

from ._sentinel import LocalSentinel, start_sentinel
from ._servers import ServerFactory


@pytest.fixture
def sentinel(servers: ServerFactory) -> Iterator[LocalSentinel]:
    made = start_sentinel(servers, sentinels=1)
    made.wait_ready()
    yield made
    for server in (*made.sentinels, *made.data_nodes()):
        server.stop()


def _restrict(sentinel: LocalSentinel, *rules: str) -> None:
    client = sentinel.sentinels[0].client()
    try:
        client.acl_setuser("default", enabled=True, nopass=True, commands=list(rules))
    finally:
        client.close()


def test_a_refused_quorum_check_is_said_as_a_refusal(sentinel: LocalSentinel) -> None:
    _restrict(sentinel, "-sentinel|ckquorum")
    found = topology(Settings.from_url(sentinel.url))
    assert found.sentinel is not None
    view = found.sentinel.to_dict()
    assert view["failover"].startswith("not checked: the sentinel's default user may not run")
    assert "SENTINEL CKQUORUM" in view["failover"]


def test_a_refused_view_is_said_as_a_refusal(sentinel: LocalSentinel) -> None:
    _restrict(sentinel, "-sentinel|replicas")
    found = topology(Settings.from_url(sentinel.url))
    (said,) = [w for w in found.warnings if "refuses its default user" in w]
    assert "+sentinel|replicas" in said and "does not watch" not in said, found.warnings
