"""``swarm prompt`` for a URL that holds a password: its commands carry no password (not even
masked, for the agent to fill in: a command is in the agent's transcript and the process
list); they read the URL from SWARM_URL, which the prompt says once must be set, and run."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import Settings, Swarm
from redis_swarm._prompts import render_prompt

from ._cli import subprocess_env, swarm_bin
from ._servers import RedisServer
from .test_prompt_commands import bash_blocks


@pytest.fixture
def password_url(redis_server: RedisServer) -> Iterator[tuple[str, str]]:
    """A user of the test server whose URL holds a password: (the URL, the password)."""
    user, password = f"prompt-{secrets.token_hex(4)}", secrets.token_hex(12)
    client = redis_server.client()
    client.acl_setuser(
        user, enabled=True, passwords=[f"+{password}"], keys=["*"], channels=["*"],
        commands=["+@all"],
    )  # fmt: skip
    host = redis_server.url.split("://", 1)[1]
    yield f"redis://{user}:{password}@{host}/0", password
    client.acl_deluser(user)
    client.close()


@pytest.mark.parametrize("via", ["cli", "mcp", "python"])
@pytest.mark.parametrize("role", ["worker", "coordinator", "shard"])
def test_prompt_commands_carry_no_password(
    password_url: tuple[str, str], role: str, via: str
) -> None:
    url, password = password_url
    text = render_prompt(role, settings=Settings.from_url(url, swarm="s"), via=via)
    assert password not in text and "--url" not in text and "***` in the commands" not in text
    assert text.count("must be set in your environment") == 1
    if via == "python":
        assert "Swarm.from_env(swarm='s')" in text


def test_prompt_commands_run_with_swarm_url_from_the_environment(
    password_url: tuple[str, str], tmp_path: Path
) -> None:
    url, password = password_url
    settings = Settings.from_url(
        url, swarm=f"secrets-{secrets.token_hex(4)}", home=tmp_path / "home"
    )
    with Swarm(settings) as swarm:
        swarm.post_task("work", "a task", max_attempts=1)
        claim = bash_blocks(render_prompt("worker", settings=settings))[0]
        bindir = tmp_path / "bin"
        swarm_bin(bindir)
        env = subprocess_env(url, "another-swarm", bindir)  # the prompt's --swarm wins
        script = claim.replace("<WORKER_NAME>", "worker-1")
        done = subprocess.run(
            ["bash", "-e", "-c", script], env=env, capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["description"] == "a task"
        assert password not in script
