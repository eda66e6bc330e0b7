"""Review fix: dot-only names (no file under SWARM_HOME escapes it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from redis_swarm import Swarm, ValidationError
from redis_swarm._config import Settings
from redis_swarm._validate import check_agent, check_name, check_swarm_name


@pytest.mark.parametrize("name", [".", "..", "..."])
def test_dot_only_names_refused(name: str, redis_url: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="only dots"):
        check_swarm_name(name)
    with pytest.raises(ValidationError, match="only dots"):
        Settings.from_url(redis_url, swarm=name, home=tmp_path)
    with pytest.raises(ValidationError, match="only dots"):
        check_name("task id", name, new=True)
    # a name read (one stored before the rule) stays reachable
    assert check_agent("agent id", name) == name
    assert check_swarm_name(".x") == ".x"  # (one file inside its folder: allowed)


def test_dot_only_agent_not_registered(swarm: Swarm) -> None:
    with pytest.raises(ValidationError, match="only dots"):
        swarm.register("worker", name="..")
    swarm.register("worker", name=".hidden")  # (begins with '.': allowed)
