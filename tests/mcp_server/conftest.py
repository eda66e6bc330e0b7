"""Fixtures of the MCP tests: the core over the session's real redis-server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from redis_swarm import Swarm


@pytest.fixture
def core(redis_url: str) -> Iterator[Swarm]:
    """A Swarm on the flushed test server: what the MCP server under test talks to."""
    swarm = Swarm(redis_url, swarm="test")
    yield swarm
    swarm.close()
