"""A pipeline run whose lease renewal fails tries again every second, not a third of a lease
later: once Redis answers again, a lease another run took meanwhile is known at once (a
review's catch: the run wrote on unleased for up to lease_s/3 after the outage, and nothing
fences its writes with the lease token)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from redis_swarm import Swarm
from redis_swarm._pipeline import load_plan
from redis_swarm._pipeline.lease import RunLease

from ._servers import ServerFactory
from .test_pipeline_run import plan_text


def test_a_failed_renewal_is_tried_again_within_a_second(
    servers: ServerFactory, tmp_path: Path
) -> None:
    server = servers.start()
    url = f"{server.url}?socket_timeout=0.5&connect_timeout=0.5&retries=0"
    plan = load_plan(plan_text(tmp_path, lease_s=15))  # renewed every 5 s
    said: list[str] = []
    whys: list[str] = []

    def wait_for(words: str, within_s: float) -> float:
        deadline = time.monotonic() + within_s
        while not any(words in line for line in said):
            assert not whys, (whys, said)
            assert time.monotonic() < deadline, (words, said)
            time.sleep(0.02)
        return time.monotonic()

    try:
        with Swarm(url, swarm="lease-retry") as swarm:
            lease = RunLease(swarm, plan, holder="run-a", say=said.append, on_lost=whys.append)
            assert lease.acquire()
            try:
                os.kill(server.proc.pid, signal.SIGSTOP)
                try:
                    wait_for("could not renew the lease of pipeline audit", within_s=10)
                finally:
                    os.kill(server.proc.pid, signal.SIGCONT)
                back = time.monotonic()
                # (the next try within a second of it, and a reply: a third of the lease, 5 s,
                # was the wait before)
                renewed = wait_for("renewed the lease of pipeline audit again", within_s=4)
                assert renewed - back < 3, said
            finally:
                lease.release()
    finally:
        server.stop()
    assert not whys, whys
