"""``swarm pipeline run`` with scripted fake agents printing Claude Code's JSON result: static
passes end to end, a synthesizer citing unknown ids, a pass whose every task (or some) died,
resuming a finished run, a rerun saying which leases of a killed run it waits for, and
SIGKILL at random points then a rerun reaching the same state."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import Swarm
from redis_swarm._pipeline import load_plan, pass_label, pipeline_queue, synthesis_id
from redis_swarm._pipeline.names import lease_queue, planning_queue, synthesis_queue
from redis_swarm._pipeline.run import parse_task_list

from ._cli import Cli, Out, subprocess_env, swarm_bin

PY = sys.executable

# A worker: a finding in Claude's result object, with a cost. WORKER_SLEEP slows it down;
# FAIL_ON makes it fail (exit 3) the tasks whose prompt holds that text; with FAIL_OWN set,
# each with an error of its own (its task's id: failures that differ, the tasks' own, which
# do not stop a pool as runs that fail alike do).
WORKER = r"""
import json, os, sys, time
prompt = sys.stdin.read()
fail = os.environ.get("FAIL_ON")
if fail and fail in prompt:
    own = " in " + os.environ["SWARM_TASK_ID"] if os.environ.get("FAIL_OWN") else ""
    sys.exit("cannot do " + fail + own)
time.sleep(float(os.environ.get("WORKER_SLEEP", "0")))
task = os.environ["SWARM_TASK_ID"]
finding = {"summary": "found for " + task, "sources": ["notes.md:1"]}
print(json.dumps({"type": "result", "subtype": "success", "is_error": False,
                  "result": "```json\n" + json.dumps(finding) + "\n```",
                  "session_id": "s-" + task, "total_cost_usd": 0.01,
                  "usage": {"input_tokens": 100, "output_tokens": 10},
                  "modelUsage": {"claude-haiku-4-5": {"inputTokens": 100, "outputTokens": 10,
                                                      "costUSD": 0.01}}}))
"""

# A synthesizer: cites every finding listed in its prompt. With BAD_FIRST set, its first
# answer cites an id that is no finding (a counter file remembers the tries).
SYNTH = r"""
import json, os, re, sys
prompt = sys.stdin.read()
ids = re.findall(r"^- \[(f-[a-z0-9]+)\]", prompt, re.M)
counter = os.environ.get("BAD_FIRST")
bad = False
if counter:
    tries = int(open(counter).read()) if os.path.exists(counter) else 0
    open(counter, "w").write(str(tries + 1))
    bad = tries == 0
cites = " ".join("[" + i + "]" for i in ids) if not bad else "[f-doesnotexist]"
previous = len(re.findall(r"^The synthesis of ", prompt, re.M))
text = "Synthesis after %d earlier pass(es): %s" % (previous, cites)
print(json.dumps({"type": "result", "subtype": "success", "is_error": False, "result": text,
                  "total_cost_usd": 0.05, "usage": {"input_tokens": 1000, "output_tokens": 50},
                  "modelUsage": {"claude-sonnet-4-5": {"costUSD": 0.05}}}))
"""


def plan_text(tmp_path: Path, *, worker: str | None = None, lease_s: int = 30) -> Path:
    (tmp_path / "notes.md").write_text("timeouts are 30 s\nretries: 3\n")
    (tmp_path / "worker.py").write_text(WORKER)
    (tmp_path / "synth.py").write_text(SYNTH)
    path = tmp_path / "plan.toml"
    path.write_text(
        f"""
name = "audit"
question = "Where are timeouts inconsistent?"
max_attempts = 2

[workers]
exec = "{worker or f"{PY} {tmp_path}/worker.py"}"
concurrency = 3
lease_s = {lease_s}

[synthesizer]
exec = "{PY} {tmp_path}/synth.py"

[[contexts]]
owner = "notes"
paths = ["notes.md"]

[[passes]]
name = "Pass 1"
context = "notes"
tasks = [
    "Find the timeouts",
    "Find the retries",
    {{description = "Find the backoff", data = {{term = "backoff"}}}},
]

[[passes]]
name = "Pass 2"
context = "notes"
tasks = ["Check the timeouts again", "Check the retries again"]
"""
    )
    return path


def short_backoff(swarm: Swarm, path: Path) -> None:
    """A short retry backoff on the queues of the plan at ``path`` (its workers', planner's
    and synthesizer's tasks), for a test whose runs fail and are retried: what it tests is
    the retries, not their backoff (1 s, then 2 s, by default)."""
    plan = load_plan(path)
    for queue in (pipeline_queue(plan), planning_queue(plan), synthesis_queue(plan)):
        swarm.configure_queue(queue, retry_backoff_s=0.05)


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def run_plan(cli: Cli, path: Path, *args: str, expect: int = 0, **env: str) -> dict[str, Any]:
    out = cli("--json", "pipeline", "run", str(path), *args, expect=expect, env=env)
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def final_state(swarm: Swarm, path: Path) -> dict[str, Any]:
    """Per pass: its tasks (descriptions), their statuses, its syntheses and what they cite."""
    plan = load_plan(path)
    state: dict[str, Any] = {}
    for index in range(len(plan.passes)):
        label = pass_label(plan, index)
        queue = pipeline_queue(plan)  # the workers' (not the planning tasks')
        tasks = swarm.list_tasks(queue=queue, pass_name=label, limit=1000).items
        found = swarm.findings(queue=queue, pass_name=label, limit=1000).items
        found = tuple(f for f in found if not f.superseded)
        syntheses = swarm.syntheses(pass_name=label, limit=1000).items
        state[label] = {
            "tasks": sorted(t.description for t in tasks),
            "statuses": sorted(t.status.value for t in tasks),
            "syntheses": [s.id for s in syntheses],
            "cited_ok": all(set(s.sources) == {f.id for f in found} for s in syntheses),
        }
    return state


def test_two_static_passes_end_to_end(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    path = plan_text(tmp_path)
    summary = run_plan(cli, path, WORKER_SLEEP="0")
    assert summary["done"] and [p["name"] for p in summary["passes"]] == ["Pass 1", "Pass 2"]
    first, second = summary["passes"]
    assert (first["posted"], first["completed"], first["dead"], first["findings"]) == (3, 3, 0, 3)
    assert second["posted"] == 2 and summary["resumed"] == [] and summary["stopped_by"] is None
    assert first["cost_usd"] == pytest.approx(0.08)  # 3 workers and the synthesis
    assert first["tokens_in"] == 3 * 100 + 1000 and summary["cost_usd"] == pytest.approx(0.15)
    assert summary["by_model"]["claude-haiku-4-5"]["cost_usd"] == pytest.approx(0.05)
    assert summary["by_model"]["claude-sonnet-4-5"]["cost_usd"] == pytest.approx(0.1)
    plan = load_plan(path)
    s1 = swarm.get_synthesis(synthesis_id(plan, 0))
    s2 = swarm.get_synthesis(synthesis_id(plan, 1))
    assert s1.pass_name == "audit: Pass 1" and s1.shard == "audit"
    assert s1.text.startswith("Synthesis after 0 earlier") and "after 1 earlier" in s2.text
    assert set(s1.sources) == {f.id for f in swarm.findings(pass_name="audit: Pass 1").items}
    assert s1.model == "claude-sonnet-4-5" and s1.usage is not None
    assert s1.usage.cost_usd == 0.05
    # the workers of pass 2 were given the question and pass 1's synthesis
    task = swarm.list_tasks(pass_name="audit: Pass 2", with_data=True).items[0]
    assert task.data["question"] == "Where are timeouts inconsistent?"
    assert task.data["previous_syntheses"][0]["id"] == s1.id
    pass1 = swarm.list_tasks(pass_name="audit: Pass 1", with_data=True).items
    backoff = next(t for t in pass1 if t.description == "Find the backoff")
    assert backoff.data["data"] == {"term": "backoff"}
    info = swarm.context_info("notes")
    for f in swarm.findings(pass_name="audit: Pass 1").items:
        assert f.context_version == info.version and f.model == "claude-haiku-4-5"
        assert f.usage is not None and f.usage.cost_usd == 0.01
    # run again: nothing is rerun, nothing posted twice, no new context version
    before = final_state(swarm, path)
    again = run_plan(cli, path)
    assert again["done"] and again["resumed"] == ["Pass 1", "Pass 2"]
    assert final_state(swarm, path) == before
    assert len(swarm.context_versions("notes")) == 1


def test_a_synthesizer_citing_unknown_ids_is_retried(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    path = plan_text(tmp_path)
    short_backoff(swarm, path)
    counter = tmp_path / "tries"
    summary = run_plan(cli, path, BAD_FIRST=str(counter))
    assert summary["done"]
    state = final_state(swarm, path)
    assert all(p["cited_ok"] and len(p["syntheses"]) == 1 for p in state.values())
    assert counter.read_text() == "3"  # pass 1: a refused answer and a good one; pass 2: one


def test_a_synthesizer_that_never_cites_right_fails_the_pass(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    path = plan_text(tmp_path)
    short_backoff(swarm, path)
    path.write_text(
        path.read_text().replace(f'exec = "{PY} {tmp_path}/synth.py"', 'exec = "echo see [f-nope]"')
    )
    out = cli("pipeline", "run", str(path), expect=1)
    assert "gave no usable synthesis in 3 tries" in out.stderr and "[f-nope]" in out.stderr
    assert swarm.syntheses().items == ()


def test_a_worker_program_not_found_stops_the_run_before_any_task_dies(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """A typo in [workers] exec: exit 1 naming the program before anything is posted or run;
    run again after the fix, the pipeline finishes with nothing to give back."""
    path = plan_text(tmp_path)
    good = path.read_text()
    worker = f'exec = "{PY} {tmp_path}/worker.py"'
    path.write_text(good.replace(worker, 'exec = "claud -p --output-format json"'))
    out = cli("pipeline", "run", str(path), expect=2)
    assert f"{path}:7: workers.exec: the agent command's program 'claud' is not found" in out.stderr
    assert "pipeline audit: done" not in out.stdout
    assert swarm.list_tasks().items == ()
    path.write_text(good)
    out = cli("pipeline", "run", str(path))
    assert "given back" not in out.stderr and "pipeline audit: done" in out.stdout


def test_a_synthesizer_program_not_found_stops_the_run_before_any_worker(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """Found before the first pass's workers are paid for, not when it is the synthesizer's
    turn."""
    path = plan_text(tmp_path)
    synth = f'exec = "{PY} {tmp_path}/synth.py"'
    assert synth in path.read_text()
    path.write_text(path.read_text().replace(synth, 'exec = "synthesise-it --json"'))
    out = cli("pipeline", "run", str(path), expect=2)
    assert "program 'synthesise-it' is not found" in out.stderr
    assert f"{path}:12: synthesizer.exec:" in out.stderr
    assert swarm.list_tasks().items == () and swarm.findings().items == ()


def test_a_pass_where_every_task_died_stops_then_resumes(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """Workers slower than their timeout: no finding, no synthesis, exit 1 with the tasks'
    last error; run again after the fix, the pass's dead tasks go back to the queue and the
    pipeline finishes."""
    path = plan_text(tmp_path)
    short_backoff(swarm, path)
    good = path.read_text()
    path.write_text(good.replace("lease_s = 30", "lease_s = 30\ntimeout_s = 0.5"))
    error = "timed out"
    counter = tmp_path / "synth-runs"
    out = cli("pipeline", "run", str(path), expect=1, env={"WORKER_SLEEP": "5",
              "BAD_FIRST": str(counter)})  # fmt: skip
    assert "pass 1/2 'Pass 1': every task died (3 dead of 3, no finding)" in out.stderr
    assert "the last error (3 of 3 dead tasks)" in out.stderr and error in out.stderr
    assert "run the pipeline again" in out.stderr and "pipeline audit: done" not in out.stdout
    assert not counter.exists() and swarm.syntheses().items == ()  # no synthesizer was run
    first = {t.id for t in swarm.list_tasks(pass_name="audit: Pass 1").items}
    assert not cli.json("pipeline", "status", "audit")["done"]
    path.write_text(good)
    out = cli("pipeline", "run", str(path), env={"WORKER_SLEEP": "0"})
    assert "pass 1/2 'Pass 1': 3 dead tasks given back to the queue" in out.stderr
    assert "pipeline audit: done" in out.stdout
    tasks = swarm.list_tasks(pass_name="audit: Pass 1").items
    assert {t.id for t in tasks} == first and {t.status.value for t in tasks} == {"completed"}
    state = final_state(swarm, path)
    assert all(len(p["syntheses"]) == 1 and p["cited_ok"] for p in state.values())


def test_a_later_pass_where_every_task_died(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    """Pass 2's every task died: the rerun retries them, and nothing of pass 1 is run again
    or lost."""
    path = plan_text(tmp_path)
    short_backoff(swarm, path)
    out = cli("pipeline", "run", str(path), expect=1, env={"FAIL_ON": "again"})
    assert "pass 2/2 'Pass 2': every task died (2 dead of 2" in out.stderr
    assert "cannot do again" in out.stderr
    before = final_state(swarm, path)
    assert before["audit: Pass 2"]["syntheses"] == [] and before["audit: Pass 2"]["tasks"]
    pass1 = {t.id: t.attempts for t in swarm.list_tasks(pass_name="audit: Pass 1").items}
    out = cli("pipeline", "run", str(path))
    assert "pass 1/2 'Pass 1': done before" in out.stderr
    assert "pass 2/2 'Pass 2': 2 dead tasks given back" in out.stderr
    after = final_state(swarm, path)
    assert after["audit: Pass 1"] == before["audit: Pass 1"]
    assert after["audit: Pass 2"]["statuses"] == ["completed", "completed"]
    assert {t.id: t.attempts for t in swarm.list_tasks(pass_name="audit: Pass 1").items} == pass1


def test_a_pass_where_some_tasks_died_goes_on(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    """With a finding, a pass goes on: its progress line says how many died and the last
    error; the synthesis cites the findings. A rerun (here after its synthesizer failed)
    does not retry the dead task: the first run decided what the pass rests on."""
    path = plan_text(tmp_path)
    short_backoff(swarm, path)
    good = path.read_text()
    path.write_text(good.replace(f'exec = "{PY} {tmp_path}/synth.py"', 'exec = "echo [f-no]"'))
    out = cli("pipeline", "run", str(path), expect=1, env={"FAIL_ON": "Find the backoff"})
    assert (
        "pass 1/2 'Pass 1': settled, 2 completed, 1 dead, 2 findings; the last error "
        "(1 of 1 dead task): exit code 1; stderr: cannot do Find the backoff; the pass goes "
        "on with its findings"
    ) in out.stderr
    assert "gave no usable synthesis" in out.stderr
    path.write_text(good)
    out = cli("pipeline", "run", str(path))
    assert (
        "given back to the queue (no finding)" not in out.stderr
        and "pipeline audit: done" in out.stdout
    )
    state = final_state(swarm, path)
    assert state["audit: Pass 1"]["statuses"] == ["completed", "completed", "dead"]
    assert all(len(p["syntheses"]) == 1 and p["cited_ok"] for p in state.values())


def test_sigkill_at_random_points_then_rerun(redis_url: str, tmp_path: Path) -> None:
    """Killed while posting, mid-pass or while synthesising: a rerun reaches the state of an
    uninterrupted run (every task once, one synthesis per pass citing its findings)."""
    path = plan_text(tmp_path, lease_s=2)
    env = subprocess_env(redis_url, "test", tmp_path / "bin")
    env["WORKER_SLEEP"] = "0.4"
    # (--wait: for the killed run's hold on the pipeline, 2 s like its workers' leases)
    cmd = [PY, "-m", "redis_swarm", "pipeline", "run", str(path), "--wait", "30"]
    rng = random.Random(17)
    with Swarm(redis_url, swarm="test") as swarm:
        for delay in [0.3, 1.0, 1.8, 2.6, *(rng.uniform(0.2, 3.0) for _ in range(2))]:
            proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)  # fmt: skip
            time.sleep(delay)
            proc.kill()
            proc.wait()
            # the killed run's leases end: the next one's delay is into its run
            leases_run_out(swarm, [lease_queue("audit"), pipeline_queue(load_plan(path))])
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    with Swarm(redis_url, swarm="test") as swarm:
        state = final_state(swarm, path)
    assert state["audit: Pass 1"]["tasks"] == [
        "Find the backoff", "Find the retries", "Find the timeouts",
    ]  # fmt: skip
    assert state["audit: Pass 2"]["tasks"] == [
        "Check the retries again",
        "Check the timeouts again",
    ]
    for entry in state.values():
        assert set(entry["statuses"]) == {"completed"}
        assert len(entry["syntheses"]) == 1 and entry["cited_ok"]
    assert (
        re.search(r"pass 2/2 'Pass 2': synthesis s-pl-", done.stderr)
        or "done before" in done.stderr
    )


def leases_run_out(swarm: Swarm, queues: list[str]) -> None:
    """Wait until the leases held in ``queues`` (by a killed run: none is renewed) have run
    out, by their deadlines."""
    deadlines = [
        t.lease_deadline or 0
        for queue in queues
        for t in swarm.list_tasks(queue=queue, status="claimed", limit=1000).items
    ]
    left = max(deadlines, default=0) / 1000 - time.time()
    assert left < 60, deadlines
    if left > 0:
        time.sleep(left + 0.05)


# A planner: as many tasks as PLAN_COUNT says (default 4), in a fenced JSON array inside
# Claude's result; with GARBAGE_FIRST set, its first answer is no JSON array.
PLANNER = r"""
import json, os, re, sys
prompt = sys.stdin.read()
counter = os.environ.get("GARBAGE_FIRST")
if counter:
    tries = int(open(counter).read()) if os.path.exists(counter) else 0
    open(counter, "w").write(str(tries + 1))
    if tries == 0:
        print(json.dumps({"type": "result", "is_error": False, "result": "I think [maybe"}))
        sys.exit(0)
previous = re.findall(r"^The synthesis of '([^']*)'", prompt, re.M)
n = int(os.environ.get("PLAN_COUNT", "4"))
tasks = ["Deeper look %d after %s" % (i, previous[-1]) for i in range(n - 1)]
tasks.append({"description": "Deeper look with data after " + previous[-1], "data": {"k": n}})
text = "Here are the tasks:\n```json\n" + json.dumps(tasks) + "\n```\n"
print(json.dumps({"type": "result", "is_error": False, "result": text, "total_cost_usd": 0.02}))
"""


def three_passes(tmp_path: Path, planner: str | None = None) -> Path:
    path = plan_text(tmp_path)
    (tmp_path / "planner.py").write_text(PLANNER)
    text = path.read_text().replace(
        'tasks = ["Check the timeouts again", "Check the retries again"]',
        'plan = "List what deserves a deeper look"\nmax_tasks = 3',
    )
    text += f"""
[[passes]]
name = "Pass 3"
context = "notes"
plan = "Check what pass 2 left open"

[planner]
exec = "{planner or f"{PY} {tmp_path}/planner.py"}"
"""
    path.write_text(text)
    return path


def test_three_passes_static_then_planned(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    path = three_passes(tmp_path)
    summary = run_plan(cli, path)
    assert summary["done"] and [p["posted"] for p in summary["passes"]] == [3, 3, 4]
    state = final_state(swarm, path)
    assert all(len(p["syntheses"]) == 1 and p["cited_ok"] for p in state.values())
    # the planner wrote 4 tasks, max_tasks = 3 kept the first 3
    assert state["audit: Pass 2"]["tasks"] == [
        f"Deeper look {i} after audit: Pass 1" for i in range(3)
    ]
    assert all("after audit: Pass 2" in t for t in state["audit: Pass 3"]["tasks"])
    # resumed: the planner is not asked again, nothing is posted twice
    (tmp_path / "planner.py").write_text("raise SystemExit(9)")
    again = run_plan(cli, path)
    assert again["done"] and final_state(swarm, path) == state


def test_a_planner_answering_garbage(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    counter = tmp_path / "tries"
    path = three_passes(tmp_path)
    short_backoff(swarm, path)
    assert run_plan(cli, path, GARBAGE_FIRST=str(counter))["done"]
    assert counter.read_text() == "3"  # pass 2: garbage, then a list; pass 3: a list
    (tmp_path / "b").mkdir()
    path = three_passes(tmp_path / "b", planner="echo 'no tasks today [1, 2'")
    path.write_text(path.read_text().replace('name = "audit"', 'name = "audit2"'))
    short_backoff(swarm, path)
    out = cli("pipeline", "run", str(path), expect=1)
    assert "planner of pass 'Pass 2' gave no usable task list in 3 tries" in out.stderr
    assert "no tasks today" in out.stderr
    assert swarm.list_tasks(queue="pipeline.audit2", pass_name="audit2: Pass 2").items == ()
    # each refused run failed the planning task (why, and what it cost, are kept on it)
    (planning,) = swarm.list_tasks(queue="pipeline.audit2.plan").items
    assert planning.status == "dead" and planning.pass_name is None  # not one of the pass's
    assert planning.failures == 3 and planning.last_error == "refused: it holds no JSON array"
    assert "tries 1 to 3: refused: it holds no JSON array" in out.stderr
    # the planner fixed, the run gives the planning task back and resumes at pass 2
    path.write_text(
        path.read_text().replace("echo 'no tasks today [1, 2'", f"{PY} {tmp_path}/planner.py")
    )
    out = cli("pipeline", "run", str(path))
    assert f"its planning task {planning.id} given back to the queue" in out.stderr
    assert "pipeline audit2: done" in out.stdout
    status = cli.json("pipeline", "status", "audit2")
    assert status["passes"][1]["cost_usd"] == pytest.approx(0.02 + 3 * 0.01 + 0.05)  # planner too


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('["a", {"description": "b", "data": {"x": [1]}}]', ["a", "b"]),
        ('Sure.\n```json\n["a"]\n```\nand see [1]', ["a"]),
        ('Tasks: ["a", "b"] (the list [c] is prose)', ["a", "b"]),
        ('First ["old"] then ["new", {"description": "n2"}]', ["new", "n2"]),
    ],
)
def test_parse_task_list(answer: str, expected: list[str]) -> None:
    assert [t.description for t in parse_task_list(answer)] == expected


@pytest.mark.parametrize("answer", ["nothing", "[]", '[""]', '[{"summary": "x"}]', "[1, 2]"])
def test_parse_task_list_refuses(answer: str) -> None:
    with pytest.raises(ValueError):
        parse_task_list(answer)


def test_budget_reached_mid_pass_then_raised(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    path = plan_text(tmp_path)
    path.write_text(path.read_text().replace("concurrency = 3", "concurrency = 1"))
    path.write_text("max_cost_usd = 0.015\n" + path.read_text())
    out = cli("--json", "pipeline", "run", str(path), expect=1)
    summary = json.loads(out.stdout)
    assert not summary["done"] and "max_cost_usd $0.015" in summary["stopped_by"]
    statuses = sorted(t.status.value for t in swarm.list_tasks(pass_name="audit: Pass 1").items)
    assert statuses == ["completed", "completed", "pending"]  # the second one's cost stopped it
    # the limit raised by a flag: it resumes and finishes
    assert run_plan(cli, path, "--max-cost-usd", "10")["done"]
    # a task budget: claims over the whole pipeline
    (tmp_path / "t").mkdir()
    other = plan_text(tmp_path / "t")
    other.write_text(other.read_text().replace('name = "audit"', 'name = "audit3"'))
    out = cli("pipeline", "run", str(other), "--max-tasks", "4", expect=1)
    assert "claims of max_tasks 4" in out.stdout + out.stderr
    claimed = [t for t in swarm.list_tasks(queue="pipeline.audit3").items if t.attempts]
    assert len(claimed) == 4


def test_a_task_budget_spent_by_a_pass_still_synthesizes_it(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """max_tasks bounds the claims of the workers' tasks: a pass that used the last of them
    is synthesized (its work is done and paid for), and the run stops before the next pass
    claims any. It stopped before the synthesis, leaving Pass 1's findings unsynthesized."""
    path = plan_text(tmp_path)
    out = cli("--json", "pipeline", "run", str(path), "--max-tasks", "3", expect=1)
    summary = json.loads(out.stdout)
    assert "claims of max_tasks 3" in summary["stopped_by"], summary
    state = final_state(swarm, path)
    first, second = state["audit: Pass 1"], state["audit: Pass 2"]
    assert first["statuses"] == ["completed"] * 3
    assert len(first["syntheses"]) == 1 and first["cited_ok"]
    # not begun: a plan changed before the run resumes is taken as it is then
    assert second["statuses"] == [] and second["syntheses"] == []
    assert out.stderr.count("stopping: the task budget is spent") == 1, out.stderr
    assert "'Pass 2': stopped before its tasks were posted" in out.stderr


def test_status_report_and_lineage(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    path = three_passes(tmp_path)
    run_plan(cli, path)
    status = cli.json("pipeline", "status", "audit")
    assert status["done"] and [p["posted"] for p in status["passes"]] == [3, 3, 4]
    assert status["cost_usd"] == pytest.approx(sum(p["cost_usd"] for p in status["passes"]))
    assert all(p["wall_s"] is not None and p["synthesis"] for p in status["passes"])
    human = cli("pipeline", "status", "audit").stdout
    assert "Pass 3" in human and "done" in human and "question: Where" in human
    out = tmp_path / "report.md"
    cli("pipeline", "report", "audit", "--out", str(out))
    report = out.read_text()
    plan = load_plan(path)
    info = swarm.context_info("notes")
    assert report.startswith("# Pipeline audit") and "**Question:** Where" in report
    for index in range(3):
        s = swarm.get_synthesis(synthesis_id(plan, index))
        assert s.id in report and s.text in report
        for fid in s.sources:
            assert f"**[{fid}]**" in report
    assert "| claude-haiku-4-5 | $0.1000 |" in report  # 10 workers at $0.01
    assert "| claude-sonnet-4-5 | $0.1500 |" in report  # 3 syntheses at $0.05
    counts = " | ".join(str(status[key]) for key in ("posted", "completed", "dead", "findings"))
    assert counts == "10 | 10 | 0 | 10"
    assert f"| **total** | {counts} | ${status['cost_usd']:.4f} |" in report
    assert cli("pipeline", "report", "audit").stdout == report
    # lineage of a synthesis reaches every worker and context version behind it
    s3 = swarm.get_synthesis(synthesis_id(plan, 2))
    tree = cli.json("lineage", s3.id)
    assert tree["kind"] == "synthesis" and len(tree["findings"]) == 4
    for node in tree["findings"]:
        f = swarm.get_finding(node["id"])
        assert node["worker"] == f.worker and node["worker"]
        assert node["context_version"] == info.version and node["context_owner"] == "notes"
        assert node["task"]["id"] == f.task_id and node["attempt"] == 1
        assert node["cost_usd"] == 0.01 and node["model"] == "claude-haiku-4-5"
    text = cli("lineage", s3.id).stdout
    assert f"context notes@{info.version[:12]}" in text and "attempt 1" in text
    task_tree = cli.json("lineage", tree["findings"][0]["task"]["id"])
    assert task_tree["finding"]["id"] == tree["findings"][0]["id"]
    whole = cli.json("lineage", "audit")
    assert [p["id"] for p in whole["passes"]] == [synthesis_id(plan, i) for i in range(3)]
    assert "audit: Pass 1" in cli("lineage", "audit").stdout
    missing = cli("pipeline", "status", "nope", expect=1)
    assert "no pipeline 'nope'" in missing.stderr and "swarm pipeline run" in missing.stderr


def test_on_a_terminal_a_live_line(redis_url: str, tmp_path: Path) -> None:
    """stderr on a terminal: the pass, its tasks done/failed/running and the cost so far."""
    import io

    from click.testing import CliRunner
    from rich.console import Console

    from redis_swarm.cli import main
    from redis_swarm.cli._app import App

    path = plan_text(tmp_path)
    err = io.StringIO()
    app = App(err=Console(file=err, force_terminal=True, width=160))
    env = {"SWARM_URL": redis_url, "SWARM_NAME": "test", "WORKER_SLEEP": "0.5"}
    result = CliRunner().invoke(main, ["pipeline", "run", str(path)], obj=app, env=env)
    assert result.exit_code == 0, result.output
    shown = err.getvalue()
    assert "pass 1/2 'Pass 1': running" in shown and "so far" in shown
    assert "synthesis s-pl-" in shown and "pipeline audit: done" in result.stdout


def test_restart_starts_over_keeping_the_old_run(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    path = plan_text(tmp_path)
    first = run_plan(cli, path)
    assert first["run"] == 1 and first["done"]
    second = run_plan(cli, path, "--restart")
    assert second["run"] == 2 and second["done"] and second["resumed"] == []
    assert [p["label"] for p in second["passes"]] == ["audit run2: Pass 1", "audit run2: Pass 2"]
    assert len(swarm.list_tasks(pass_name="audit run2: Pass 1").items) == 3
    assert len(swarm.list_tasks(pass_name="audit: Pass 1").items) == 3  # the old run's, kept
    old = [p["synthesis"] for p in first["passes"]]
    assert all(swarm.get_synthesis(sid) for sid in old)
    assert {p["synthesis"] for p in second["passes"]}.isdisjoint(old)
    again = run_plan(cli, path)  # resumes run 2: nothing new
    assert again["run"] == 2 and again["resumed"] == ["Pass 1", "Pass 2"]
    status = cli.json("pipeline", "status", "audit")
    assert status["run"] == 2 and status["passes"][0]["label"] == "audit run2: Pass 1"


def test_sigkill_during_synthesis(redis_url: str, tmp_path: Path) -> None:
    """Killed while its synthesizer runs: the rerun runs the synthesizer again and writes one
    synthesis; the tasks are not run again (once the killed run's 2 s lease on the
    pipeline ended: the rerun waits for it)."""
    path = plan_text(tmp_path, lease_s=2)
    marker = tmp_path / "synthesizing"
    slow = tmp_path / "slow_synth.py"
    slow.write_text(
        f"import os, pathlib, time\npathlib.Path({str(marker)!r}).write_text(str(os.getpid()))"
        "\ntime.sleep(30)\n"
    )
    good = f"{PY} {tmp_path}/synth.py"
    path.write_text(path.read_text().replace(good, f"{PY} {slow}"))
    env = subprocess_env(redis_url, "test", tmp_path / "bin")
    cmd = [PY, "-m", "redis_swarm", "pipeline", "run", str(path)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.1)
    assert marker.exists()
    proc.kill()
    proc.wait()
    with contextlib.suppress(ProcessLookupError, ValueError):  # the orphaned synthesizer
        os.kill(int(marker.read_text()), signal.SIGKILL)
    with Swarm(redis_url, swarm="test") as swarm:
        before = final_state(swarm, path)
        assert before["audit: Pass 1"]["statuses"] == ["completed"] * 3
        assert before["audit: Pass 1"]["syntheses"] == []
        path.write_text(path.read_text().replace(f"{PY} {slow}", good))
        done = subprocess.run([*cmd, "--wait", "30"], env=env, capture_output=True, text=True,
                              timeout=120, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
        after = final_state(swarm, path)
    assert after["audit: Pass 1"]["tasks"] == before["audit: Pass 1"]["tasks"]
    assert all(len(p["syntheses"]) == 1 and p["cited_ok"] for p in after.values())


# An agent that hangs, its pid written in the directory given as its argument.
HANG = r"""
import os, sys, time
sys.stdin.read()
open(os.path.join(sys.argv[1], str(os.getpid())), "w").close()
time.sleep(60)
"""


def hang_command(tmp_path: Path) -> str:
    """The command of an agent that hangs (HANG), as ``killed_while_held`` waits for it."""
    (tmp_path / "hang.py").write_text(HANG)
    return f"{PY} {tmp_path}/hang.py {tmp_path}/pids"


def rerun_after_kill(
    redis_url: str, cli: Cli, tmp_path: Path, path: Path, agents: int, good: str
) -> Out:
    """``killed_while_held``, then the plan made ``good`` and run again (waiting for the
    killed run's lease on the pipeline to end): that run's output."""
    killed_while_held(redis_url, tmp_path, path, agents)
    path.write_text(good)
    return cli("pipeline", "run", str(path), "--wait", "60")


def killed_while_held(redis_url: str, tmp_path: Path, path: Path, agents: int) -> None:
    """Run ``path`` until ``agents`` hanging agents (``hang_command``) hold their leases,
    then SIGKILL the run and its agents: their leases are left to expire."""
    pids = tmp_path / "pids"
    pids.mkdir()
    env = subprocess_env(redis_url, "test", tmp_path / "bin")
    cmd = [PY, "-m", "redis_swarm", "pipeline", "run", str(path)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(list(pids.iterdir())) < agents and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    for pid in pids.iterdir():  # each agent leads its own process group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(pid.name), signal.SIGKILL)
    assert len(list(pids.iterdir())) == agents


def test_resuming_says_which_tasks_it_waits_for(
    redis_url: str, cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """Killed while its workers held leases: the rerun says it waits for them, and when."""
    hang = hang_command(tmp_path)
    path = plan_text(tmp_path, worker=hang, lease_s=2)
    good = path.read_text().replace(hang, f"{PY} {tmp_path}/worker.py")
    path.write_text(path.read_text().replace("lease_s = 2", "lease_s = 2\ntimeout_s = 60"))
    out = rerun_after_kill(redis_url, cli, tmp_path, path, 3, good)
    assert re.search(
        r"pass 1/2 'Pass 1': waiting for 3 tasks held by an earlier run \(their leases "
        r"end in [0-2]( to [0-2])? s\)",
        out.stderr,
    ), out.stderr
    assert "pipeline audit: done" in out.stdout
    assert final_state(swarm, path)["audit: Pass 1"]["statuses"] == ["completed"] * 3


def test_resuming_says_it_waits_for_the_planner(
    redis_url: str, cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """Killed while its planner held the planning task: the rerun says it waits for it (the
    planner's lease outlasting the killed run's 2 s lease on the pipeline, as its workers',
    and the rerun's first wait of a second for the planning task)."""
    path = three_passes(tmp_path)
    path.write_text(path.read_text().replace("lease_s = 30", "lease_s = 2"))  # (the workers')
    planner = f"{PY} {tmp_path}/planner.py"
    good = path.read_text().replace(f'exec = "{planner}"', f'exec = "{planner}"\nlease_s = 7')
    path.write_text(good.replace(planner, hang_command(tmp_path)))
    out = rerun_after_kill(redis_url, cli, tmp_path, path, 1, good)
    assert re.search(
        r"pass 2/3 'Pass 2': waiting for its planning task t-\S+, held by an earlier run's "
        r"planner \(its lease ends in [0-7] s\)",
        out.stderr,
    ), out.stderr
    assert "pipeline audit: done" in out.stdout


def test_the_example_pipeline_of_make_demo(redis_url: str, tmp_path: Path) -> None:
    """examples/pipeline (what `make demo` runs after `swarm demo`): its scripted agents
    search the field guide, plan a second pass and cite every finding, in a few seconds."""
    root = Path(__file__).resolve().parent.parent
    bindir = tmp_path / "bin"
    swarm_bin(bindir)
    (bindir / "python").symlink_to(sys.executable)
    env = subprocess_env(redis_url, "test", bindir)
    started = time.monotonic()
    done = subprocess.run(
        ["swarm", "pipeline", "run", "examples/pipeline/plan.toml"], cwd=root, env=env,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 30
    cli = Cli(redis_url)  # (what it left is read in this process)
    with Swarm(redis_url, swarm="test") as swarm:
        status = cli.json("pipeline", "status", "demo-pipeline")
        assert status["done"] and [p["completed"] for p in status["passes"]] == [3, 2]
        label = "demo-pipeline: Pass 2: Deep Dive"
        findings = swarm.findings(queue="pipeline.demo-pipeline", pass_name=label).items
        assert {f.summary.split(" lines")[0].isdigit() for f in findings} == {True}
        assert any("'socket' with 'timeout'" in f.summary for f in findings)
    # scripted agents report no usage: no empty table per model, a sentence instead
    report = cli("pipeline", "report", "demo-pipeline").stdout
    assert "| model |" not in report and "No agent reported its usage" in report


# A worker whose CLI reports the run failed, after spending: Claude's is_error result.
FAILING = r"""
import json, sys
sys.stdin.read()
print(json.dumps({"type": "result", "subtype": "error_max_turns", "is_error": True,
                  "result": "ran out of turns", "total_cost_usd": 0.02,
                  "usage": {"input_tokens": 500, "output_tokens": 40},
                  "modelUsage": {"claude-haiku-4-5": {"inputTokens": 500, "outputTokens": 40,
                                                      "costUSD": 0.02}}}))
"""


def test_failed_runs_count_against_the_budget(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    (tmp_path / "failing.py").write_text(FAILING)
    path = plan_text(tmp_path, worker=f"{PY} {tmp_path}/failing.py")
    path.write_text(path.read_text().replace("concurrency = 3", "concurrency = 1"))
    path.write_text("max_cost_usd = 0.05\n" + path.read_text())
    out = cli("--json", "pipeline", "run", str(path), expect=1)
    summary = json.loads(out.stdout)
    # no finding cost a cent: the failed runs alone spent the budget
    assert not summary["done"] and "max_cost_usd $0.05" in summary["stopped_by"]
    tasks = swarm.list_tasks(pass_name="audit: Pass 1").items
    spent = [t.failed_usage for t in tasks if t.failed_usage is not None]
    assert sum(u.cost_usd or 0 for u in spent) == pytest.approx(0.06)  # 3 runs at $0.02
    assert all(u.tokens_in == 500 * t.failures for u, t in zip(spent, tasks, strict=True))
    assert sum(t.attempts for t in tasks) == 3  # nothing claimed past the budget
    status = cli.json("pipeline", "status", "audit")
    first = status["passes"][0]
    assert first["failed_cost_usd"] == pytest.approx(0.06) == first["cost_usd"]
    assert first["tokens_in"] == 1500 and status["failed_cost_usd"] == pytest.approx(0.06)
    report = cli("pipeline", "report", "audit").stdout
    assert "| **total** | 3 | 0 | 0 | 0 | $0.0600 | $0.0600 |" in report
    assert "| claude-haiku-4-5 | $0.0600 |" in report
    shown = cli("task", "show", tasks[0].id).stdout
    assert "failed runs cost" in shown and "$0.0200" in shown
