"""``Swarm.from_env()`` reaches the swarm the environment names (what an agent started by
``swarm run`` calls); ``Swarm()`` reads no environment."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from redis_swarm import AsyncSwarm, ConfigError, Swarm
from redis_swarm._env import settings_from_env

from ._servers import RedisServer


def test_from_env_reaches_the_named_swarm(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SWARM_URL", redis_server.url)
    monkeypatch.setenv("SWARM_NAME", "envnamed")
    monkeypatch.setenv("SWARM_HOME", str(tmp_path / "home"))
    with Swarm(redis_server.url, swarm="envnamed") as direct:
        posted = direct.post_task("work", "from the environment")
    with Swarm.from_env() as swarm:
        assert swarm.name == "envnamed" and swarm.settings.home == tmp_path / "home"
        assert swarm.get_task(posted.id).description == "from the environment"
    with Swarm.from_env(swarm="other") as other:
        assert other.name == "other"
    assert settings_from_env({}).kind == "embedded"  # nothing set: the embedded server


def test_async_from_env(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_URL", redis_server.url)
    monkeypatch.delenv("SWARM_NAME", raising=False)

    async def ping() -> float:
        swarm = AsyncSwarm.from_env()
        try:
            assert swarm.name == "default"
            return await swarm.ping()
        finally:
            await swarm.aclose()

    assert asyncio.run(ping()) >= 0


def test_an_empty_swarm_name_in_the_environment_is_refused() -> None:
    with pytest.raises(ConfigError, match="SWARM_NAME is set but empty"):
        settings_from_env({"SWARM_NAME": ""})
    given = settings_from_env({"SWARM_URL": "redis://h:1/0", "SWARM_NAME": "a"}, swarm="b")
    assert given.swarm == "b" and given.url.startswith("redis://h:1")
