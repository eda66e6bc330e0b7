"""Lease tokens on a home this process may not write (a sandboxed agent): the work stands.

A report forgot its task's token under the tokens' lock, opened for writing whatever the
files held: on a read-only home that failed the report after its finding was stored, and the
agent, told it failed, reported again. A claim took the lease and then failed keeping its
token: the task stayed claimed, and its token was never shown, so nobody could report it.

Real ``swarm`` processes on a real server. A read-only home is a read-only bind mount in a
mount namespace of the command's own as root (chmod does not bind root), the home's files
made unwritable otherwise; where neither can be had, the tokens' lock made unopenable (a
folder where the file should be) stands in for it, as root too."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from redis_swarm import Swarm

from ._cli import run_swarm, subprocess_env, swarm_bin

SWARM = "test"
QUEUE = "q-tokens"
WORKER = "w-sandboxed"

Wrap = Callable[[Sequence[str]], list[str]]  # a command, as run on a read-only home


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def env(redis_url: str, tmp_path: Path, home: Path) -> dict[str, str]:
    return {**subprocess_env(redis_url, SWARM, swarm_bin(tmp_path / "bin").parent),
            "SWARM_HOME": str(home)}  # fmt: skip


def _swarm(
    args: Sequence[str], env: dict[str, str], wrap: Wrap | None = None
) -> tuple[int, str, str]:
    """``swarm ARGS`` as a real process (``wrap``: on the read-only home); its exit code,
    stdout and stderr."""
    if wrap is None:
        out = run_swarm(args, env)
        return out.returncode, out.stdout.decode(), out.stderr.decode()
    done = subprocess.run(
        wrap([sys.executable, "-m", "redis_swarm", *args]),
        env=env, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def _bind_read_only(home: Path) -> Wrap | None:
    """As root: the command in a mount namespace of its own where ``home`` is a read-only
    bind mount (nothing outside it sees the mount); None where that is not permitted."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None

    def wrap(command: Sequence[str]) -> list[str]:
        script = 'mount --bind -o ro "$0" "$0" && exec "$@"'
        return [unshare, "-m", "sh", "-c", script, str(home), *command]

    probe = subprocess.run(
        wrap([sys.executable, "-c", f"open({str(home / 'probe')!r}, 'w')"]),
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return wrap if "Read-only file system" in probe.stderr else None


@contextlib.contextmanager
def _read_only(home: Path) -> Iterator[Wrap]:
    """The commands run in the block see ``home`` read-only (its folders and files)."""
    if os.geteuid() == 0:
        wrap = _bind_read_only(home)
        if wrap is None:
            pytest.skip("as root, and no read-only bind mount here (unshare -m, mount)")
        yield wrap
        return
    paths = [home, *home.rglob("*")]
    for path in paths:
        path.chmod(path.stat().st_mode & ~0o222)
    try:
        yield list
    finally:
        for path in paths:
            path.chmod(path.stat().st_mode | 0o200)


def _claim(env: dict[str, str], wrap: Wrap | None = None) -> tuple[dict[str, str], str]:
    code, out, err = _swarm(["--json", "task", "claim", QUEUE, "--worker", WORKER], env, wrap)
    assert code == 0, (code, out, err)
    task: dict[str, str] = json.loads(out)
    return task, err


def _report(task: dict[str, str], env: dict[str, str], wrap: Wrap | None) -> tuple[int, str]:
    args = ["task", "report", task["id"], "--token", task["token"], "--summary", "done"]
    code, out, err = _swarm(args, env, wrap)
    assert out.startswith("reported f-"), (code, out, err)  # (stored, whatever followed)
    return code, err


def _stored_once(redis_url: str, *task_ids: str) -> None:
    with Swarm(redis_url, swarm=SWARM) as swarm:
        page = swarm.findings(queue=QUEUE, limit=100)
        for task_id in task_ids:
            assert swarm.get_task(task_id).status.value == "completed"
            assert [f.task_id for f in page.items].count(task_id) == 1


def _tokens_file(home: Path) -> Path:
    return home / "leases" / SWARM / f"{WORKER}.json"


def _post(redis_url: str, n: int) -> None:
    with Swarm(redis_url, swarm=SWARM) as swarm:
        for i in range(n):
            swarm.post_task(QUEUE, f"task {i}")


def test_a_report_on_a_read_only_home_succeeds_once(
    env: dict[str, str], home: Path, redis_url: str
) -> None:
    """Item 1: the finding stored, the report exits 0, whatever the tokens' files."""
    _post(redis_url, 2)
    kept, _ = _claim(env)  # while the home could be written: its token kept there
    other, _ = _claim({**env, "SWARM_HOME": str(home.parent / "elsewhere")})
    assert json.loads(_tokens_file(home).read_text()) == {kept["id"]: kept["token"]}
    with _read_only(home) as wrap:
        # A task whose token this machine does not keep: no lock taken, nothing written,
        # nothing said.
        assert _report(other, env, wrap) == (0, "")
        # A token kept but not to be forgotten now: said on stderr, not the report's failure.
        code, err = _report(kept, env, wrap)
        assert code == 0 and f"the token of {kept['id']}" in err and "forgotten" in err, err
    _stored_once(redis_url, other["id"], kept["id"])
    assert json.loads(_tokens_file(home).read_text()) == {kept["id"]: kept["token"]}


@pytest.mark.parametrize("json_output", [True, False], ids=["json", "human"])
def test_a_claim_on_a_read_only_home_shows_its_token(
    env: dict[str, str], home: Path, redis_url: str, json_output: bool
) -> None:
    """Item 2: the lease is taken, its token cannot be kept: printed all the same, and then
    said (stderr) that it must be passed by hand; a report with it completes the task."""
    _post(redis_url, 1)
    home.mkdir()
    with _read_only(home) as wrap:
        args = ["task", "claim", QUEUE, "--worker", WORKER]
        code, out, err = _swarm(["--json", *args] if json_output else args, env, wrap)
        assert code == 0, (code, out, err)
        if json_output:
            claimed: dict[str, str] = json.loads(out)
        else:
            task_id, token = out.split()[1], out.split("(token ")[1].split(")")[0]
            claimed = {"id": task_id, "token": token}
        assert claimed["token"].startswith("1."), out
        assert err.startswith(f"warning: the token of {claimed['id']} could not be kept"), err
        assert f"--token {claimed['token']}" in err and err.count("\n") == 1
        assert _report(claimed, env, wrap) == (0, "")
    _stored_once(redis_url, claimed["id"])
    assert not (home / "leases").exists()


def test_a_lock_that_cannot_be_opened_fails_no_report(
    env: dict[str, str], home: Path, redis_url: str
) -> None:
    """As anyone, root too: the tokens' lock is a folder, so opening it fails (EISDIR)."""
    _post(redis_url, 2)
    kept, _ = _claim(env)
    other, _ = _claim({**env, "SWARM_HOME": str(home.parent / "elsewhere")})
    lock = _tokens_file(home).parent / ".lock"
    lock.unlink()
    lock.mkdir()
    # Nothing to forget here (claimed in another home): no lock taken.
    assert _report(other, env, None) == (0, "")
    # Its token to forget, the lock not to be had: said, not failed.
    code, err = _report(kept, env, None)
    assert code == 0 and "could not be forgotten" in err, err
    _stored_once(redis_url, other["id"], kept["id"])


def test_a_report_claiming_the_next_task_on_a_read_only_home_shows_its_token(
    env: dict[str, str], home: Path, redis_url: str
) -> None:
    """``report --claim-next`` takes a lease too: printed with its token, then said."""
    _post(redis_url, 2)
    home.mkdir()
    with _read_only(home) as wrap:
        first, _ = _claim(env, wrap)
        args = ["--json", "task", "report", first["id"], "--token", first["token"]]
        args += ["--summary", "done", "--claim-next", QUEUE]
        code, out, err = _swarm(args, env, wrap)
        assert code == 0, (code, out, err)
        following = json.loads(out)["next"]
        assert following["token"].startswith("1.")
        assert err.startswith(f"warning: the token of {following['id']} could not be kept")
        assert f"--token {following['token']}" in err
    _stored_once(redis_url, first["id"])
