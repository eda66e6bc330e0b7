"""The guardian: a runner killed with SIGKILL takes its agents with it (real processes)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from redis_swarm import Swarm
from redis_swarm._runner import guardian
from redis_swarm._runner.reaper import MARK

from ._cli import SRC, alive, subprocess_env, swarm_bin

PY = sys.executable
GUARDIAN = [PY, "-I", "-S", guardian.__file__]
HAS_PROC = os.path.isdir("/proc")


def wait_for(what: str, check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g}s"
        time.sleep(0.02)


def read_pids(path: Path, n: int) -> list[int]:
    """The ``n`` pids written one a line in ``path``, once all are there."""
    lines: list[str] = []

    def written() -> bool:
        nonlocal lines
        lines = path.read_text().split() if path.exists() else []
        return len(lines) >= n

    wait_for(f"{n} pids in {path.name}", written, 20)
    return [int(pid) for pid in lines[:n]]


@pytest.fixture
def groups(tmp_path: Path) -> Iterator[Callable[..., list[int]]]:
    """Start a process group: a shell (its leader) and a child of it; [leader, child]."""
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, *, trap: bool = False, env: dict[str, str] | None = None) -> list[int]:
        pids = tmp_path / f"{name}.pids"
        script = ("trap '' TERM; " if trap else "") + (
            f"sleep 300 & echo $$ >> {pids}; echo $! >> {pids}; wait"
        )
        started.append(
            subprocess.Popen(
                ["/bin/sh", "-c", script], start_new_session=True, env={**os.environ, **(env or {})}
            )
        )
        return read_pids(pids, 2)

    yield start
    for proc in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def start_guardian() -> tuple[subprocess.Popen[bytes], int]:
    read, write = os.pipe()
    proc = subprocess.Popen(GUARDIAN, stdin=read, stdout=subprocess.DEVNULL, start_new_session=True)
    os.close(read)
    return proc, write


# --- the guardian process


def test_at_the_end_of_the_pipe_it_kills_the_groups_it_knows(
    groups: Callable[..., list[int]],
) -> None:
    """EOF without bye: the runner died. Known groups get SIGTERM (then SIGKILL, for one
    that ignores it); a forgotten group, and one ungrouped (its number may be reused), are
    not signalled."""
    term = groups("term")
    stubborn = groups("stubborn", trap=True)
    forgotten = groups("forgotten")
    ungrouped = groups("ungrouped")
    proc, pipe = start_guardian()
    os.write(
        pipe,
        f"mark a\ngroup a {term[0]}\nmark b\ngroup b {stubborn[0]}\nnot a line\n"
        f"mark c\ngroup c {forgotten[0]}\nungroup c\nforget c\n"
        f"mark d\ngroup d {ungrouped[0]}\nungroup d\n".encode(),
    )
    started = time.monotonic()
    os.close(pipe)
    assert proc.wait(timeout=guardian.GRACE_S + 10) == 0
    assert time.monotonic() - started >= guardian.GRACE_S  # it gave the stubborn one its grace
    wait_for("the agents killed", lambda: not any(map(alive, term + stubborn)))
    assert all(map(alive, forgotten + ungrouped))


@pytest.mark.skipif(not HAS_PROC, reason="reads the signals it ignores in /proc")
def test_a_terminal_s_signals_do_not_stop_it(groups: Callable[..., list[int]]) -> None:
    """SIGINT and SIGHUP (Ctrl-C, a closed terminal) are for the runner: it handles them
    and kills its agents itself. The guardian must outlive them to see what follows."""
    agent = groups("agent")
    proc, pipe = start_guardian()
    os.write(pipe, f"mark a\ngroup a {agent[0]}\n".encode())

    def ignoring() -> bool:  # set up: SIGHUP (1) and SIGINT (2) in its ignored mask
        status = Path(f"/proc/{proc.pid}/status").read_text()
        mask = int(status.split("SigIgn:")[1].split()[0], 16)
        return mask & 0b11 == 0b11  # bit n-1 is signal n

    wait_for("the guardian set up", ignoring)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGHUP)
    os.close(pipe)
    assert proc.wait(timeout=10) == 0
    wait_for("the agent killed", lambda: not any(map(alive, agent)))


def test_bye_ends_it_without_killing(groups: Callable[..., list[int]]) -> None:
    agent = groups("agent")
    proc, pipe = start_guardian()
    os.write(pipe, f"mark a\ngroup a {agent[0]}\nbye\n".encode())
    assert proc.wait(timeout=10) == 0  # bye, not the end of the pipe, ended it
    os.close(pipe)
    assert all(map(alive, agent))


@pytest.mark.skipif(not HAS_PROC, reason="marks are found in /proc")
def test_a_marked_process_that_left_its_group_is_killed(
    groups: Callable[..., list[int]],
) -> None:
    """A mark told before its agent's group is known (the runner died while starting it),
    or one whose processes left the group (setsid): they are found by the mark."""
    escaped = groups("escaped", env={MARK: "m0123456789abcdef"})
    bystander = groups("bystander", env={MARK: "other"})
    proc, pipe = start_guardian()
    os.write(pipe, b"mark m0123456789abcdef\n")
    os.close(pipe)
    assert proc.wait(timeout=10) == 0
    wait_for("the marked processes killed", lambda: not any(map(alive, escaped)))
    assert all(map(alive, bystander))


# --- the runner's end, in a runner of its own

RUNNER = """
import os, signal, subprocess, sys, time
from redis_swarm._runner.guardian import GUARDIAN
out, how = sys.argv[1], sys.argv[2]
agent = subprocess.Popen(["/bin/sh", "-c", "sleep 300 & wait"], start_new_session=True)
GUARDIAN.mark("m1")
GUARDIAN.group("m1", agent.pid)
if how == "fork" and os.fork() == 0:  # a child forked from the runner, outliving it
    with open(os.path.join(out, "fork"), "w") as f:
        f.write(f"{os.getpid()}\\n")
    signal.pause()
while how == "fork" and not os.path.exists(os.path.join(out, "fork")):
    time.sleep(0.01)
with open(os.path.join(out, "agent"), "w") as f:
    f.write(f"{agent.pid}\\n")
if how == "exit":  # exits in order, but with an agent still running: no bye
    sys.exit(0)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("how", ["kill", "fork", "exit"])
def test_a_dead_runner_s_agent_is_killed(tmp_path: Path, how: str) -> None:
    """Killed, killed with a forked child still alive (its copy of the pipe must not keep
    the guardian waiting), or exiting while an agent still runs: the agent is killed."""
    env = {**os.environ, "PYTHONPATH": SRC}
    runner = subprocess.Popen([PY, "-c", RUNNER, str(tmp_path), how], env=env)
    (agent,) = read_pids(tmp_path / "agent", 1)
    runner.wait(timeout=20)
    forked = read_pids(tmp_path / "fork", 1) if how == "fork" else []
    try:
        wait_for("the agent killed", lambda: not alive(agent))
        assert all(map(alive, forked))  # still holding what the runner held
    finally:
        for pid in forked:
            os.kill(pid, signal.SIGKILL)


def test_a_guardian_killed_is_replaced_and_told_everything(
    groups: Callable[..., list[int]],
) -> None:
    agent = groups("agent")
    ended = groups("ended")
    guard = guardian.Guardian()
    guard.mark("a")
    guard.group("a", agent[0])
    guard.mark("b")
    guard.group("b", ended[0])
    guard.ungroup("b")
    first = guard.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    wait_for("the first guardian dead", lambda: not alive(first))
    guard.mark("c")  # finds it dead: a new one, told of a and b
    assert guard.pid not in (None, first)
    guard.close()  # with agents left: no bye, so it kills them
    wait_for("the agent killed", lambda: not any(map(alive, agent)))
    assert all(map(alive, ended))


# --- swarm run


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def guardians_of(pid: int) -> list[int]:
    """The guardian processes ``pid`` started."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if int(stat[1]) == pid and b"guardian.py" in cmdline:
            found.append(int(entry.name))
    return found


# An agent that starts a child in its group and one that leaves it (setsid), writes the three
# pids, then hangs; or, given a file to wait for, answers once it exists.
AGENT = """
import os, subprocess, sys, time
sys.stdin.read()
pids, go = sys.argv[1], sys.argv[2]
child = subprocess.Popen(["sleep", "300"])
escaped = subprocess.Popen(["sleep", "301"], start_new_session=True)
with open(pids + ".tmp", "w") as f:
    f.write(f"{os.getpid()}\\n{child.pid}\\n{escaped.pid}\\n")
os.rename(pids + ".tmp", pids)
while not os.path.exists(go):
    time.sleep(0.02)
child.kill()
escaped.kill()
print('{"summary": "done"}')
"""


def start_run(redis_url: str, tmp_path: Path, *extra: str) -> subprocess.Popen[bytes]:
    script = tmp_path / "agent.py"
    script.write_text(textwrap.dedent(AGENT))
    cmd = f"{PY} {script} {tmp_path}/pids {tmp_path}/go"
    env = subprocess_env(redis_url, "test", swarm_bin(tmp_path / "bin").parent)
    return subprocess.Popen(
        [PY, "-m", "redis_swarm", "--json", "run", "--queue", "q", "--exec", cmd, *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


@pytest.mark.skipif(not HAS_PROC, reason="the guardian is found in /proc")
def test_a_sigkilled_run_takes_its_agents_with_it(
    swarm: Swarm, redis_url: str, tmp_path: Path
) -> None:
    """Before, the agent and what it started ran on after the runner's SIGKILL, spending,
    until they ended by themselves, while their task's lease expired and it ran again."""
    swarm.post_task("q", "hang")
    runner = start_run(redis_url, tmp_path, "--lease", "30")
    agent, child, escaped = read_pids(tmp_path / "pids", 3)
    (guard,) = guardians_of(runner.pid)
    runner.kill()
    runner.communicate(timeout=10)
    wait_for("the agents killed", lambda: not any(map(alive, (agent, child, escaped))))
    wait_for("the guardian gone", lambda: not alive(guard))


@pytest.mark.skipif(not HAS_PROC, reason="the guardian is found in /proc")
def test_a_normal_run_leaves_no_guardian_behind(
    swarm: Swarm, redis_url: str, tmp_path: Path
) -> None:
    t = swarm.post_task("q", "answer")
    runner = start_run(redis_url, tmp_path, "--max-tasks", "1")
    try:
        read_pids(tmp_path / "pids", 3)
        (guard,) = guardians_of(runner.pid)

        def fds() -> dict[str, str]:
            fd_dir = f"/proc/{guard}/fd"
            return {fd: os.readlink(f"{fd_dir}/{fd}") for fd in os.listdir(fd_dir)}

        # It holds nothing of the runner's but its pipe: not the stdout a caller reads to its
        # end. (Looked at once it has started: Python holds its script open while it reads
        # it, a moment a loaded machine stretches.)
        wait_for("the guardian started", lambda: fds().keys() == {"0", "1", "2"}, 10)
        held = fds()
        assert held.keys() == {"0", "1", "2"} and held["0"].startswith("pipe:")
        assert held["1"] == held["2"] == "/dev/null"
        assert os.readlink(f"/proc/{guard}/cwd") == "/"
        assert os.getsid(guard) == guard  # a session of its own: no terminal's signals
        (tmp_path / "go").touch()
        _, stderr = runner.communicate(timeout=30)
    finally:  # (a run left going would write into the next test's swarm)
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 0, stderr
    assert swarm.get_task(t.id).status == "completed"
    assert not alive(guard)
