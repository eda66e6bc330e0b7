"""``swarm bench`` needs an admin user (its scratch swarm is no per-swarm user's): any other is
refused up front, in one line, with no traceback (docs/benchmarks.md). Real ACL users, made as
``swarm acl --apply`` makes them, on a private server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from redis_swarm import Settings, apply_role

from ._servers import RedisServer, ServerFactory, system_redis

SWARM = "walked"


@pytest.fixture(scope="module")
def server(servers: ServerFactory) -> Iterator[RedisServer]:
    """A private Redis >= 7 (ACL key selectors): its users leak into no other module."""
    started = servers.start(binary=system_redis())
    yield started
    started.stop()


def _bench(url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SWARM_URL": url, "SWARM_NAME": SWARM}
    return subprocess.run(
        [sys.executable, "-m", "redis_swarm", "bench", "--quick"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.mark.parametrize("role", ["worker", "shard", "coordinator"])
def test_bench_as_a_per_swarm_user_is_refused_in_one_line(server: RedisServer, role: str) -> None:
    made = apply_role(Settings.from_url(server.url, swarm=SWARM), role, f"walk-{role}").user
    result = _bench(f"redis://{made.user}:{made.password}@127.0.0.1:{server.port}")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    said = " ".join(lines)
    assert "measuring" not in said  # refused before anything was measured
    assert "needs an admin user" in said
    assert f"walk-{role}" in said
    assert "a shard or coordinator user may" not in said
    # Nothing of the scratch swarm was left behind.
    raw = server.client()
    try:
        assert list(raw.scan_iter("*bench-*")) == []
    finally:
        raw.close()


def test_bench_as_an_admin_still_measures(server: RedisServer) -> None:
    made = apply_role(Settings.from_url(server.url, swarm=SWARM), "admin", "walk-admin").user
    result = _bench(f"redis://{made.user}:{made.password}@127.0.0.1:{server.port}")
    assert result.returncode == 0, result.stderr
    assert "claim + report" in result.stdout


def test_the_cleanup_does_not_hide_the_error_that_stopped_the_measures(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redis_swarm import _bench

    def first(swarm: object) -> None:
        raise ValueError("the first error")

    def cleanup(swarm: object) -> None:
        raise RuntimeError("the cleanup's")

    monkeypatch.setattr(_bench, "_refuse_non_admin", first)
    monkeypatch.setattr(_bench, "_cleanup", cleanup)
    with pytest.raises(ValueError, match="the first error") as caught:
        _bench.run_bench(Settings.from_url(redis_url, swarm=SWARM), quick=True)
    assert caught.value.__context__ is None
