"""The commands a prompt hands an agent reach the swarm the prompt was made for, even the
default swarm of the embedded server in the default home, from a shell whose environment
names another server, swarm and home (another project's SWARM_URL, SWARM_NAME, SWARM_HOME);
and the agents ``swarm run`` starts reach the pool's swarm and home whatever the pool's own
environment names. Real ``swarm`` processes, a real embedded server and redis-server."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import Settings, Swarm, Task
from redis_swarm._executable import reach_options
from redis_swarm._executable import swarm_command as install_command
from redis_swarm._prompts import swarm_command
from redis_swarm._runner import OutcomeStatus, Runner, RunOptions, task_env
from redis_swarm.cli._app import App

from ._cli import SRC


def _bare(home: Path, **env: str) -> dict[str, str]:
    """This machine's environment without any swarm of the developer's, ``home`` as HOME (so
    that the default swarm home is under it), and this checkout on PYTHONPATH."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    return {**out, "HOME": str(home), "PYTHONPATH": SRC, **env}


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"{argv}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture
def short_home() -> Iterator[Path]:
    """A HOME with a short path (the embedded server's unix socket is in it); any embedded
    server started under it is stopped at the end."""
    from redis_swarm._embedded import EmbeddedServer

    home = Path(tempfile.mkdtemp(prefix="swp", dir="/tmp"))
    try:
        yield home
    finally:
        for server in home.rglob("redis.sock"):
            EmbeddedServer(server.parent).stop()
        shutil.rmtree(home, ignore_errors=True)


def test_a_prompts_commands_reach_the_default_swarm_from_a_shell_naming_another(
    redis_url: str, short_home: Path
) -> None:
    """``swarm prompt worker`` for the default swarm of the default embedded server, its
    claim and report run by a shell whose SWARM_URL (a redis-server holding a task of the
    same queue), SWARM_NAME and SWARM_HOME are another project's: they work on the
    embedded swarm's task, and nothing is made in the other home."""
    cwd, elsewhere = short_home / "project", short_home / "elsewhere"
    cwd.mkdir()
    default_home = short_home / ".local" / "share" / "redis-swarm"
    swarm = [sys.executable, "-m", "redis_swarm"]
    making = _bare(short_home)  # the person who makes the prompt: every default
    _run([*swarm, "task", "post", "review", "the embedded task"], making, cwd)
    prompt = _run([*swarm, "prompt", "worker", "--queue", "review"], making, cwd)
    claim, report = (b for b in re.findall(r"```bash\n(.*?)\n```", prompt, re.S)
                     if " task claim " in b or " task report " in b)  # fmt: skip
    line = shlex.split(claim)
    assert line[line.index("--url") + 1] == "embedded"
    assert line[line.index("--swarm") + 1] == "default"
    assert line[line.index("--home") + 1] == str(default_home)

    with Swarm(redis_url, swarm="other") as theirs:
        decoy = theirs.post_task("review", "the other project's task")
        agent = _bare(
            short_home, SWARM_URL=redis_url, SWARM_NAME="other", SWARM_HOME=str(elsewhere)
        )
        claim = claim.replace("<WORKER_NAME>", "w1")
        claimed = json.loads(_run(["bash", "-e", "-c", claim], agent, cwd))
        assert claimed["description"] == "the embedded task", claimed
        filled = (
            report.replace("<TASK_ID>", claimed["id"])
            .replace("<TOKEN>", str(claimed["token"]))
            .replace("<WORKER_NAME>", "w1")
            .replace("<YOUR_SUMMARY>", "done")
            .replace("<WHERE_IN_THE_CONTEXT>", "nowhere")
        )
        _run(["bash", "-e", "-c", filled], agent, cwd)
        assert theirs.get_task(decoy.id).status == "pending"
    assert not elsewhere.exists()
    ours = Settings.from_url("embedded", home=default_home)
    with Swarm(ours) as embedded:
        assert embedded.get_task(claimed["id"]).status == "completed"
    # The claim's lease token was kept in the pinned home, and the report forgot it there.
    assert (default_home / "leases" / "default").is_dir()


def test_the_hooks_and_the_prompts_pin_a_swarm_alike(tmp_path: Path) -> None:
    """One rule for both: every option given, the embedded server as ``embedded`` plus its
    home; a URL holding a password left out of the hooks and of a prompt's commands (the
    agent reads SWARM_URL from its environment), shown in a prompt only when asked."""
    home = tmp_path / "a home"
    embedded = Settings.from_url("embedded?durability=strict", home=home)
    options = ["--url", "embedded?durability=strict", "--swarm", "default", "--home", str(home)]
    assert reach_options(embedded) == options
    app = App(url="embedded?durability=strict", home=home)
    assert app.reach() == options
    assert swarm_command(embedded) == shlex.join([*install_command(), *options])

    secret = Settings.from_url("redis://:s3cret@10.0.0.1:6380/0", swarm="team", home=home)
    tail = ["--swarm", "team", "--home", str(home)]
    assert reach_options(secret) == tail
    assert App(url="redis://:s3cret@10.0.0.1:6380/0", swarm_name="team", home=home).reach() == tail
    # A prompt may be pasted on another machine: a network server's home is not pinned there.
    assert swarm_command(secret) == shlex.join([*install_command(), "--swarm", "team"])
    shown = shlex.join(
        [*install_command(), "--url", "redis://:s3cret@10.0.0.1:6380/0", "--swarm", "team"]
    )
    assert swarm_command(secret, show_password=True) == shown


def test_task_env_pins_the_home_of_an_embedded_swarm(tmp_path: Path) -> None:
    """An agent of ``swarm run`` is told the pool's home (SWARM_HOME), not left to the one its
    inherited environment names."""
    task = Task(id="t-1", queue="q", description="d", token="1.x")
    env = task_env(task, Settings.from_url("embedded", swarm="s", home=tmp_path / "h"))
    assert env["SWARM_HOME"] == str(tmp_path / "h")
    assert env["SWARM_URL"] == f"embedded://{tmp_path / 'h'}" and env["SWARM_NAME"] == "s"


AGENT = """
import json, subprocess, sys
sys.stdin.read()
claim = [sys.executable, "-m", "redis_swarm", "task", "claim", "side", "--worker", "helper",
         "--json"]
done = subprocess.run(claim, capture_output=True, text=True)
print(json.dumps({"summary": "claimed", "details": done.stdout + done.stderr}))
"""


def test_an_agent_of_the_pool_keeps_its_claims_tokens_in_the_pools_home(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool's home (from its settings) is where its agents' ``swarm`` keeps the lease
    tokens of what they claim, not the SWARM_HOME the pool's own environment names."""
    home, elsewhere = tmp_path / "pool-home", tmp_path / "elsewhere"
    monkeypatch.setenv("SWARM_HOME", str(elsewhere))
    monkeypatch.setenv("PYTHONPATH", SRC)
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    with Swarm(Settings.from_url(redis_url, swarm="pinned", home=home)) as swarm:
        swarm.post_task("work", "claim the side task")
        side = swarm.post_task("side", "the side task")
        options = RunOptions(
            queues=("work",), command=f"{sys.executable} {script}", until_done=True, poll_s=0.2
        )
        pool = Runner(swarm, options)
        pool.run()
        assert [o.status for o in pool.outcomes] == [OutcomeStatus.COMPLETED], pool.errors
        finding = swarm.findings(limit=1).items[0]
        assert swarm.get_task(side.id).worker == "helper", finding.details
    assert list((home / "leases" / "pinned").glob("*.json")), finding.details
    assert not elsewhere.exists()
