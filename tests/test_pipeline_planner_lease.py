"""The planner's lease on its planning task (default: the workers' ``lease_s``, at least
60 s, renewed while it runs; lost all the same, the planner is stopped): a run killed while
its planner works is resumed after about that lease, not 600 s, the wait line saying what
to do; and the warning that ``max_cost_usd`` cannot stop a run,
said only once several agent runs reported no cost, and taken back when one reports one."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from redis_swarm import Swarm, Task
from redis_swarm._pipeline import load_plan, parse_plan
from redis_swarm._pipeline.names import planning_queue
from redis_swarm._pipeline.plan import PLANNER_LEASE_MIN_S

from ._cli import Cli, subprocess_env
from ._waiting import until
from .test_pipeline_run import (
    PLANNER,
    hang_command,
    killed_while_held,
    plan_text,
    swarm,  # noqa: F401  (the fixture)
    three_passes,
)

PY = sys.executable


def _parsed(planner: str, workers: int = 12) -> tuple[int, float | None]:
    text = f"""
name = "p"
[workers]
exec = "w"
lease_s = {workers}
[synthesizer]
exec = "s"
[planner]
exec = "p"
{planner}
[[passes]]
name = "One"
plan = "List what to look at"
"""
    plan = parse_plan(text, Path("plan.toml"))
    assert plan.planner is not None
    return plan.planner.lease_s, plan.planner.timeout_s


def test_the_planner_lease_defaults_to_the_workers_and_its_timeout_stays_long() -> None:
    """By default, the workers' lease_s, at least PLANNER_LEASE_MIN_S (one renewal held up
    must not lose it); a lease_s given is taken as it is."""
    assert PLANNER_LEASE_MIN_S == 60
    assert _parsed("") == (60, 600.0)  # (a lease by default is no time limit)
    assert _parsed("", workers=90) == (90, 600.0)
    assert _parsed("lease_s = 40") == (40, 600.0)  # (a lease given is no time limit either)
    assert _parsed("lease_s = 2") == (2, 600.0)
    assert _parsed("timeout_s = 9") == (60, 9.0)


def _killed_then_rerun(redis_url: str, tmp_path: Path, planner_lease: str) -> tuple[str, float]:
    """``three_passes`` with the workers' lease_s 2 (and ``planner_lease`` added to the
    planner), killed while its planner works (a hanging one), then run again with the real
    planner: the rerun's stderr, and how long it took."""
    path = three_passes(tmp_path)
    path.write_text(path.read_text().replace("lease_s = 30", "lease_s = 2"))  # (the workers')
    planner = f"{PY} {tmp_path}/planner.py"
    good = path.read_text().replace(f'exec = "{planner}"', f'exec = "{planner}"{planner_lease}')
    path.write_text(good.replace(planner, hang_command(tmp_path)))
    killed_while_held(redis_url, tmp_path, path, 1)
    path.write_text(good)
    env = subprocess_env(redis_url, "test", tmp_path / "bin")
    began = time.monotonic()
    try:
        done = subprocess.run(
            [PY, "-m", "redis_swarm", "pipeline", "run", str(path), "--wait", "60"],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the rerun still waits for the planner: {exc.stderr!r}") from None
    assert done.returncode == 0, done.stderr
    assert "pipeline audit: done" in done.stdout
    return done.stderr, time.monotonic() - began


WAITING = (
    r"pass 2/3 'Pass 2': waiting for its planning task t-\S+, held by an earlier run's "
    r"planner \(its lease ends in (\d+) s\): renewed while that run lives; this run goes on "
    r"by itself once it ends; if that run still runs, stop it.*"
)


def test_a_run_killed_while_its_planner_works_resumes_after_the_workers_lease(
    redis_url: str, tmp_path: Path
) -> None:
    """The planner's lease_s is 2: the rerun waits for the killed planner's planning task
    about 2 s (the planner held it 600 s before; by default it holds it 60 s now)."""
    stderr, took = _killed_then_rerun(redis_url, tmp_path, "\nlease_s = 2\ntimeout_s = 60")
    assert took < 30, stderr
    line = re.search(WAITING, stderr)  # (the wait may be over before the rerun looks)
    assert line is None or int(line.group(1)) <= 2, stderr


def test_the_wait_for_a_killed_planner_says_what_to_do(redis_url: str, tmp_path: Path) -> None:
    """A planner's lease_s of 15 outlasts the killed run's 2 s lease on the pipeline: the
    rerun says how long it waits, that it goes on by itself, and what else to do. (With 7 s
    a loaded machine's rerun reached the pass after the planner's lease had ended.)"""
    stderr, _took = _killed_then_rerun(redis_url, tmp_path, "\nlease_s = 15")
    line = re.search(WAITING, stderr)
    assert line is not None, stderr
    assert int(line.group(1)) <= 15, line.group(0)
    assert "wait, or stop this one (Ctrl-C) and run it again then ([planner] lease_s" in (
        line.group(0)
    )


# A worker printing Claude's JSON; its runs counted in a file: the first NO_COST_FIRST runs
# report no cost (the first of them, with CRASH_FIRST set, crashes printing nothing), the
# later ones $0.01 each.
WORKER = r"""
import json, os, sys
sys.stdin.read()
counter = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker-runs")
runs = int(open(counter).read()) if os.path.exists(counter) else 0
open(counter, "w").write(str(runs + 1))
if runs == 0 and os.environ.get("CRASH_FIRST"):
    sys.exit("crashed")
result = {"type": "result", "is_error": False,
          "result": json.dumps({"summary": "found for " + os.environ["SWARM_TASK_ID"]})}
if runs >= int(os.environ.get("NO_COST_FIRST", "0")):
    result["total_cost_usd"] = 0.01
print(json.dumps(result))
"""


def _budgeted(tmp_path: Path) -> Path:
    """``plan_text``'s plan with a budget of $20, one worker (its runs in order) of WORKER."""
    path = plan_text(tmp_path, worker=f"{PY} {tmp_path}/costly.py")
    (tmp_path / "costly.py").write_text(WORKER)
    text = path.read_text().replace("concurrency = 3", "concurrency = 1")
    path.write_text(text.replace("max_attempts = 2", "max_attempts = 2\nmax_cost_usd = 20"))
    return path


NO_COST = "cannot stop this run"
AFTER_ALL = "max_cost_usd $20 can stop this run after all: an agent run reported a cost"


def test_one_crashed_run_without_cost_is_no_reason_to_warn(
    cli: Cli,
    swarm: Swarm,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The first worker run crashes printing no cost, every later one reports one: no
    warning that the budget cannot stop the run."""
    path = _budgeted(tmp_path)
    swarm.configure_queue("pipeline.audit", retry_backoff_s=0.05)
    out = cli("pipeline", "run", str(path), env={"CRASH_FIRST": "1", "NO_COST_FIRST": "1"})
    assert "pipeline audit: done" in out.stdout
    assert NO_COST not in out.stderr and AFTER_ALL not in out.stderr, out.stderr


def test_the_warning_is_said_after_runs_without_cost_and_taken_back(
    cli: Cli,
    swarm: Swarm,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The first 3 worker runs report no cost, the later ones do: the warning, once, then
    that the budget can stop the run after all, once."""
    path = _budgeted(tmp_path)
    out = cli("pipeline", "run", str(path), env={"NO_COST_FIRST": "3"})
    assert "pipeline audit: done" in out.stdout
    warned = "warning: none of the 3 agent runs recorded so far reported a cost, so max_cost_usd"
    assert out.stderr.count(warned) == 1, out.stderr
    assert out.stderr.count(NO_COST) == 1, out.stderr
    assert out.stderr.count(AFTER_ALL) == 1, out.stderr
    assert out.stderr.index(warned) < out.stderr.index(AFTER_ALL)


# A planner whose first run works a while (``started`` then ``finished`` written in the
# directory it is given), then answers as PLANNER does.
SLOW_FIRST = r"""
import os, sys, time
marks = sys.argv[1]
if not os.path.exists(os.path.join(marks, "started")):
    open(os.path.join(marks, "started"), "w").close()
    time.sleep(6)
    open(os.path.join(marks, "finished"), "w").close()
os.execv(sys.executable, [sys.executable, sys.argv[2]])
"""


def run_with_planner_overtaken(
    redis_url: str, handle: Swarm, path: Path, marks: Path, tmp_path: Path, wait_s: float = 60
) -> tuple[int, str, Task]:
    """``swarm pipeline run PATH`` whose planner (a 1 s lease; it makes ``marks/started``
    when its run begins) is overtaken: the run paused past the lease (SIGSTOP, a laptop
    asleep), the planning task claimed meanwhile by another holder (through ``handle``),
    which stores its plan once the run said its planner stopped. Its exit code, its stderr,
    and the other's claim (``wait_s``: how long the run may take to end after that)."""
    env = subprocess_env(redis_url, "test", tmp_path / "bin")
    err = tmp_path / "stderr"
    with err.open("w") as stderr:
        proc = subprocess.Popen(
            [PY, "-m", "redis_swarm", "pipeline", "run", str(path)],
            env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    try:
        until(lambda: (marks / "started").exists(), "the planner's run")
        os.kill(proc.pid, signal.SIGSTOP)  # (its renewals stop: its 1 s lease runs out)
        time.sleep(1.5)
        taken = handle.claim([planning_queue(load_plan(path))], worker="other", lease_s=60)
        os.kill(proc.pid, signal.SIGCONT)
        assert taken is not None and taken.token is not None
        until(lambda: "planner stopped" in err.read_text(), "the planner stopped")
        plan = {"summary": "1 task planned", "tasks": [{"description": "Other's", "data": None}]}
        handle.report(taken.id, taken.token, plan, worker="other")
        code = proc.wait(timeout=wait_s)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
    return code, err.read_text(), taken


def test_a_planner_whose_lease_is_lost_is_stopped_and_its_run_takes_the_other_plan(
    redis_url: str,
    swarm: Swarm,  # noqa: F811  (the fixture)
    tmp_path: Path,
) -> None:
    """The run paused (a laptop asleep) past its planner's lease, and another holder took
    the planning task meanwhile: the next renewal, refused, stops the planner (its plan
    would be paid twice), says so, and the run goes on with the plan the other stores."""
    path = three_passes(tmp_path)
    (tmp_path / "slow.py").write_text(SLOW_FIRST)
    marks = tmp_path / "marks"
    marks.mkdir()
    text = path.read_text().replace(
        f'exec = "{PY} {tmp_path}/planner.py"',
        f'exec = "{PY} {tmp_path}/slow.py {marks} {tmp_path}/planner.py"\nlease_s = 1'
        "\ntimeout_s = 60",
    )
    path.write_text(text)
    assert PLANNER in (tmp_path / "planner.py").read_text()
    code, said, taken = run_with_planner_overtaken(redis_url, swarm, path, marks, tmp_path)
    assert code == 0, said
    assert not (marks / "finished").exists(), said  # (stopped, not paid to the end)
    assert re.search(
        rf"pass 2/3 'Pass 2': planner stopped: the lease of its planning task {taken.id} was "
        r"lost \(.+\) \(this run: cost unknown\); this run takes the plan another run stores",
        said,
    ), said
    assert "Traceback" not in said
