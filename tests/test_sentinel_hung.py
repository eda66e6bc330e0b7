"""A sentinel of the URL that hangs (SIGSTOP: it accepts connections and never answers) costs
a process one socket timeout, not one per client it makes: a lookup asks a sentinel that did
not answer lately last, and the doctor's view of the deployment names it without waiting for
it again (the doctor took three timeouts, 15 s by default, where `swarm status` took one)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import Swarm

from ._sentinel import SERVICE, LocalSentinel, start_sentinel
from ._servers import ServerFactory

pytestmark = pytest.mark.slow

TIMEOUT_S = 3  # each ask of the hung sentinel waits this long


@pytest.fixture
def hung_first(servers: ServerFactory) -> Iterator[tuple[LocalSentinel, str]]:
    setup = start_sentinel(servers, sentinels=2)
    hung, good = setup.sentinels
    os.kill(hung.proc.pid, signal.SIGSTOP)
    url = (
        f"redis+sentinel://127.0.0.1:{hung.port},127.0.0.1:{good.port}/{SERVICE}"
        f"?socket_timeout={TIMEOUT_S}&connect_timeout={TIMEOUT_S}"
    )
    try:
        yield setup, url
    finally:
        os.kill(hung.proc.pid, signal.SIGCONT)
        for server in [*setup.sentinels, *setup.data_nodes()]:
            server.stop()


def test_a_second_client_asks_the_answering_sentinel_first(
    hung_first: tuple[LocalSentinel, str],
) -> None:
    _, url = hung_first
    started = time.monotonic()
    with Swarm(url, swarm="hung") as first:
        first.ping()
    assert time.monotonic() - started >= TIMEOUT_S  # (it met the hung one first)
    started = time.monotonic()
    with Swarm(url, swarm="hung") as second:
        second.ping()
    assert time.monotonic() - started < TIMEOUT_S / 2


def test_the_doctor_waits_for_the_hung_sentinel_once(
    hung_first: tuple[LocalSentinel, str], tmp_path: Path
) -> None:
    setup, url = hung_first
    hung = setup.sentinels[0]
    env = {**os.environ, "SWARM_HOME": str(tmp_path)}
    env.pop("SWARM_URL", None)
    swarm = str(Path(sys.executable).with_name("swarm"))
    started = time.monotonic()
    done = subprocess.run(
        [swarm, "--url", url, "--swarm", "hung", "doctor", "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    took = time.monotonic() - started
    report = json.loads(done.stdout)
    said = " ".join(report["warnings"])
    assert f"sentinel 127.0.0.1:{hung.port} of the URL does not answer" in said, said
    assert report["sentinel"]["answering"] == 1, report["sentinel"]
    # One timeout and the doctor's own work (three timeouts before: 9 s and more).
    assert took < 2 * TIMEOUT_S + 1.5, f"the doctor took {took:.1f} s"


def test_a_refused_password_is_an_answer_not_silence() -> None:
    """A sentinel that refuses the password answered: it is not asked last nor named silent."""
    import redis

    from redis_swarm._sentinel import note_unanswered, unanswered_lately

    class _One:
        connection_pool = type("P", (), {"connection_kwargs": {"host": "h", "port": 1}})()

    note_unanswered(_One(), redis.AuthenticationError("invalid password"))
    assert unanswered_lately(_One()) is None
    note_unanswered(_One(), redis.TimeoutError("Timeout reading from h:1"))
    assert unanswered_lately(_One()) is not None
