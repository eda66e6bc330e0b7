"""Every command the CLI prompts tell an agent to run, run as written against a real server.

The ```bash blocks of each rendered prompt are extracted, their ``<PLACEHOLDERS>`` filled the
way an agent would (from the outputs of earlier commands where the prompt says so), and run
with bash through a ``swarm`` executable of this checkout. Fake ``claude``, ``codex`` and
``gemini`` executables stand in for the agent CLIs the prompts start with ``swarm run``.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import Settings, Swarm
from redis_swarm._prompts import render_prompt

from ._answers import answer_one
from ._cli import subprocess_env, swarm_bin
from ._model_stub import ModelHandler, serving
from .mcp_server.test_clients import GEMINI, _needs, _quiet_env

CONTEXT = "".join(f"{i}: {'alpha signal' if i % 7 == 0 else 'noise'}\n" for i in range(1, 60))
FAKE_AGENT = """#!/bin/sh
cat > /dev/null
printf 'Done.\\n```json\\n{"summary": "fake %s did %s", "confidence": 0.5}\\n```\\n' \
  "$(basename "$0")" "$SWARM_TASK_ID"
"""
PLACEHOLDER = re.compile(r"<[A-Z][A-Z_]*>")


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)\n```", text, re.S)


class Agent:
    """Runs a prompt's blocks in order, like an agent would, filling its placeholders."""

    def __init__(self, prompt: str, env: dict[str, str], cwd: Path) -> None:
        self.blocks = bash_blocks(prompt)
        self.env = env
        self.cwd = cwd
        self.values: dict[str, str] = {}
        self.ran: list[str] = []

    def fill(self, block: str) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(0)
            assert name in self.values, f"no value for {name} in:\n{block}"
            return self.values[name]

        return PLACEHOLDER.sub(value, block)

    def run(self, index: int, expect: int = 0) -> subprocess.CompletedProcess[str]:
        script = self.fill(self.blocks[index])
        proc = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            env=self.env, cwd=self.cwd, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert proc.returncode == expect, (
            f"{script}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
        self.ran.append(script)
        return proc


@pytest.fixture
def setup(redis_url: str, tmp_path: Path) -> Iterator[tuple[Settings, dict[str, str], Any]]:
    bindir = tmp_path / "bin"
    swarm_bin(bindir)
    for name in ("claude", "codex", "gemini", "fake-agent"):
        path = bindir / name
        path.write_text(FAKE_AGENT)
        path.chmod(0o755)
    env = subprocess_env(redis_url, "test", bindir)
    # The prompts carry the URL and swarm themselves: the commands must not need the env.
    env.pop("SWARM_URL")
    env.pop("SWARM_NAME")
    (tmp_path / "context.md").write_text(CONTEXT)
    # A home of the test's own: the prompts' commands pin it (--home), and their claims keep
    # lease tokens there (the default would be the developer's).
    settings = Settings.from_url(redis_url, swarm="test", home=tmp_path / "swarm-home")
    swarm = Swarm(settings)
    yield settings, env, swarm
    swarm.close()


def test_worker_prompt_commands(setup: Any, tmp_path: Path) -> None:
    settings, env, swarm = setup
    swarm.publish_context("shard-a", CONTEXT, source="context.md")
    for i in range(2):
        swarm.post_task("q1", f"Find the signals, part {i}", parent="shard-a", max_attempts=1)
    agent = Agent(render_prompt("worker", settings=settings, queue="q1"), env, tmp_path)
    claim, read, ask, renew, report, fail = range(6)
    assert len(agent.blocks) == 6
    agent.values["<WORKER_NAME>"] = "worker-7"
    task = json.loads(agent.run(claim).stdout)
    agent.values.update(
        {"<TASK_ID>": task["id"], "<TOKEN>": str(task["token"]), "<SHARD>": task["parent"]}
    )
    agent.values.update(
        {"<WORDS_TO_FIND>": "alpha signal", "<FIRST_LINE>": "6", "<LAST_LINE>": "8"}
    )
    out = agent.run(read).stdout
    assert "7: alpha signal" in out and "6: noise" in out
    answerer = answer_one(swarm, "ask.shard-a", "every 7 lines")
    agent.values["<ONE_PRECISE_QUESTION>"] = "How often is the signal?"
    assert agent.run(ask).stdout == "every 7 lines\n"
    answerer.join(10)
    agent.run(renew)
    agent.values.update({"<YOUR_SUMMARY>": "8 signals", "<WHERE_IN_THE_CONTEXT>": "lines 7-56"})
    agent.run(report)
    done = swarm.get_task(task["id"])
    assert done.status == "completed"
    finding = swarm.get_finding(done.finding_id)
    assert finding.summary == "8 signals" and finding.worker == "worker-7"
    assert finding.sources == ("lines 7-56",)
    # A second worker that cannot do its task gives it back.
    second = json.loads(agent.run(claim).stdout)
    agent.values.update({"<TASK_ID>": second["id"], "<TOKEN>": str(second["token"])})
    agent.values["<WHY_YOU_COULD_NOT>"] = "the context says nothing about it"
    agent.run(fail)
    assert swarm.get_task(second["id"]).status == "dead"


def shard_values(agent: Agent, command: str) -> None:
    agent.values.update(
        {
            "<SHARD_NAME>": "shard-a",
            "<YOUR_MODEL>": "claude-haiku",
            "<CONTEXT_FILE>": "context.md",
            "<TASK_DESCRIPTION>": "Find every alpha signal",
            "<PASS_NAME>": "Pass 1: Signal Capture",
            "<FOCUS>": "alpha",
            "<ANOTHER_TASK_DESCRIPTION>": "Find the noise",
            "<AGENT_COMMAND>": command,
            "<YOUR_SYNTHESIS>": "Three workers agree: alpha every 7 lines.",
        }
    )


def post_the_pass(swarm: Swarm, agent: Agent) -> None:
    """What the shard prompt's generic blocks before the one that starts workers leave (join,
    publish, post one task, post two as JSON lines), done through the core: the tests of a
    client's own blocks start from there (test_shard_prompt_commands runs those blocks)."""
    v = agent.values
    swarm.register("shard", name=v["<SHARD_NAME>"], model=v["<YOUR_MODEL>"])
    swarm.publish_context(v["<SHARD_NAME>"], CONTEXT, source=v["<CONTEXT_FILE>"])
    tasks: list[dict[str, Any]] = [
        {"description": v["<TASK_DESCRIPTION>"]},
        {"description": v["<TASK_DESCRIPTION>"], "data": {"focus": v["<FOCUS>"]}},
        {"description": v["<ANOTHER_TASK_DESCRIPTION>"]},
    ]
    for task in tasks:
        task.update(queue="q1", pass_name=v["<PASS_NAME>"], parent=v["<SHARD_NAME>"])
    swarm.post_tasks(tasks)


def run_shard(settings: Settings, env: dict[str, str], cwd: Path, client: str) -> Agent:
    agent = Agent(render_prompt("shard", settings=settings, queue="q1", client=client), env, cwd)
    shard_values(agent, "fake-agent")
    for index in range(len(agent.blocks)):
        agent.run(index)
    return agent


def test_shard_prompt_commands(setup: Any, tmp_path: Path) -> None:
    settings, env, swarm = setup
    agent = run_shard(settings, env, tmp_path, "generic")
    assert len(agent.blocks) == 7
    assert swarm.get_agent("shard-a").role == "shard"
    assert swarm.get_context("shard-a") == CONTEXT
    tasks = swarm.list_tasks(pass_name="Pass 1: Signal Capture").items
    assert len(tasks) == 3 and all(t.parent == "shard-a" for t in tasks)
    assert all(t.status == "completed" for t in tasks)
    findings = swarm.findings(pass_name="Pass 1: Signal Capture").items
    assert len(findings) == 3 and all(f.summary.startswith("fake fake-agent did") for f in findings)
    (synthesis,) = swarm.syntheses(shard="shard-a").items
    assert synthesis.text.strip() == "Three workers agree: alpha every 7 lines."
    assert sorted(synthesis.sources) == sorted(f.id for f in findings)


@pytest.mark.parametrize("client", ["claude", "codex", "gemini"])
def test_shard_prompt_starts_the_clients_agent_cli(setup: Any, tmp_path: Path, client: str) -> None:
    settings, env, swarm = setup
    generic = bash_blocks(render_prompt("shard", settings=settings, queue="q1"))
    agent = Agent(
        render_prompt("shard", settings=settings, queue="q1", client=client), env, tmp_path
    )
    shard_values(agent, "unused")
    # Only the block that starts workers depends on the client (and, for Gemini CLI, the one
    # before it that writes the policy its workers load): the others are the generic ones.
    own = [i for i, block in enumerate(agent.blocks) if block not in generic]
    assert len(own) == (2 if client == "gemini" else 1)
    first, spawn = own[0], own[-1]
    assert own == list(range(first, spawn + 1))
    others = agent.blocks[:first] + agent.blocks[spawn + 1 :]
    assert others == generic[:first] + generic[first + 1 :]
    post_the_pass(swarm, agent)  # what the (generic) blocks before leave: the spawn's work
    for index in own:
        out = agent.run(index)
    assert "ephemeral worker" in out.stdout  # the worker prompt for the Task tool
    findings = swarm.findings().items
    assert len(findings) == 3 and all(f.summary.startswith(f"fake {client} did") for f in findings)


# Runs Gemini CLI, keeping a copy of its stdout and its stderr (RUN.out, RUN.err) in {runs}.
GEMINI_KEEPING_ITS_OUTPUT = """#!/bin/bash
set -o pipefail
run="{runs}/$$"
{{ "{gemini}" "$@" 2>&1 1>&3 3>&- | tee "$run.err" >&2; }} 3>&1 | tee "$run.out"
"""


@contextmanager
def gemini_model_stand_in() -> Iterator[str]:
    """An HTTP server in place of Gemini's model API, as a model that runs one shell command:
    its first reply asks to run ``swarm --version``, its second (the command's outcome in the
    request) answers with a finding that quotes what the shell said."""

    class Model(ModelHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
            said = [
                part["functionResponse"]["response"]
                for content in body.get("contents", [])
                for part in content.get("parts", [])
                if "functionResponse" in part
            ]
            if said:
                finding = {"summary": f"the shell said: {json.dumps(said[-1])}"}
                part: dict[str, Any] = {"text": f"Done.\n```json\n{json.dumps(finding)}\n```\n"}
            else:
                command = {"command": "swarm --version", "description": "which swarm"}
                part = {"functionCall": {"name": "run_shell_command", "args": command}}
            reply = {
                "candidates": [{"content": {"role": "model", "parts": [part]},
                                "finishReason": "STOP", "index": 0}],
                "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5,
                                  "totalTokenCount": 15},
            }  # fmt: skip
            self.send(200, "text/event-stream", f"data: {json.dumps(reply)}\n\n".encode())

    with serving(Model) as url:
        yield url


@_needs(GEMINI, "Gemini CLI (@google/gemini-cli)")
def test_the_gemini_workers_a_shard_starts_may_run_swarm(setup: Any, tmp_path: Path) -> None:
    """The Gemini CLI (0.61) workers the shard prompt starts run the `swarm` commands their
    model asks for, headless and without asking, by the policy the prompt writes (the
    `--allowed-tools` it passed before is deprecated); without that policy, the shell is not
    offered to the model at all (the control)."""
    settings, env, swarm = setup
    bindir = tmp_path / "bin"
    # The real Gemini CLI, through a wrapper that keeps what each run printed (its stdout and
    # its stderr, passed on as they come): the runs swarm run starts are the ones looked at.
    runs = tmp_path / "gemini-runs"
    runs.mkdir()
    (bindir / "gemini").write_text(GEMINI_KEEPING_ITS_OUTPUT.format(runs=runs, gemini=GEMINI))
    home = tmp_path / "home"
    (home / ".gemini").mkdir(parents=True)
    (home / ".gemini" / "settings.json").write_text(
        json.dumps({"security": {"auth": {"selectedType": "gemini-api-key"}}})
    )
    # Headless Gemini CLI refuses to run in a folder its user has not trusted.
    trusted = {str(tmp_path): "TRUST_FOLDER"}
    (home / ".gemini" / "trustedFolders.json").write_text(json.dumps(trusted))
    agent = Agent(
        render_prompt("shard", settings=settings, queue="q1", client="gemini"), env, tmp_path
    )
    shard_values(agent, "unused")
    spawn = next(i for i, block in enumerate(agent.blocks) if "--exec 'gemini" in block)
    policy = next(i for i, block in enumerate(agent.blocks) if "swarm-workers.toml <<" in block)
    post_the_pass(swarm, agent)  # what the (generic) blocks before the policy's leave
    with gemini_model_stand_in() as url:
        # A fixed model: "auto" would first ask a router model, which this stand-in is not.
        agent.env = _quiet_env(home) | {
            "PATH": env["PATH"],
            "PYTHONPATH": env["PYTHONPATH"],
            "GEMINI_API_KEY": "test",
            "GOOGLE_GEMINI_BASE_URL": url,
            "GEMINI_MODEL": "gemini-2.5-flash",
        }
        for index in range(policy, spawn + 1):  # the policy, then the workers
            agent.run(index)
        findings = swarm.findings().items
        assert len(findings) == 3
        assert all("swarm, version" in f.summary for f in findings), findings[0].summary
        # each run as swarm run started it: the shell ran swarm, with no warning
        outs = sorted(runs.glob("*.out"))
        assert len(outs) == 3, outs
        for out in outs:
            said = out.read_text() + out.with_suffix(".err").read_text()
            assert "the shell said" in out.read_text(), said
            assert "swarm, version" in said and "deprecated" not in said, said
        command = re.search(r"--exec '([^']*)'", agent.blocks[spawn])
        assert command is not None
        control = subprocess.run(
            ["sh", "-c", re.sub(r"--policy \S+ ", "", command[1])], input="Do the task.",
            env=agent.env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
            check=False,
        )  # fmt: skip
    said = control.stdout + control.stderr
    assert "the shell said" in control.stdout, said
    assert "swarm, version" not in said and "not found" in said, said


def test_coordinator_prompt_commands(setup: Any, tmp_path: Path) -> None:
    settings, env, swarm = setup
    swarm.register("shard", name="shard-a")
    pass_name = "Pass 1: Signal Capture"
    for i in range(2):
        swarm.post_task("q1", f"part {i}", pass_name=pass_name, parent="shard-a")
        t = swarm.claim("q1", worker="w-1")
        swarm.report(t.id, t.token, {"summary": f"worker found {i}"}, worker="w-1")
    fids = [f.id for f in swarm.findings(pass_name=pass_name).items]
    swarm.synthesize("shard-a", pass_name, "Both agree.", fids)
    dead = swarm.post_task("q1", "impossible", max_attempts=1)
    claimed = swarm.claim("q1", worker="w-x")
    swarm.fail(claimed.id, claimed.token, "no way")
    assert swarm.get_task(dead.id).status == "dead"
    agent = Agent(render_prompt("coordinator", settings=settings, queue="q1"), env, tmp_path)
    agent.values.update(
        {
            "<PASS_NAME>": "Pass 1: Signal Capture",
            "<SHARD_NAME>": "shard-a",
            "<WHAT_TO_SYNTHESISE>": "the signals, by line",
            "<DEAD_TASK_ID>": dead.id,
            "<AGENT_NAME>": "shard-a",
            "<MESSAGE>": "Pass 2 next, please.",
        }
    )
    watch, passes, steer = range(3)
    assert len(agent.blocks) == 3
    out = agent.run(watch).stdout
    assert "q1" in out and dead.id in out and "shard-a" in out and "task.completed" in out
    out = agent.run(passes).stdout
    assert "worker found 1" in out and "Both agree." in out
    agent.run(steer)
    assert swarm.get_task(dead.id).status == "pending"
    inbox = swarm.inbox("shard-a")
    kinds = [m.kind for m in inbox]
    assert "text" in kinds and len(inbox) == 3  # the synthesis request, the message, the broadcast


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)\n```", text, re.S)


def test_python_prompts_run(setup: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The --via python prompts' code, run as written (a worker pool does the shard's tasks)."""

    from redis_swarm._runner import Runner, RunOptions

    settings, _env, swarm = setup
    monkeypatch.chdir(tmp_path)
    fake = str(tmp_path / "bin" / "fake-agent")
    # The pool starts once the shard's code posted its tasks, and stops once they are done.
    pool = Runner(swarm, RunOptions(queues=("work",), command=fake, until_done=True, poll_s=0.1))

    def run_pool() -> None:
        deadline = time.monotonic() + 30
        while "work" not in swarm.queue_stats() and time.monotonic() < deadline:
            time.sleep(0.01)
        pool.run()

    thread = threading.Thread(target=run_pool)
    thread.start()
    connect, shard_code = python_blocks(render_prompt("shard", settings=settings, via="python"))
    namespace: dict[str, Any] = {}
    exec(connect, namespace)
    exec(shard_code, namespace)
    thread.join()
    assert pool.counts()["completed"] == 2
    (synthesis,) = swarm.syntheses(shard="shard-research").items
    assert len(synthesis.sources) == 2
    swarm.post_task("work", "one more", parent="shard-research")
    _, worker_code = python_blocks(render_prompt("worker", settings=settings, via="python"))
    answerer = answer_one(swarm, "ask.shard-research", "yes")
    exec(worker_code, namespace)
    answerer.join(10)
    assert namespace["answer"].text == "yes"
    assert [f.summary for f in swarm.findings(pass_name=None).items][-1].startswith("One para")
    _, coordinator_code = python_blocks(
        render_prompt("coordinator", settings=settings, via="python")
    )
    exec(coordinator_code, namespace)
    assert any(m.kind != "text" for m in swarm.inbox("shard-research"))
    namespace["swarm"].close()
