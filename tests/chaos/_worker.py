"""A chaos worker: a small loop that claims with a short lease, works, maybe renews, and
reports a finding, until its pass is settled. It is SIGKILLed at random by the test.

Each task's ``data["kind"]`` says how to handle it:

- ``normal``: a few ms of work, then report;
- ``long``: works longer than its lease, renewing it on the way (the lease must hold);
- ``slow``: on its first attempt, outlives its lease without renewing, so that another worker
  reclaims and completes it first: its own report then comes back superseded;
- ``poison``: fails without retry (dead-lettered with that reason);
- ``flaky``: fails with retry on its first attempt (back after a backoff), then is done.

Every outcome acknowledged by the server is appended to the worker's log as one line (one
``os.write`` of an O_APPEND file: a SIGKILL never leaves half a line), so the test can compare
what the workers were told with what the swarm holds.
"""

from __future__ import annotations

import os
import random
import time

from redis_swarm import AlreadyCompleted, LeaseLost, Swarm, SwarmError, Task

__all__ = ["run"]


def _open_log(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def _log(fd: int, *fields: object) -> None:
    os.write(fd, (" ".join(str(f) for f in fields) + "\n").encode())


def _settled(swarm: Swarm, pass_name: str) -> bool:
    stats = swarm.pass_stats(pass_name)
    return stats["pending"] + stats["delayed"] + stats["claimed"] == 0


def _work(swarm: Swarm, task: Task, worker: str, lease_s: float, rng: random.Random,
          fd: int) -> None:  # fmt: skip
    """Handle one claimed task according to its kind; log what the server acknowledged."""
    kind = task.data["kind"] if isinstance(task.data, dict) else "normal"
    try:
        if kind == "poison":
            swarm.fail(task.id, task.token, "poison pill", retry=False)
            _log(fd, "failed", task.id, task.attempts)
            return
        if kind == "flaky" and task.attempts == 1:
            swarm.fail(task.id, task.token, "flaky on its first attempt", retry=True)
            _log(fd, "failed", task.id, task.attempts)
            return
        if kind == "slow" and task.attempts == 1:
            time.sleep(lease_s * 1.6)
        elif kind == "long":
            for _ in range(4):
                time.sleep(lease_s * 0.35)
                swarm.renew(task.id, task.token)
                _log(fd, "renewed", task.id, task.attempts)
        else:
            time.sleep(rng.uniform(0.0, 0.02))
        finding = swarm.report(
            task.id,
            task.token,
            {"summary": f"{kind} task {task.data['i']} done", "confidence": 0.5},
            worker=worker,
        )
        _log(fd, "completed", task.id, task.attempts, finding.id)
    except AlreadyCompleted as exc:
        _log(fd, "superseded", task.id, task.attempts, exc.finding_id)
    except LeaseLost:
        _log(fd, "leaselost", task.id, task.attempts)


def run(url: str, swarm_name: str, queue: str, pass_name: str, worker: str, log_path: str,
        lease_s: float, seed: int) -> None:  # fmt: skip
    """Claim and work until the pass is settled."""
    rng = random.Random(seed)
    fd = _open_log(log_path)
    _log(fd, "start", worker, os.getpid())
    with Swarm(url, swarm=swarm_name) as swarm:
        while True:
            try:
                task = swarm.claim(queue, worker=worker, lease_s=lease_s, wait_s=0.5)
                if task is None:
                    if _settled(swarm, pass_name):
                        break
                    continue
                _log(fd, "claim", task.id, task.attempts)
                _work(swarm, task, worker, lease_s, rng, fd)
            except SwarmError as exc:  # anything else is a failure of the test
                _log(fd, "error", type(exc).__name__, str(exc).replace("\n", " "))
                raise
    _log(fd, "exit", worker)
    os.close(fd)
