"""The agents a pipeline starts, given a worker user's URL (the plan's ``[workers] url_env``,
or ``swarm pipeline run --worker-url-env``): they reach the swarm as that user, so a worker
agent's ``swarm context publish`` over the plan's context is refused by Redis while the run
(a shard user) completes its tasks; without it, they reach it as the run's own user (as
before, with a warning saying so); the variable unset, empty or holding no URL is refused
before anything is posted."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import Settings, Swarm

from ._cli import Cli
from ._role_users import role_urls
from ._servers import RedisServer

PY = sys.executable

# A worker that first tries to publish over the plan's context (what a model allowed
# ``Bash(swarm:*)`` could do), records how that went and the URL it was handed, then prints
# its finding as Claude Code's JSON result.
WORKER = r"""
import json, os, subprocess, sys
sys.stdin.read()
task = os.environ["SWARM_TASK_ID"]
hijack = os.path.join(os.environ["OUT_DIR"], "hijack.md")
with open(hijack, "w") as f:
    f.write("hijacked by a worker\n")
tried = subprocess.run(
    [sys.executable, "-m", "redis_swarm", "context", "publish", hijack, "--owner", "notes"],
    capture_output=True, text=True,
)
with open(os.path.join(os.environ["OUT_DIR"], task + ".json"), "w") as f:
    json.dump({"rc": tried.returncode, "stderr": tried.stderr,
               "url": os.environ["SWARM_URL"], "swarm": os.environ["SWARM_NAME"]}, f)
finding = {"summary": "found for " + task, "sources": ["notes.md:1"]}
print(json.dumps({"type": "result", "subtype": "success", "is_error": False,
                  "result": "```json\n" + json.dumps(finding) + "\n```",
                  "total_cost_usd": 0.01, "usage": {"input_tokens": 10, "output_tokens": 5}}))
"""

# A synthesizer citing every finding of its prompt, recording the URL it was handed.
SYNTH = r"""
import json, os, re, sys
prompt = sys.stdin.read()
with open(os.path.join(os.environ["OUT_DIR"], "synth.url"), "w") as f:
    f.write(os.environ["SWARM_URL"])
ids = re.findall(r"^- \[(f-[a-z0-9]+)\]", prompt, re.M)
print(json.dumps({"type": "result", "subtype": "success", "is_error": False,
                  "result": "Synthesis: " + " ".join("[" + i + "]" for i in ids),
                  "total_cost_usd": 0.02, "usage": {"input_tokens": 10, "output_tokens": 5}}))
"""

NOTES = "timeouts are 30 s\n"


def write_plan(tmp_path: Path, url_env: str | None = None) -> Path:
    (tmp_path / "notes.md").write_text(NOTES)
    (tmp_path / "worker.py").write_text(WORKER)
    (tmp_path / "synth.py").write_text(SYNTH)
    key = f'url_env = "{url_env}"\n' if url_env is not None else ""
    path = tmp_path / "plan.toml"
    path.write_text(
        f"""name = "guarded"

[workers]
exec = "{PY} {tmp_path}/worker.py"
concurrency = 2
{key}
[synthesizer]
exec = "{PY} {tmp_path}/synth.py"

[[contexts]]
owner = "notes"
paths = ["notes.md"]

[[passes]]
name = "Pass 1"
context = "notes"
tasks = ["Find the timeouts", "Find the retries"]
"""
    )
    return path


@pytest.fixture
def users(acl_server: RedisServer, request: pytest.FixtureRequest) -> dict[str, str]:
    """A worker's and a shard's user of a swarm of the test's own."""
    swarm = "wu" + str(abs(hash(request.node.name)) % 10**8)
    urls = role_urls(acl_server, swarm, swarm)
    return {"swarm": swarm, **urls}


def run(
    users: dict[str, str],
    path: Path,
    *args: str,
    expect: int = 0,
    env: dict[str, str] | None = None,
) -> tuple[Any, str]:
    cli = Cli(users["shard"], swarm=users["swarm"])
    out = cli("--json", "pipeline", "run", str(path), *args, expect=expect, env=env)
    return (json.loads(out.stdout) if expect == 0 else None), out.stderr


def user_of(url: str) -> str | None:
    return Settings.from_url(url).username


def attempts(out_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(out_dir.glob("t-*.json"))]


def stored(server: RedisServer, users: dict[str, str]) -> list[str]:
    """The keys of the test's swarm (its tasks, contexts, plan, lease: any)."""
    client = server.client()
    try:
        return sorted(k.decode() for k in client.scan_iter(f"*{users['swarm']}*"))
    finally:
        client.close()


@pytest.mark.parametrize("given", ["plan", "option"])
def test_workers_run_as_the_worker_user(users: dict[str, str], tmp_path: Path, given: str) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    env = {"OUT_DIR": str(out_dir), "WORKER_URL": users["worker"]}
    if given == "plan":
        summary, stderr = run(users, write_plan(tmp_path, "WORKER_URL"), env=env)
    else:
        plan = write_plan(tmp_path)
        summary, stderr = run(users, plan, "--worker-url-env", "WORKER_URL", env=env)
    assert summary["done"] and summary["completed"] == 2, summary
    tried = attempts(out_dir)
    assert len(tried) == 2
    for one in tried:
        # The worker's publish over the plan's context is refused by Redis (its user's ACL).
        assert one["rc"] != 0, one
        assert "NOPERM" in one["stderr"] or "permission" in one["stderr"].lower(), one
        assert user_of(one["url"]) == user_of(users["worker"]), one
        assert one["swarm"] == users["swarm"]
    # The synthesizer too (it writes nothing itself: the run writes its synthesis).
    assert user_of((out_dir / "synth.url").read_text()) == user_of(users["worker"])
    with Swarm(users["shard"], swarm=users["swarm"]) as swarm:
        assert swarm.get_context("notes") == NOTES  # unchanged: the run's own publish
    assert "reach the swarm as its own user" not in stderr


def test_without_a_worker_url_the_agents_get_the_runs_user(
    users: dict[str, str], tmp_path: Path
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    summary, stderr = run(users, write_plan(tmp_path), env={"OUT_DIR": str(out_dir)})
    assert summary["done"] and summary["completed"] == 2, summary
    # As before: the agents reach the swarm as the run's (shard) user, which may publish.
    tried = attempts(out_dir)
    assert [t["rc"] for t in tried] == [0, 0], tried
    assert all(user_of(t["url"]) == user_of(users["shard"]) for t in tried)
    # ... said once, on stderr, with what to do.
    assert stderr.count("reach the swarm as its own user") == 1, stderr
    assert '[workers] url_env = "NAME"' in stderr and "--worker-url-env NAME" in stderr


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (None, "the environment variable WORKER_URL is not set"),
        ("", "the environment variable WORKER_URL is empty"),
        ("   ", "the environment variable WORKER_URL is empty"),
        ("http://w:secretpw@127.0.0.1:1/0", "the environment variable WORKER_URL holds no Redis"),
    ],
)
@pytest.mark.parametrize("given", ["plan", "option"])
def test_a_variable_holding_no_url_is_refused_before_anything_is_posted(
    acl_server: RedisServer,
    users: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    value: str | None,
    said: str,
    given: str,
) -> None:
    monkeypatch.delenv("WORKER_URL", raising=False)
    env: dict[str, str] = {} if value is None else {"WORKER_URL": value}
    if given == "plan":
        path = write_plan(tmp_path, "WORKER_URL")
        _, stderr = run(users, path, expect=2, env=env)
        assert "plan.toml:6: workers.url_env: " + said in stderr, stderr
    else:
        path = write_plan(tmp_path)
        _, stderr = run(users, path, "--worker-url-env", "WORKER_URL", expect=2, env=env)
        assert "--worker-url-env WORKER_URL: " + said in stderr, stderr
    assert "set it to a worker user's Redis URL" in stderr
    assert "secretpw" not in stderr
    assert stored(acl_server, users) == []  # nothing posted, no context published, no plan
    # pipeline check refuses the plan's alike.
    if given == "plan":
        cli = Cli(users["shard"], swarm=users["swarm"])
        out = cli("pipeline", "check", str(path), expect=2, env=env)
        assert "workers.url_env: " + said in out.stderr, out


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("redis://w:pw@127.0.0.1:6379", "is a URL; it must be the name of an environment"),
        ("1BAD", "must be the name of an environment variable"),
        ("has space", "must be the name of an environment variable"),
    ],
)
def test_url_env_must_name_a_variable(
    acl_server: RedisServer, users: dict[str, str], tmp_path: Path, value: str, said: str
) -> None:
    path = write_plan(tmp_path, value)
    _, stderr = run(users, path, expect=2)
    assert "workers.url_env: " + said in stderr, stderr
    _, stderr = run(users, write_plan(tmp_path), "--worker-url-env", value, expect=2)
    assert f"--worker-url-env {value!r}: {said}" in stderr, stderr
    assert stored(acl_server, users) == []
