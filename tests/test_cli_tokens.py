"""The lease tokens ``swarm task claim`` keeps on this machine for the session's hooks
(``SWARM_HOME/leases/SWARM/WORKER.json``, docs/live.md) are forgotten once the task is no
longer held: reported, failed, released or cancelled through the CLI, or settled another way
(an abandoned lease, dead) by the next claim; the file stays private (0600, its folders 0700).
And the suite keeps them out of the developer's home."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from redis_swarm import Settings, Swarm, TaskStatus
from redis_swarm import _lease_tokens as tokens
from redis_swarm._config import DEFAULT_HOME

from ._cli import Cli

WORKER = "w-tokens"


def _home() -> Path:
    return Path(os.environ["SWARM_HOME"])


def _file() -> Path:
    return _home() / "leases" / "test" / f"{WORKER}.json"


def _held(cli: Cli, worker: str = WORKER) -> dict[str, str]:
    return tokens.known(Settings.from_url(cli.url, swarm="test", home=_home()), worker)


def _claim(cli: Cli, *args: str) -> dict[str, str]:
    task: dict[str, str] = cli.json("task", "claim", "q", "--worker", WORKER, *args)
    assert _held(cli) == {task["id"]: task["token"]}
    return task


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_suite_keeps_tokens_out_of_the_real_home(cli: Cli) -> None:
    home = _home()  # set for every test by conftest (KeyError without it)
    assert home.resolve() != DEFAULT_HOME.resolve()
    assert not home.resolve().is_relative_to(DEFAULT_HOME.resolve())
    cli("task", "post", "q", "x")
    _claim(cli)
    assert _file().exists()


@pytest.mark.parametrize(
    "settle",
    [
        ["task", "report", "{id}", "--token", "{token}", "--summary", "done"],
        ["task", "fail", "{id}", "--token", "{token}", "--error", "no", "--no-retry"],  # dead
        ["task", "fail", "{id}", "--token", "{token}", "--error", "again"],  # retried
        ["task", "release", "{id}", "--token", "{token}"],
        ["task", "cancel", "{id}"],
    ],
    ids=["report", "fail-to-dead", "fail-retried", "release", "cancel"],
)
def test_a_task_settled_through_the_cli_forgets_its_token(cli: Cli, settle: list[str]) -> None:
    cli("task", "post", "q", "x")
    task = _claim(cli)
    cli(*(a.format(**task) for a in settle))
    assert _held(cli) == {} and not _file().exists()


def test_a_token_refused_as_expired_is_kept_for_a_late_report(cli: Cli) -> None:
    cli("task", "post", "q", "x")
    first = _claim(cli, "--lease", "1")
    time.sleep(1.2)  # the lease expires; the next claim takes the task over (attempt 2)
    other = cli.json("task", "claim", "q", "--worker", "w-other")
    assert other["id"] == first["id"]
    out = cli("task", "fail", first["id"], "--token", first["token"], "--error", "x", expect=1)
    assert "attempt 2" in out.stderr
    # the stale token is kept: a report with it is still taken, as the refusal says (kept
    # while the task is open: the worker's next claim keeps it; once the task is settled,
    # the next claim drops it); the newer one is kept too
    assert _held(cli) == {first["id"]: first["token"]}
    assert _held(cli, "w-other") == {other["id"]: other["token"]}
    cli("task", "claim", "q", "--worker", WORKER, expect=3)
    assert _held(cli) == {first["id"]: first["token"]}
    cli("task", "report", other["id"], "--token", other["token"], "--summary", "done")
    assert _held(cli) == {first["id"]: first["token"]} and _held(cli, "w-other") == {}
    cli("task", "claim", "q", "--worker", WORKER, expect=3)
    assert _held(cli) == {}


def test_an_abandoned_lease_is_forgotten_by_the_next_claim(cli: Cli) -> None:
    cli("task", "post", "q", "x", "--max-abandons", "1")
    task = _claim(cli, "--lease", "1")
    time.sleep(1.2)
    cli("task", "claim", "q", "--worker", WORKER, expect=3)  # reclaims it: dead
    with Swarm(cli.url, swarm="test") as swarm:
        assert swarm.get_task(task["id"]).status is TaskStatus.DEAD
    assert _held(cli) == {} and not _file().exists()


def test_a_token_still_held_is_kept_by_the_next_claim(cli: Cli) -> None:
    cli("task", "post", "q", "one")
    cli("task", "post", "q", "two")
    first = _claim(cli)
    second = cli.json("task", "claim", "q", "--worker", WORKER)
    assert _held(cli) == {first["id"]: first["token"], second["id"]: second["token"]}


def test_the_tokens_stay_private(cli: Cli) -> None:
    leases = _home() / "leases"
    leases.mkdir(parents=True, mode=0o755)
    leases.chmod(0o755)  # as an earlier version left it
    cli("task", "post", "q", "x")
    _claim(cli)
    assert _mode(_file()) == 0o600
    assert _mode(leases) == 0o700 and _mode(_file().parent) == 0o700
