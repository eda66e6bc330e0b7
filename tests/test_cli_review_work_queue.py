"""Fixes from an adversarial review of the work-queue CLI: a Ctrl-C just after a claim (or a
report's next claim) returned said "nothing was claimed", exit 1, of a lease it had printed
and kept; a report refused for a finding id used on another task forgot the token of a task
still claimed; with --json, usage errors (exit 2) were click's plain text; a call with no
token on a settled task sent the user to look for one; `swarm --json doctor` had its
`cluster` and `min_replicas_to_write` keys on some servers only."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from redis_swarm import Settings, Swarm, TaskStatus
from redis_swarm import _lease_tokens as tokens
from redis_swarm.cli import _task_work

from ._cli import Cli, subprocess_env, swarm_bin
from ._waiting import until

WORKER = "w-review"


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as s:
        yield s


def _kept(swarm: Swarm, task_id: str) -> str | None:
    """The token of ``task_id`` the CLI kept for WORKER, in the test's SWARM_HOME."""
    home = Path(os.environ["SWARM_HOME"])
    settings = Settings.from_url(swarm.settings.url, swarm="test", home=home)
    return tokens.known(settings, WORKER).get(task_id)


# --- 1. a Ctrl-C once the claim returned: the claim is said whole, its token kept, exit 0


def _ctrl_c_then(step: Callable[..., Any]) -> Callable[..., Any]:
    """``step`` preceded by a Ctrl-C to this process (delivered as a terminal's is: a
    SIGINT, handled at the next instruction), as one landing right after the claim
    returned."""

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), signal.SIGINT)
        return step(*args, **kwargs)

    return interrupted


def test_a_ctrl_c_once_the_claim_returned_still_says_it_and_keeps_its_token(
    cli: Cli, swarm: Swarm, monkeypatch: pytest.MonkeyPatch
) -> None:
    posted = swarm.post_task("q", "d")
    monkeypatch.setattr(_task_work, "_prune_tokens", _ctrl_c_then(_task_work._prune_tokens))
    out = cli("task", "claim", "q", "--wait", "5", "--worker", WORKER, expect=None)
    assert out.code == 0, out
    assert f"claimed {posted.id} (token " in out.stdout
    assert "interrupted" not in out.stderr and "Aborted" not in out.stderr, out
    t = swarm.get_task(posted.id)
    assert t.status is TaskStatus.CLAIMED
    assert _kept(swarm, posted.id) is not None
    # (the command's handlers are put back: a Ctrl-C now is Python's again)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_ctrl_c_once_the_next_task_was_claimed_still_says_it(
    cli: Cli, swarm: Swarm, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = swarm.post_task("q-mine", "d")
    claimed = swarm.claim("q-mine", worker=WORKER)
    assert claimed is not None and claimed.token is not None
    following = swarm.post_task("q-next", "d")
    monkeypatch.setattr(_task_work, "_remember", _ctrl_c_then(_task_work._remember))
    out = cli(
        "--json", "task", "report", mine.id, "--summary", "s", "--worker", WORKER,
        "--token", claimed.token, "--claim-next", "q-next", "--wait", "5", expect=None,
    )  # fmt: skip
    assert out.code == 0, out
    assert json.loads(out.stdout)["next"]["id"] == following.id
    assert "interrupted" not in out.stderr, out
    assert _kept(swarm, following.id) is not None


def test_ctrl_c_while_the_claim_waits_still_says_nothing_was_claimed(
    swarm: Swarm, redis_url: str, tmp_path: Path
) -> None:
    env = subprocess_env(redis_url, "test", swarm_bin(tmp_path / "bin").parent)
    proc = subprocess.Popen(
        [sys.executable, "-m", "redis_swarm", "task", "claim", "q-empty", "--wait", "20",
         "--worker", WORKER],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    with contextlib.closing(redis.Redis.from_url(redis_url)) as server:
        until(lambda: server.info("clients")["blocked_clients"] >= 1, "the claim waiting")
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1, stderr
    said = stderr.decode()
    assert "\nerror: interrupted: the claim stopped waiting and nothing was " in said, said
    assert "Aborted" not in said and stdout == b""


# --- 2. a finding id used elsewhere keeps the token of a task still claimed


def test_a_finding_id_conflict_keeps_the_token_of_a_claimed_task(cli: Cli, swarm: Swarm) -> None:
    for name in ("a", "b"):
        swarm.post_task("q", name)
    first = cli.json("task", "claim", "q", "--worker", WORKER)["id"]
    second = cli.json("task", "claim", "q", "--worker", WORKER)["id"]
    as_worker = {"SWARM_AGENT": WORKER}
    cli("task", "report", first, "--summary", "s", "--finding-id", "f-used", env=as_worker)
    out = cli("task", "report", second, "--summary", "other", "--finding-id", "f-used",
              env=as_worker, expect=1)  # fmt: skip
    assert "is already used by a report on task" in out.stderr, out
    assert _kept(swarm, second) is not None
    cli("task", "report", second, "--summary", "other", env=as_worker)  # (no --token needed)
    assert swarm.get_task(second).status is TaskStatus.COMPLETED
    assert _kept(swarm, second) is None


# --- 3. --json: usage errors as JSON too


@pytest.mark.parametrize(
    "args",
    [
        ("--json", "task", "post", "q", "x", "--priority", "99999"),
        ("task", "post", "q", "x", "--priority", "99999", "--json"),
        ("--json", "task", "post", "q", "x", "--data", "["),
        ("--json", "findings", "--limit", "0"),
        ("--json", "task", "renew", "t-01m97c9y0g386gvs8n"),
        ("--json", "--bogus", "task"),
    ],
)
def test_a_usage_error_with_json_is_json(cli: Cli, swarm: Swarm, args: tuple[str, ...]) -> None:
    if "renew" in args:  # (an open task, no token kept: "no --token given")
        args = (*args[:-1], swarm.post_task("q", "d").id)
    out = cli(*args, expect=2)
    said = json.loads(out.stderr)
    assert said["error"] == "UsageError" and said["message"], out
    assert out.stdout == ""


def test_a_usage_error_without_json_is_click_s(cli: Cli) -> None:
    out = cli("task", "post", "q", "x", "--priority", "99999", expect=2)
    assert out.stderr.startswith("Usage: swarm task post"), out


# --- 4. no token kept for a settled or gone task: said so, exit 1


@pytest.mark.parametrize("command", [("renew", "--lease", "60"), ("report", "--summary", "x")])
def test_no_token_for_a_completed_task_says_it_is_completed(
    cli: Cli, swarm: Swarm, command: tuple[str, ...]
) -> None:
    posted = swarm.post_task("q", "d")
    claimed = swarm.claim("q", worker=WORKER)
    assert claimed is not None and claimed.token is not None
    swarm.report(posted.id, claimed.token, {"summary": "done"})
    out = cli("task", command[0], posted.id, *command[1:], env={"SWARM_AGENT": WORKER},
              expect=1)  # fmt: skip
    assert out.stderr == (
        f"error: task {posted.id} is completed, held by no lease: stop working on it\n"
    ), out
    assert "no --token given" not in out.stderr


def test_no_token_for_a_task_gone_says_it_does_not_exist(cli: Cli) -> None:
    out = cli("--json", "task", "release", "t-01m97c9y0g386gvs8n", expect=1)
    said = json.loads(out.stderr)
    assert said["error"] == "NotFound" and "does not exist" in said["message"], out


# --- 5. doctor's JSON: one shape on every server


def test_doctor_json_always_holds_the_topology_and_guard_rows(cli: Cli) -> None:
    report = cli.json("doctor", "--quick")
    for key in ("cluster", "sentinel", "min_replicas_to_write"):
        assert key in report and report[key] is None, report
    human = cli("doctor", "--quick").stdout
    assert "cluster" not in human and "min_replicas_to_write" not in human, human
