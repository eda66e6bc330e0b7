"""``swarm pipeline run``'s synthesizer after a docs tour: the citations of earlier passes'
syntheses, shown in its prompt, are not taken for ids of its pass (a model repeating them is
not refused three times over), and one that cites an earlier pass's finding is told so; a
synthesizer task an earlier run left dead is given back saying so, as a planning task is;
the report of agents that report no usage leaves out the columns no agent filled."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import Swarm
from redis_swarm._pipeline import load_plan, synthesis_id
from redis_swarm._pipeline.names import synthesis_task_id

from ._cli import Cli
from .test_pipeline_run import PY, plan_text, run_plan

# A synthesizer as a model may be: it repeats every citation its prompt shows, the earlier
# passes' syntheses' included. It keeps each prompt it was given (prompt-N.txt).
COPYCAT = r"""
import json, os, re, sys
prompt = sys.stdin.read()
here = os.path.dirname(os.path.abspath(__file__))
n = len([f for f in os.listdir(here) if f.startswith("prompt-")]) + 1
open(os.path.join(here, "prompt-%d.txt" % n), "w").write(prompt)
ids = dict.fromkeys(re.findall(r"\[(f-[a-z0-9]+)\]", prompt))
print(json.dumps({"type": "result", "is_error": False, "total_cost_usd": 0.05,
                  "result": "As found: " + " ".join("[" + i + "]" for i in ids)}))
"""

# A synthesizer citing every finding id its prompt names anywhere (and [f-bogus]) on a first
# try, and only the pass's listed findings once told its answer was refused.
GREEDY = r"""
import json, os, re, sys
prompt = sys.stdin.read()
here = os.path.dirname(os.path.abspath(__file__))
n = len([f for f in os.listdir(here) if f.startswith("prompt-")]) + 1
open(os.path.join(here, "prompt-%d.txt" % n), "w").write(prompt)
if "Your previous answer was refused" in prompt:
    ids = re.findall(r"^- \[(f-[a-z0-9]+)\]", prompt, re.M)
else:
    ids = [*dict.fromkeys(re.findall(r"\b(f-[a-z0-9]+)\b", prompt)), "f-bogus"]
print(json.dumps({"type": "result", "is_error": False, "total_cost_usd": 0.05,
                  "result": "Found: " + " ".join("[" + i + "]" for i in ids)}))
"""


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def with_synthesizer(tmp_path: Path, script: str) -> Path:
    path = plan_text(tmp_path)
    (tmp_path / "model.py").write_text(script)
    path.write_text(path.read_text().replace("/synth.py", "/model.py"))
    return path


def test_a_synthesizer_repeating_earlier_citations_is_not_refused(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """Pass 2's synthesizer is shown pass 1's synthesis with its citations written as
    references to pass 1's findings, "(pass 1 finding f-...)": repeating them cites nothing,
    so a model that does is not refused (before: three refusals, and the run stopped)."""
    path = with_synthesizer(tmp_path, COPYCAT)
    summary = run_plan(cli, path)
    assert summary["done"] and summary["failed_cost_usd"] is None  # no try refused
    plan = load_plan(path)
    s1 = swarm.get_synthesis(synthesis_id(plan, 0))
    s2 = swarm.get_synthesis(synthesis_id(plan, 1))
    found2 = {f.id for f in swarm.findings(pass_name="audit: Pass 2").items}
    assert set(s2.sources) == found2 and not set(s1.sources) & found2
    second = (tmp_path / "prompt-2.txt").read_text()  # pass 2's (each pass took one try)
    assert not (tmp_path / "prompt-3.txt").exists()
    for fid in s1.sources:
        assert f"(pass 1 finding {fid})" in second and f"[{fid}]" not in second
    assert "An earlier pass's findings" in second  # how one is cited instead


def test_citing_an_earlier_passs_finding_is_refused_naming_its_pass(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """An id of pass 1's findings in pass 2's synthesis: the refusal names it as pass 1's,
    says an earlier pass's findings are cited through its synthesis, and names the unknown
    id apart; told so, the next try cites right."""
    path = with_synthesizer(tmp_path, GREEDY)
    assert run_plan(cli, path)["done"]
    plan = load_plan(path)
    s1 = swarm.get_synthesis(synthesis_id(plan, 0))
    found2 = [f.id for f in swarm.findings(pass_name="audit: Pass 2").items]
    second = swarm.get_synthesis(synthesis_id(plan, 1))
    assert set(second.sources) == set(found2)
    told = (tmp_path / "prompt-4.txt").read_text()  # pass 2's second try
    earlier = ", ".join(f"[{fid}]" for fid in s1.sources)
    assert (
        f"Your previous answer was refused: it cited {earlier} of pass 1 (its synthesis "
        f"{s1.id} cites them): an earlier pass's findings are not cited by their own ids but "
        "through that pass's synthesis, named by its id (s-...) without square brackets; and "
        "it cited [f-bogus], which is not among the 2 finding(s) of this pass ("
    ) in told
    # the refusal is kept on the synthesizer task, whole
    task = swarm.get_task(synthesis_task_id(plan, 1))
    assert task.last_error is not None and f"of pass 1 (its synthesis {s1.id}" in task.last_error


def test_a_dead_synthesizer_task_given_back_is_said(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    """Three refusals leave the synthesizer task dead; the next run gives it back before its
    synthesizer runs again, saying so in the planning task's words."""
    path = plan_text(tmp_path)
    good = path.read_text()
    path.write_text(good.replace(f'exec = "{PY} {tmp_path}/synth.py"', 'exec = "echo [f-no]"'))
    cli("pipeline", "run", str(path), expect=1)
    plan = load_plan(path)
    task = swarm.get_task(synthesis_task_id(plan, 0))
    assert task.status == "dead"
    path.write_text(good)
    out = cli("pipeline", "run", str(path))
    said = (
        f"pass 1/2 'Pass 1': its synthesizer task {task.id} given back to the queue (dead: "
        "max_attempts reached"
    )
    assert said in out.stderr, out.stderr
    assert out.stderr.index(said) < out.stderr.index("'Pass 1': synthesis s-pl-")
    assert swarm.get_task(task.id).status == "completed" and "pipeline audit: done" in out.stdout


# Agents reporting no usage: a plain-text finding and a plain-text synthesis.
PLAIN_WORKER = r"""
import json, os, sys
sys.stdin.read()
print(json.dumps({"summary": "found for " + os.environ["SWARM_TASK_ID"]}))
"""
PLAIN_SYNTH = r"""
import re, sys
print(" ".join("[%s]" % i for i in re.findall(r"^- \[(f-[a-z0-9]+)\]", sys.stdin.read(), re.M)))
"""


def test_the_report_leaves_out_what_no_agent_reported(cli: Cli, tmp_path: Path) -> None:
    """Scripted agents report no usage: the table per pass keeps its counts and wall time
    without a cost or token column of '-' alone, there is no table per model, and one line
    says why."""
    (tmp_path / "plain.py").write_text(PLAIN_WORKER)
    (tmp_path / "plain_synth.py").write_text(PLAIN_SYNTH)
    path = plan_text(tmp_path, worker=f"{PY} {tmp_path}/plain.py")
    path.write_text(path.read_text().replace("/synth.py", "/plain_synth.py"))
    summary = run_plan(cli, path)
    assert summary["done"] and summary["cost_usd"] is None and summary["tokens_in"] is None
    report = cli("pipeline", "report", "audit").stdout
    cost = report[report.index("## Cost") :]
    assert "No agent reported its usage (cost, tokens" in cost
    assert "| pass | tasks | completed | dead | findings | wall time |" in cost
    assert re.search(r"^\| Pass 1 \| 3 \| 3 \| 0 \| 3 \| \d+\.\d s \|$", cost, re.M), cost
    assert "| **total** | 5 | 5 | 0 | 5 | |" in cost
    assert "| cost |" not in cost and "| model |" not in cost and " - |" not in cost
