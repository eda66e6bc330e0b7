"""``swarm pipeline`` after a second user tour: a $0 budget runs no agent; a cost some runs
did not report says how many; control bytes an agent printed reach no view; check finds an
agent program that is not there; --json keeps the progress on stderr and a Ctrl-C says why
it stopped; the planner's run is a row of the report and of the lineage; a renamed pass's
JSON name is its own; the status table has its "open" column and the report's wall time."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import Swarm
from redis_swarm._pipeline import load_plan
from redis_swarm._pipeline.names import planning_task_id, synthesis_task_id

from ._cli import Cli
from .test_pipeline_run import PY, plan_text, run_plan, short_backoff, three_passes
from .test_pipeline_tour import SLOW_SYNTH, interrupt_synthesis

# What no view may print: a control character other than a newline or a tab.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def test_a_zero_budget_runs_no_agent(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    """max_cost_usd = 0 (accepted by check): the run stops before the first agent runs,
    saying the budget allows nothing, exit 1 as a budget stop; nothing was claimed."""
    path = plan_text(tmp_path)
    path.write_text("max_cost_usd = 0\n" + path.read_text())
    cli("pipeline", "check", str(path))
    summary = run_plan(cli, path, expect=1)
    assert not summary["done"] and summary["cost_usd"] is None
    assert summary["stopped_by"].startswith("the budget allows nothing: max_cost_usd is $0")
    assert all(t.attempts == 0 for t in swarm.list_tasks(queue="pipeline.audit").items)
    assert swarm.findings().items == ()
    out = cli("pipeline", "run", str(path), expect=1)
    assert "pipeline audit: stopped: the budget allows nothing" in out.stdout
    # the flag overrides it the same way, and raising it resumes
    assert run_plan(cli, path, "--max-cost-usd", "10")["done"]


def test_runs_that_reported_no_cost_are_counted(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    """The backoff task's two runs fail without a word of usage: every view of the cost
    says that 2 of the 8 runs behind it reported none (as swarm run's last line does), and
    the JSON counts them."""
    path = plan_text(tmp_path)
    short_backoff(swarm, path)
    summary = run_plan(cli, path, FAIL_ON="backoff")
    assert summary["done"] and summary["passes"][0]["dead"] == 1
    # pass 1: 2 findings, 2 failed runs, a synthesis; pass 2: 2 findings, a synthesis
    assert (summary["runs"], summary["runs_without_cost"]) == (8, 2)
    assert [p["runs_without_cost"] for p in summary["passes"]] == [2, 0]
    note = "(2 of 8 runs reported no cost)"
    ran = cli("pipeline", "run", str(path)).stdout
    assert ran.rstrip().endswith(f"pipeline audit: done, $0.1400 spent {note}")
    status = cli("pipeline", "status", "audit").stdout
    assert status.rstrip().endswith(f"$0.1400 spent {note}")
    assert cli.json("pipeline", "status", "audit")["runs_without_cost"] == 2
    report = cli("pipeline", "report", "audit").stdout
    assert "Of the runs it sums, 2 of 8 runs reported no cost" in report
    lineage = cli("lineage", "audit").stdout
    assert f"\n  total: $0.1400 · 2,400 in / 140 out {note}\n" in lineage
    assert "pass total: $0.0700 · 1,200 in / 70 out (2 of 5 runs reported no cost)" in lineage
    tree = cli.json("lineage", "audit")
    assert (tree["runs"], tree["runs_without_cost"]) == (8, 2)


GARBAGE = r"""
import sys
sys.stdin.read()
sys.stdout.write("}}}not json at all{{{ \x00\x01\x1b[2J\r\nits second line\r\n")
"""


def test_control_bytes_an_agent_printed_reach_no_view(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """A worker's garbage is its finding's summary (plain text is taken as it is): the
    report, the status table and the lineage show its control bytes as escapes."""
    (tmp_path / "garbage.py").write_text(GARBAGE)
    path = plan_text(tmp_path, worker=f"{PY} {tmp_path}/garbage.py")
    assert run_plan(cli, path)["done"]
    (finding, *_) = swarm.findings(pass_name="audit: Pass 1").items
    assert "\x00\x01" in finding.summary  # stored as the agent wrote it
    report = cli("pipeline", "report", "audit").stdout
    assert "not json at all{{{ \\x00\\x01\\x1b[2J" in report
    assert not CONTROL.search(report)
    assert "\\x0d" not in report  # (CRLF line ends are line ends, not escapes)
    out = tmp_path / "report.md"
    cli("pipeline", "report", "audit", "--out", str(out))
    assert not CONTROL.search(out.read_text())
    for view in (("pipeline", "status", "audit"), ("lineage", "audit"), ("lineage", finding.id)):
        text = cli(*view).stdout
        assert not CONTROL.search(text), view
    assert "\\x00\\x01" in cli("lineage", finding.id).stdout


def test_check_finds_an_agent_program_that_is_not_there(cli: Cli, tmp_path: Path) -> None:
    """What run refuses at once, check finds too, at its line, every agent at once."""
    path = plan_text(tmp_path)
    text = path.read_text()
    path.write_text(
        text.replace(f'exec = "{PY} {tmp_path}/worker.py"', 'exec = "claud -p --json"').replace(
            f'exec = "{PY} {tmp_path}/synth.py"', 'exec = "synthesise-it"'
        )
    )
    out = cli("pipeline", "check", str(path), expect=2)
    assert f"the plan {path} has 2 problem(s)" in out.stderr
    assert f"{path}:7: workers.exec: the agent command's program 'claud' is not found" in (
        out.stderr
    )
    assert f"{path}:12: synthesizer.exec: the agent command's program 'synthesise-it'" in (
        out.stderr
    )
    run = cli("pipeline", "run", str(path), expect=2)
    assert run.stderr == out.stderr  # the one check, said alike


def test_json_keeps_the_progress_and_a_ctrl_c_says_why(redis_url: str, tmp_path: Path) -> None:
    """--json: the JSON on stdout, the progress on stderr as without it (the Ctrl-C line
    included). The human end line after a Ctrl-C says what stopped the run."""
    path = plan_text(tmp_path)
    (tmp_path / "slow.py").write_text(SLOW_SYNTH)
    synth = f"{PY} {tmp_path}/synth.py"
    slow = f"{PY} {tmp_path}/slow.py {tmp_path}/synthesizing {tmp_path}/go {tmp_path}/synth.py"
    path.write_text(path.read_text().replace(synth, slow))
    stdout, stderr = interrupt_synthesis(redis_url, tmp_path, path, "--json")
    assert json.loads(stdout)["stopped_by"] == "interrupted (Ctrl-C): run it again to resume"
    assert "pass 1/2 'Pass 1': 3 tasks" in stderr
    assert "stopping after the running agents finish" in stderr
    other = tmp_path / "other.toml"
    other.write_text(path.read_text().replace('name = "audit"', 'name = "audit2"'))
    stdout, _ = interrupt_synthesis(redis_url, tmp_path, other)
    assert re.search(
        r"pipeline audit2: stopped: interrupted \(Ctrl-C\), \$0\.\d{4} so far; run it again "
        "to resume",
        stdout,
    ), stdout


def test_the_planners_run_is_a_row_of_the_report_and_the_lineage(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """Pass 2 costs its planner's $0.02, its 3 workers' $0.03 and its synthesis's $0.05:
    the report and the lineage show the planner's run with its cost, and each pass's runs
    add up to its cost. The planner's finding names no context: the planner reads none."""
    path = three_passes(tmp_path)
    assert run_plan(cli, path)["done"]
    planning = swarm.get_task(planning_task_id(load_plan(path), 1))
    assert planning.parent is None and planning.finding_id
    planner = f"planner (its task list, finding {planning.finding_id}): $0.0200"
    report = cli("pipeline", "report", "audit").stdout
    two = report.split("## Pass 2")[1].split("## Pass 3")[0]
    assert "### Other agent runs" in two and f"- {planner}" in two
    assert "Pass cost, the runs above: $0.1000" in two
    lineage = cli("lineage", "audit").stdout
    assert f"      {planner}" in lineage
    assert lineage.count("other runs of the pass:") == 2  # passes 2 and 3 (planned)
    assert "    pass total: $0.1000" in lineage
    node = cli.json("lineage", "audit")["passes"][1]
    assert [r["id"] for r in node["other_runs"]] == [planning.finding_id]
    shown = cli("lineage", planning.finding_id).stdout
    assert "no context" in shown and "context notes@" not in shown


def test_a_renamed_pass_is_named_alone_in_json(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    """status --json: the old pass's name with "earlier": true; the table says it is no
    longer in the plan. The table has the "open" column, and its wall time reads as the
    report's."""
    path = plan_text(tmp_path)
    assert run_plan(cli, path)["done"]
    path.write_text(path.read_text().replace('name = "Pass 1"', 'name = "Pass One"'))
    assert run_plan(cli, path)["done"]
    status = cli.json("pipeline", "status", "audit")
    assert [(p["name"], p["earlier"]) for p in status["passes"]] == [
        ("Pass One", False), ("Pass 2", False), ("Pass 1", True),
    ]  # fmt: skip
    table = cli("pipeline", "status", "audit").stdout
    assert "Pass 1 (no longer in the plan)" in table
    header = next(line for line in table.splitlines() if "posted" in line)
    assert re.search(r"dead\s+\S?\s*open\s+\S?\s*findings", header), header
    walls = re.findall(r"\d+\.\d s\b", table)
    assert len(walls) == 3 and not re.search(r"\d\.\ds\b", table)
    report = cli("pipeline", "report", "audit").stdout
    assert re.search(r"\| \d+\.\d s \|", report)


# An agent whose CLI says the run failed, and exits 1 (Claude Code's error result).
FAILING_AGENT = r"""
import json, sys
sys.stdin.read()
print(json.dumps({"type": "result", "subtype": "error_during_execution", "is_error": True,
                  "result": "boom", "total_cost_usd": 0.002,
                  "usage": {"input_tokens": 10, "output_tokens": 1}}))
sys.exit(1)
"""


@pytest.mark.parametrize("role", ["synthesizer", "planner"])
def test_a_failing_agents_own_error_is_said(
    cli: Cli, swarm: Swarm, tmp_path: Path, role: str
) -> None:
    """The synthesizer (or planner) prints Claude's error result and exits 1: the run's
    error, each try and its task's last error say the CLI's error as ``swarm run`` does,
    and the last output quoted is what it printed, not the exit code again."""
    (tmp_path / "fail.py").write_text(FAILING_AGENT)
    failing = f"{PY} {tmp_path}/fail.py"
    if role == "planner":
        path = three_passes(tmp_path, planner=failing)
        task_id = planning_task_id(load_plan(path), 1)
    else:
        path = plan_text(tmp_path)
        path.write_text(path.read_text().replace(f"{PY} {tmp_path}/synth.py", failing))
        task_id = synthesis_task_id(load_plan(path), 0)
    short_backoff(swarm, path)
    summary = run_plan(cli, path, expect=1)
    said = "exit code 1; the agent CLI reported an error: boom (the run cost $0.0020)"
    assert f"tries 1 to 3: {said}" in summary["stopped_by"]
    assert 'its last output ends: \'{"type": "result"' in summary["stopped_by"]
    assert (swarm.get_task(task_id).last_error or "").startswith(said)
    assert said in cli("task", "show", task_id).stdout


def test_check_lists_the_plans_problems_and_the_missing_programs_at_once(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """A bad max_cost_usd and a program not found: both in one check (and one run's
    refusal, said alike), worded for a check: it claims nothing, ever."""
    path = plan_text(tmp_path)
    text = path.read_text().replace(f'exec = "{PY} {tmp_path}/worker.py"', 'exec = "claud -p"')
    path.write_text("max_cost_usd = -1\n" + text)
    out = cli("pipeline", "check", str(path), expect=2)
    assert f"the plan {path} has 2 problem(s)" in out.stderr
    assert f"{path}:1: max_cost_usd: must be a number from 0 to 1,000,000,000" in out.stderr
    assert f"{path}:8: workers.exec: the agent command's program 'claud' is not found" in (
        out.stderr
    )
    assert "nothing was claimed" not in out.stderr
    assert out.stderr.rstrip().endswith("or fix the agent command ([workers] exec)")
    run = cli("pipeline", "run", str(path), expect=2)
    assert run.stderr == out.stderr
    assert swarm.list_tasks().items == ()


def test_an_unknown_pipeline_names_those_there_are(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    """status and report of a misspelt pipeline list the pipelines there are (at most 10,
    then how many more), as swarm retire lists the passes; none yet in an empty swarm."""
    missing = cli("pipeline", "status", "audit", expect=1)
    assert "no pipeline 'audit' in swarm 'test'. Check its name (the pipelines: none yet)" in (
        missing.stderr
    )
    assert run_plan(cli, plan_text(tmp_path))["done"]
    typo = cli("pipeline", "status", "adit", expect=1)
    assert "(the pipelines: 'audit'), or start it with swarm pipeline run PLAN.toml" in (
        typo.stderr
    )
    for n in range(11):  # (as a run stores its plan: the context of pipeline.NAME)
        swarm.publish_context(f"pipeline.p{n:02}", f"name = 'p{n:02}'\n", source="p.toml")
    report = cli("pipeline", "report", "adit", expect=1)
    named = ", ".join(f"'p{n:02}'" for n in range(9))
    assert f"(the pipelines: 'audit', {named} and 2 more)" in report.stderr


def test_a_retired_pass_is_said_by_status_and_report(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """swarm retire "audit: Pass 2": status (human and JSON) says the pass was retired,
    when and what went, and that the totals no longer count it; the report says its cited
    findings went with it, not an empty heading."""
    path = plan_text(tmp_path)
    before = run_plan(cli, path)
    assert before["done"] and before["retired_passes"] == []
    assert [p["retired"] for p in before["passes"]] == [None, None]
    cli("retire", "audit: Pass 2")
    status = cli.json("pipeline", "status", "audit")
    one, two = status["passes"]
    assert one["retired"] is None and two["posted"] == 0 and two["synthesis"]
    assert two["retired"]["tasks"] == 2 and two["retired"]["findings"] == 2
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", two["retired"]["at"])
    assert status["retired_passes"] == ["Pass 2"]
    assert status["cost_usd"] == pytest.approx(before["cost_usd"] - 0.02)
    table = cli("pipeline", "status", "audit").stdout
    assert "Pass 2 (retired)" in table and "Pass 1 (retired)" not in table
    note = (
        f"pass 'Pass 2' was retired on {two['retired']['at']} (swarm retire): its 2 settled "
        "tasks and 2 findings were removed, and the costs shown no longer count what "
        f"their runs cost; its synthesis {two['synthesis']} is kept"
    )
    assert note in " ".join(table.split())
    report = cli("pipeline", "report", "audit").stdout
    section = report.split("## Pass 2 (retired)")[1].split("## Cost")[0]
    assert note[:1].upper() + note[1:] + "." in section
    cited = section.split("### Cited findings")[1].strip().splitlines()[0]
    assert re.fullmatch(
        rf"- \[f-\w+\], \[f-\w+\]: retired with the pass on {re.escape(two['retired']['at'])} "
        r"\(swarm retire\): no longer stored",
        cited,
    ), cited
    assert "| Pass 2 (retired) |" in report
