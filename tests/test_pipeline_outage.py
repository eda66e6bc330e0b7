"""``swarm pipeline run``'s own agents through a write outage longer than the client's own
retries, on a real server of the test's own: the synthesizer (or the planner) makes the
outage itself as it answers, pausing the server (SIGSTOP, SIGCONT some seconds later) or
filling it (maxmemory 1, noeviction: every write refused, lifted some seconds later). What
the run paid for is kept: the synthesis (or the task list) waits for Redis, as the worker
pool's reports do, instead of ending the run with its answer thrown away."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import Settings, Swarm
from redis_swarm._pipeline import load_plan, synthesis_id
from redis_swarm._pipeline.names import planning_task_id

from ._cli import Cli
from ._servers import RedisServer, ServerFactory
from .test_pipeline_run import SYNTH, plan_text

PY = sys.executable
# Short client timeouts, so that an outage outlasts the client's retries in a few seconds.
QUERY = "?socket_timeout=2&connect_timeout=1&retries=1"
# How long each outage lasts, shorter than a lease. A paused server: longer than the client's
# own retries with the URL above (``longest_request_s``, 3.1 s; a write sent to it times out
# after 2 s and is not sent again). A full one answers at once, with a refusal the client does
# not retry: the outage needs only outlast the agent's exit and the write that follows, and
# ends before the third try of that write (3 s after the first: ``_outage.ride_out``).
OUTAGE_S = {"pause": 4.5, "full": 2.5}

# Makes the outage (OUTAGE=pause|full) once (its marker file), then lets a detached waker end
# it OUTAGE_S after it began (however long the waker takes to start), and returns at once:
# the agent's answer is printed right after.
OUTAGE = r"""
import os, signal, subprocess, sys, time

def outage(marker):
    if os.path.exists(marker):
        return
    open(marker, "w").close()
    pid, port, how = int(os.environ["REDIS_PID"]), os.environ["REDIS_PORT"], os.environ["OUTAGE"]
    if how == "pause":
        os.kill(pid, signal.SIGSTOP)
        end = "os.kill(%d, signal.SIGCONT)" % pid
    else:
        import redis
        redis.Redis(port=int(port)).config_set("maxmemory", "1")
        end = "redis.Redis(port=%s).config_set('maxmemory', '0')" % port
    until = time.time() + float(os.environ["OUTAGE_S"])
    waker = "import os, signal, time, redis; time.sleep(max(0.0, %r - time.time())); %s" % (
        until, end)
    # Neither marked as the agent's (the pipeline kills what its agent left running) nor
    # holding its output open (the pipeline reads it to the end).
    env = {k: v for k, v in os.environ.items() if k != "SWARM_RUN_ID"}
    subprocess.Popen([sys.executable, "-c", waker], start_new_session=True, env=env,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
"""

# The synthesizer of test_pipeline_run, counting its runs, making the outage on its first.
SYNTH_IN_OUTAGE = (
    OUTAGE
    + r"""
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "synth-runs.log"), "a") as log:
    log.write("run\n")
outage(os.path.join(here, "outage-made"))
"""
    + SYNTH
)

# A planner answering one task, counting its runs, making the outage on its first.
PLANNER_IN_OUTAGE = (
    OUTAGE
    + r"""
import json
sys.stdin.read()
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "planner-runs.log"), "a") as log:
    log.write("run\n")
outage(os.path.join(here, "outage-made"))
print(json.dumps({"type": "result", "is_error": False, "total_cost_usd": 0.02,
                  "result": json.dumps(["Dig into the timeouts"])}))
"""
)


@pytest.fixture
def server(servers: ServerFactory) -> Iterator[RedisServer]:
    """A server of the test's own: it is paused or filled."""
    started = servers.start()
    yield started
    if started.proc.poll() is None:
        os.kill(started.proc.pid, signal.SIGCONT)
        client = started.client()
        try:
            client.config_set("maxmemory", "0")
        finally:
            client.close()
    started.stop()


def _outage_env(server: RedisServer, how: str) -> dict[str, str]:
    assert server.port is not None
    if how == "pause":
        assert OUTAGE_S[how] > Settings.from_url(server.url + QUERY).longest_request_s
    return {
        "OUTAGE": how,
        "OUTAGE_S": str(OUTAGE_S[how]),
        "REDIS_PID": str(server.proc.pid),
        "REDIS_PORT": str(server.port),
    }


def _runs(tmp_path: Path, name: str) -> int:
    return len((tmp_path / name).read_text().splitlines())


@pytest.mark.slow
@pytest.mark.parametrize("how", ["pause", "full"])
def test_a_finished_synthesis_waits_for_redis(
    server: RedisServer, tmp_path: Path, how: str
) -> None:
    """Pass 1's synthesizer answers while the server is paused (or full) for seconds: its
    synthesis waits for Redis, one progress line saying so, and is stored then; the run goes
    on to pass 2 and ends done, each pass's synthesizer run once (before: the run stopped
    with a ConnectionFailed, the paid synthesis thrown away)."""
    path = plan_text(tmp_path)
    (tmp_path / "synth.py").write_text(SYNTH_IN_OUTAGE)
    cli = Cli(server.url + QUERY)
    out = cli("pipeline", "run", str(path), env=_outage_env(server, how), expect=None)
    assert out.code == 0, out
    plan = load_plan(path)
    waiting = [line for line in out.stderr.splitlines() if "waiting for Redis to" in line]
    sid = synthesis_id(plan, 0)
    assert len(waiting) == 1, out.stderr
    said = f"pass 1/2 'Pass 1': waiting for Redis to take the synthesis {sid}: "
    assert waiting[0].startswith(said)
    assert waiting[0].endswith("; retrying")
    if how == "full":
        assert "out of memory" in waiting[0]
    assert _runs(tmp_path, "synth-runs.log") == 2  # one per pass: none thrown away, none rerun
    with Swarm(server.url, swarm="test") as swarm:
        first = swarm.get_synthesis(sid)
        assert first.sources and first.usage is not None and first.usage.cost_usd == 0.05
        assert swarm.get_synthesis(synthesis_id(plan, 1)).sources


PLANNED = """
name = "planned"
question = "Where are timeouts inconsistent?"

[workers]
exec = "{py} {tmp}/worker.py"
lease_s = 30

[planner]
exec = "{py} {tmp}/planner.py"

[synthesizer]
exec = "{py} {tmp}/synth.py"

[[contexts]]
owner = "notes"
paths = ["notes.md"]

[[passes]]
name = "Pass 1"
context = "notes"
plan = "Dig deeper"
"""


@pytest.mark.slow
def test_a_finished_task_list_waits_for_redis(server: RedisServer, tmp_path: Path) -> None:
    """The planner answers while the server is full for seconds: its task list (the planning
    task's finding) waits for Redis, its planning task's lease renewed meanwhile, and is
    stored then; the pass runs the planned task, the planner run once."""
    plan_text(tmp_path)  # the worker, the synthesizer and the notes
    (tmp_path / "planner.py").write_text(PLANNER_IN_OUTAGE)
    path = tmp_path / "planned.toml"
    path.write_text(PLANNED.format(py=PY, tmp=tmp_path))
    cli = Cli(server.url + QUERY)
    out = cli("pipeline", "run", str(path), env=_outage_env(server, "full"), expect=None)
    assert out.code == 0, out
    plan = load_plan(path)
    task_id = planning_task_id(plan, 0)
    waiting = [line for line in out.stderr.splitlines() if "waiting for Redis to" in line]
    assert len(waiting) == 1 and "out of memory" in waiting[0], out.stderr
    assert f"waiting for Redis to take the task list of {task_id}" in waiting[0]
    assert _runs(tmp_path, "planner-runs.log") == 1
    with Swarm(server.url, swarm="test") as swarm:
        planning = swarm.get_task(task_id)
        assert planning.status == "completed" and planning.attempts == 1
        finding = swarm.get_finding(planning.finding_id or "")
        assert [t["description"] for t in finding.extra["tasks"]] == ["Dig into the timeouts"]
        assert swarm.get_synthesis(synthesis_id(plan, 0)).sources
