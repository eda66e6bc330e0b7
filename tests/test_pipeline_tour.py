"""``swarm pipeline run`` after a user tour: a task the core refuses at run time is named as
the plan's item; the planner's bookkeeping is no evidence of its pass (and an older run's
planning task, posted with the pass name, is still read); a changed plan warns before a run
resumes it; one ``--json`` shape whatever stopped the run; a stable wall time for a pass
left unfinished; progress lines that say what happened."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import NotFound, Swarm
from redis_swarm._pipeline import load_plan, pass_label
from redis_swarm._pipeline.names import planning_task_id
from redis_swarm._usage import Usage

from ._cli import Cli, subprocess_env
from .test_pipeline_run import PY, final_state, plan_text, run_plan, three_passes


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def test_a_task_the_core_refuses_at_run_time_is_named_as_the_plans_item(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """Data within the limit in the plan, past it once the question is added: post_tasks
    refuses it naming the plan's file, line and item (not "task #2"), and nothing is
    posted."""
    path = plan_text(tmp_path)
    text = path.read_text()
    item = '{description = "Find the backoff", data = {term = "backoff"}}'
    room = swarm.limits.max_task_data_bytes - len('{"s":""}')
    path.write_text(text.replace(item, f'{{description = "Find the backoff", data = {{s = '
                                       f'"{"y" * room}"}}}}'))  # fmt: skip
    cli("pipeline", "check", str(path))  # the plan's data alone is within the limit
    line = text.splitlines().index(f"    {item},") + 1
    out = cli("pipeline", "run", str(path), expect=2)
    assert f"error: {path}:{line}: passes[1].tasks[3]: task data is " in out.stderr, out
    assert "task #" not in out.stderr
    assert swarm.list_tasks(pass_name="audit: Pass 1").items == ()


def test_the_planners_finding_is_not_evidence_of_its_pass(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """The planning task carries no pass name (as the synthesizer's): the pass's tasks,
    findings and counts are its workers', so that no synthesis can cite the planner's
    bookkeeping; its cost still counts on the pass."""
    path = three_passes(tmp_path)
    summary = run_plan(cli, path, PLAN_COUNT="2")
    assert summary["done"]
    plan = load_plan(path)
    for index in (1, 2):
        label = pass_label(plan, index)
        planning = swarm.get_task(planning_task_id(plan, index))
        assert planning.pass_name is None and planning.status == "completed"
        assert planning.queue == "pipeline.audit.plan"
        assert {t.queue for t in swarm.list_tasks(pass_name=label).items} == {"pipeline.audit"}
        found = swarm.findings(pass_name=label).items
        assert found and {f.queue for f in found} == {"pipeline.audit"}
        assert sum(swarm.pass_stats(label).values()) == 2 == summary["passes"][index]["posted"]
        synthesis = swarm.get_synthesis(summary["passes"][index]["synthesis"])
        assert planning.finding_id not in synthesis.sources
        assert summary["passes"][index]["cost_usd"] == pytest.approx(0.02 + 2 * 0.01 + 0.05)
    evidence = cli.json("findings", "--pass", pass_label(plan, 1))["items"]
    assert len(evidence) == 2 and all("planned for" not in f["summary"] for f in evidence)


def test_an_older_runs_planning_task_is_still_read(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    """A run from before planning tasks had their own id posted one with the pass name and
    a dedupe key: a resumed run takes its tasks (the planner is not asked again) and counts
    its cost."""
    path = three_passes(tmp_path)
    plan = load_plan(path)
    label = pass_label(plan, 1)
    old = swarm.post_task(
        "pipeline.audit.plan", "Plan the tasks of Pass 2", pass_name=label,
        dedupe_key="plan.pass2", parent="notes", max_attempts=3,
    )  # fmt: skip
    held = swarm.claim(["pipeline.audit.plan"], worker="old-planner")
    assert held is not None and held.id == old.id
    tasks = [{"description": "Old plan A", "data": None}, {"description": "Old plan B"}]
    swarm.report(
        held.id, held.token, {"summary": "2 tasks planned for Pass 2", "tasks": tasks},
        worker="old-planner", usage=Usage("claude-json", cost_usd=0.3),
    )  # fmt: skip
    summary = run_plan(cli, path)
    assert summary["done"]
    assert final_state(swarm, path)[label]["tasks"] == ["Old plan A", "Old plan B"]
    with pytest.raises(NotFound):  # no second planning task for pass 2
        swarm.get_task(planning_task_id(plan, 1))
    swarm.get_task(planning_task_id(plan, 2))  # pass 3's, posted now: the new shape
    assert summary["passes"][1]["cost_usd"] == pytest.approx(0.3 + 2 * 0.01 + 0.05)


def test_a_renamed_pass_warns_before_the_run_goes_on(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """'Pass 1' renamed in a finished plan: the run says what changed and that pass 2,
    done before, rests on the old pass 1, and suggests --restart. A pass changed before it
    began is no news."""
    path = plan_text(tmp_path)
    assert run_plan(cli, path)["done"]
    path.write_text(path.read_text().replace('name = "Pass 1"', 'name = "Pass One"'))
    out = cli("pipeline", "run", str(path))
    assert (
        "warning: the plan changed since run 1 of pipeline audit stored it: pass 1 'Pass 1' "
        "was renamed 'Pass One'."
    ) in out.stderr
    assert f"swarm pipeline run {path} --restart" in out.stderr
    assert out.stderr.index("warning:") < out.stderr.index("pass 1/2 'Pass One'")
    assert "pass 2/2 'Pass 2': done before (s-pl-" in out.stderr
    assert "under the plan as it was before the change above" in out.stderr
    # 'Pass One' ran tasks of its own (the old pass's, same keys, are not taken for its)
    state = final_state(swarm, path)
    assert state["audit: Pass One"]["statuses"] == ["completed"] * 3
    assert state["audit: Pass One"]["syntheses"] and state["audit: Pass One"]["cited_ok"]
    assert len(swarm.list_tasks(pass_name="audit: Pass 1").items) == 3  # the old pass's
    again = run_plan(cli, path)  # the plan stored is the renamed one now
    assert again["plan_changes"] == [] and again["resumed"] == ["Pass One", "Pass 2"]
    # a pass never begun (stopped by the task budget in pass 1) may change silently
    (tmp_path / "b").mkdir()
    other = plan_text(tmp_path / "b")
    other.write_text(other.read_text().replace('name = "audit"', 'name = "audit2"'))
    cli("pipeline", "run", str(other), "--max-tasks", "3", expect=1)
    other.write_text(other.read_text().replace('"Check the retries again"', '"Other"'))
    summary = run_plan(cli, other)
    assert summary["done"] and summary["plan_changes"] == []
    other.write_text(other.read_text().replace('"Find the retries"', '"Find more"'))
    out = cli("--json", "pipeline", "run", str(other))
    assert json.loads(out.stdout)["plan_changes"] == ["pass 1 'Pass 1': its tasks changed"]
    assert "warning: the plan changed" in out.stderr  # progress on stderr, --json or not


def test_every_task_died_gives_the_status_document_and_the_error(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """One shape on exit 1: the status on stdout with stopped_by, the error on stderr (JSON
    with --json); the human output prints its table too. The wall time of the pass left
    unfinished does not grow with the clock."""
    path = plan_text(tmp_path)
    own = {"FAIL_ON": "Find", "FAIL_OWN": "1"}  # (alike, 3 runs would stop the pool first)
    out = cli("--json", "pipeline", "run", str(path), expect=1, env=own)
    summary = json.loads(out.stdout)
    assert not summary["done"] and summary["error"] == "InvalidState"
    assert "every task died (3 dead of 3" in summary["stopped_by"]
    assert summary["passes"][0]["dead"] == 3
    error = json.loads(out.stderr.splitlines()[-1])  # (after the progress lines)
    assert error["error"] == "InvalidState" and error["message"] == summary["stopped_by"]
    out = cli("pipeline", "run", str(path), expect=1, env=own)
    assert "Pass 1" in out.stdout and "pipeline audit: stopped by the error" in out.stdout
    assert "error: pass 1/2 'Pass 1': every task died" in out.stderr
    wall = cli.json("pipeline", "status", "audit")["passes"][0]["wall_s"]
    time.sleep(0.3)  # (wall_s counts milliseconds)
    assert wall is not None and cli.json("pipeline", "status", "audit")["passes"][0][
        "wall_s"
    ] == pytest.approx(wall)


def test_a_budget_stop_after_every_task_completed_says_so(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """The third finding spends the budget: the pass settled, and stopped before its
    synthesis (not "before it settled")."""
    path = plan_text(tmp_path)
    path.write_text(path.read_text().replace("concurrency = 3", "concurrency = 1"))
    path.write_text("max_cost_usd = 0.03\n" + path.read_text())
    out = cli("pipeline", "run", str(path), expect=1)
    assert "pass 1/2 'Pass 1': settled, 3 completed, 0 dead, 3 findings" in out.stderr
    assert "pass 1/2 'Pass 1': stopped before its synthesis" in out.stderr
    assert "before it settled" not in out.stderr and "pass 2/2" not in out.stderr
    assert "pipeline audit: stopped: the budget is spent" in out.stdout


# A synthesizer that says it started (its first argument: a file), then waits until told to
# go on (the file its second names exists), then cites all.
SLOW_SYNTH = r"""
import pathlib, sys, time
pathlib.Path(sys.argv[1]).write_text("started")
deadline = time.monotonic() + 60
while not pathlib.Path(sys.argv[2]).exists() and time.monotonic() < deadline:
    time.sleep(0.01)
exec(open(sys.argv[3]).read())
"""
# What the run says once its first Ctrl-C is taken.
FINISHING = "stopping after the running agents finish"


def interrupt_synthesis(redis_url: str, tmp_path: Path, path: Path, *args: str) -> tuple[str, str]:
    """Run ``path`` (its synthesizer SLOW_SYNTH) until its synthesizer starts, then Ctrl-C
    once, and let the synthesizer go on once the run said it took the Ctrl-C: what the run
    printed (stdout, stderr), its exit code checked (1)."""
    marker, go = tmp_path / "synthesizing", tmp_path / "go"
    marker.unlink(missing_ok=True)
    go.unlink(missing_ok=True)
    env = subprocess_env(redis_url, "test", tmp_path / "bin")
    cmd = [PY, "-m", "redis_swarm", *args, "pipeline", "run", str(path)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    said: list[str] = []  # its stderr, line by line as it comes
    assert proc.stderr is not None and proc.stdout is not None
    stderr_pipe = proc.stderr

    def read() -> None:
        for line in stderr_pipe:
            said.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marker.exists()
        proc.send_signal(signal.SIGINT)
        while not any(FINISHING in line for line in said):
            assert time.monotonic() < deadline and proc.poll() is None, said
            time.sleep(0.02)
    finally:
        go.touch()
        proc.wait(60)
        reader.join(10)
    stdout, stderr = proc.stdout.read(), "".join(said)
    proc.stdout.close()
    stderr_pipe.close()
    assert proc.returncode == 1, stderr
    return stdout, stderr


def test_ctrl_c_during_a_synthesis_begins_no_next_pass(redis_url: str, tmp_path: Path) -> None:
    """Ctrl-C while pass 1's synthesizer runs: it finishes, the synthesis is written, and
    pass 2 is not begun (no "0 task(s)", nothing posted); --json says it was interrupted."""
    path = plan_text(tmp_path)
    (tmp_path / "slow.py").write_text(SLOW_SYNTH)
    synth = f"{PY} {tmp_path}/synth.py"
    slow = f"{PY} {tmp_path}/slow.py {tmp_path}/synthesizing {tmp_path}/go {tmp_path}/synth.py"
    path.write_text(path.read_text().replace(synth, slow))
    stdout, _ = interrupt_synthesis(redis_url, tmp_path, path, "--json")
    summary = json.loads(stdout)
    first, second = summary["passes"]
    assert first["synthesis"] and second["posted"] == 0 and not summary["done"]
    assert summary["stopped_by"] == "interrupted (Ctrl-C): run it again to resume"
    with Swarm(redis_url, swarm="test") as swarm:
        assert swarm.list_tasks(pass_name="audit: Pass 2").items == ()
    # the same in words, for a planned pass 2 (it said "0 task(s)")
    planned = three_passes(tmp_path).read_text().replace(synth, slow)
    other = tmp_path / "planned.toml"
    other.write_text(planned.replace('name = "audit"', 'name = "audit2"'))
    stdout, stderr = interrupt_synthesis(redis_url, tmp_path, other)
    assert "pass 1/3 'Pass 1': synthesis s-pl-" in stderr
    assert "stopped before pass 2/3 'Pass 2'" in stderr
    assert "pass 2/3 'Pass 2': " not in stderr
    assert "pipeline audit2: stopped" in stdout
