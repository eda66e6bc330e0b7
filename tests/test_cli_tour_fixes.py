"""What a read-only tour of the CLI found: a doctor that could not diagnose a server that is
down (and pointed at itself), an ask timeout that blamed an answerer no longer holding the
question, misspelt passes and queues that found nothing without a word, a SWARM_TASK_ID left
over from a `swarm run` shell said as a bad id, a swarm home that cannot be made said as a raw
OS error, and bad options that exited 1 or 2 depending on how they were given."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from redis_swarm import Swarm, TaskStatus, Timeout
from redis_swarm._env import DOCTOR_TELLS_MORE as DOCTOR
from redis_swarm._keys import ask_queue

from ._cli import Cli, swarm_bin

# --- 1. the doctor of a server it cannot reach


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:1", "unix://{tmp}/no-such.sock", "redis+cluster://127.0.0.1:1"]
)
def test_the_doctor_reports_a_server_it_cannot_reach_without_naming_itself(
    url: str, tmp_path: Path
) -> None:
    cli = Cli(url.format(tmp=tmp_path))
    out = cli("doctor", expect=1)
    assert DOCTOR not in out.stdout + out.stderr, out
    assert "cannot reach" in out.stderr and "False" in out.stdout.split("ok", 1)[1], out
    report = cli("doctor", "--json", expect=1).json()
    assert report["ok"] is False and report["kind"] in ("standalone", "unix", "cluster")
    assert "cannot reach" in report["warnings"][0] and DOCTOR not in report["warnings"][0]


def test_other_commands_still_point_at_the_doctor() -> None:
    out = Cli("redis://127.0.0.1:1")("status", expect=1)
    assert DOCTOR in out.stderr


# --- 3. an ask timeout after its question was given back


def test_a_timeout_after_the_question_was_released_does_not_blame_its_old_answerer(
    redis_url: str,
) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        swarm.publish_context("lib", "hello\n", source="x.md")

        def claim_then_release() -> None:  # as a `swarm serve` that shuts down does
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                task = swarm.claim(ask_queue("lib"), worker="serve-lib-1")
                if task is not None:
                    swarm.release(task.id, task.token)
                    return
                time.sleep(0.02)

        answerer = threading.Thread(target=claim_then_release)
        answerer.start()
        with pytest.raises(Timeout) as raised:
            swarm.ask("lib", "who did it?", timeout_s=1.5)
        answerer.join()
    message = str(raised.value)
    assert raised.value.claimed is False, message  # nobody held it when the wait ended
    assert "claimed it (attempt" not in message and "given back unanswered" in message
    assert "is anyone serving queue 'ask.lib'" in message


def test_a_timeout_while_an_answerer_holds_the_question_names_it(redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        swarm.publish_context("lib", "hello\n", source="x.md")

        def claim_and_keep() -> None:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if swarm.claim(ask_queue("lib"), worker="serve-lib-1") is not None:
                    return
                time.sleep(0.02)

        answerer = threading.Thread(target=claim_and_keep)
        answerer.start()
        with pytest.raises(Timeout) as raised:
            swarm.ask("lib", "who did it?", timeout_s=1.5)
        answerer.join()
        assert swarm.get_task(raised.value.task_id or "").status is not TaskStatus.CLAIMED
    assert raised.value.claimed is True
    assert "answerer serve-lib-1 claimed it (attempt 1) but did not answer" in str(raised.value)


# --- 4. misspelt names


def test_findings_of_a_pass_never_posted_to_says_so_and_names_the_passes(cli: Cli) -> None:
    cli("task", "post", "research", "x", "--pass", "Pass 1")
    out = cli("findings", "--pass", "Pass one")
    assert "no task has ever been posted to pass" in out.stderr and '"Pass 1"' in out.stderr
    notes = cli.json("findings", "--pass", "Pass one")["notes"]
    assert len(notes) == 1 and '"Pass 1"' in notes[0]
    known = cli("findings", "--pass", "Pass 1")  # posted to, no finding yet: nothing to note
    assert known.stderr == ""
    assert "notes" not in cli.json("findings", "--pass", "Pass 1")


def test_a_claim_from_a_queue_never_posted_to_says_so(cli: Cli) -> None:
    cli("task", "post", "research", "x")
    out = cli("task", "claim", "reserch", "--worker", "w1", expect=3)
    assert 'nothing to claim in reserch: no task was ever posted to queue "reserch"' in out.stderr
    assert "research" in out.stderr.split("reserch", 2)[-1]  # the queues there are
    cli("task", "claim", "research", "--worker", "w1")
    empty = cli("task", "claim", "research", "--worker", "w1", expect=3)
    assert empty.stderr.strip() == "nothing to claim in research"  # known, just empty
    waited = cli("task", "claim", "reserch", "--worker", "w1", "--wait", "0.2", expect=3)
    assert waited.stderr.startswith('note: no task was ever posted to queue "reserch"')
    assert "waiting all the same" in waited.stderr


# --- 5. SWARM_TASK_ID left over


def test_a_task_id_from_the_environment_that_does_not_exist_says_where_it_came_from(
    cli: Cli,
) -> None:
    out = cli("ask", "shard-1", "q", env={"SWARM_TASK_ID": "t-bogus"}, expect=1)
    assert "SWARM_TASK_ID" in out.stderr and "unset SWARM_TASK_ID" in out.stderr, out
    given = cli("ask", "shard-1", "q", "--task", "t-bogus", expect=1)
    assert "SWARM_TASK_ID" not in given.stderr and "t-bogus does not exist" in given.stderr


# --- 7. a swarm home that cannot be made


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux's /proc")
def test_a_home_that_cannot_be_made_is_said_with_what_to_do() -> None:
    home = "/proc/swarm-tour-home"  # no folder can be made in /proc: ENOENT, as the tour met
    out = Cli("embedded")("--home", home, "status", expect=1)
    assert f"cannot use the swarm home {home!r}" in out.stderr, out
    assert "[Errno" not in out.stderr and "--home" in out.stderr and "SWARM_HOME" in out.stderr
    nested = "/proc/swarm-tour-home/deeper"  # (its parent is what cannot be made)
    out = Cli("embedded")("--home", nested, "status", expect=1)
    assert f"cannot use the swarm home {nested!r}" in out.stderr and "[Errno" not in out.stderr


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux's /proc")
def test_a_default_home_that_cannot_be_made_says_it_is_the_default(tmp_path: Path) -> None:
    """The default home is under the user's home directory: a HOME that cannot hold it."""
    env = {k: v for k, v in os.environ.items() if k not in ("SWARM_HOME", "SWARM_URL")}
    env["HOME"] = "/proc/swarm-no-home"
    done = subprocess.run(
        [str(swarm_bin(tmp_path / "bin")), "--url", "embedded", "status"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1, done
    assert "the default: no --home or SWARM_HOME" in done.stderr and "[Errno" not in done.stderr


# --- 8. bad options exit 2, their bound said once


def test_bad_options_exit_2_however_given(cli: Cli) -> None:
    assert "swarm name is empty" in cli("--swarm", "", "status", expect=2).stderr
    for lease in ("0", "99999999999"):
        out = cli("task", "post", "q", "x", "--lease", lease, expect=2)
        assert "seconds from 0.001 to 2,592,000" in out.stderr, out
    assert cli.json("task", "post", "q", "x", "--lease", "2592000")["lease_s"] == 2592000
    for priority in ("10001", "-100000000000000000000"):
        out = cli("task", "post", "q", "x", "--priority", priority, expect=2)
        assert "-10000<=x<=10000" in out.stderr, out
    assert cli.json("task", "post", "q", "x", "--priority", "-10000")["priority"] == -10000
