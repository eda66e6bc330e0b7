"""The lease tokens a machine keeps (``_lease_tokens``) survive processes changing them at once:
claims keeping tokens while reports forget others in the same file. Each change read the
file, edited it and wrote it back with no lock, so a change made in between was written
over: a token lost, its lease unrenewable by the hooks and its task retried."""

from __future__ import annotations

import multiprocessing
import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from redis_swarm import Settings
from redis_swarm import _lease_tokens as tokens

SWARM = "locks"
WORKER = "w-shared"
PROCESSES = 4  # two cores: more would only queue
CHANGES = 150  # per process: enough that unlocked changes lose tokens every run


def _settings(home: str) -> Settings:
    return Settings.from_url("redis://127.0.0.1:1", swarm=SWARM, home=home)  # never connects


def _remember(home: str, n: int, start: Any) -> None:
    settings = _settings(home)
    start.wait()
    for i in range(CHANGES):
        tokens.remember(settings, WORKER, f"t-{n}-{i}", f"token-{n}-{i}")


def _forget(home: str, n: int, start: Any) -> None:
    settings = _settings(home)
    start.wait()
    for i in range(CHANGES):
        tokens.forget_task(settings, f"old-{n}-{i}")


Job = Callable[[str, int, Any], None]  # (home, number, a start barrier)


def _run(home: Path, jobs: Sequence[tuple[Job, int]]) -> None:
    # No fork of a threaded test process: each is forked from the fork server, a process of
    # its own that imported this module (and the library) once, not each process again.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    start = context.Barrier(len(jobs))
    procs = [context.Process(target=fn, args=(str(home), n, start)) for fn, n in jobs]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0, f"a process failed ({proc.exitcode})"


def test_claims_at_once_lose_no_token(tmp_path: Path) -> None:
    _run(tmp_path, [(_remember, n) for n in range(PROCESSES)])
    kept = tokens.known(_settings(str(tmp_path)), WORKER)
    expected = {f"t-{n}-{i}": f"token-{n}-{i}" for n in range(PROCESSES) for i in range(CHANGES)}
    lost = sorted(set(expected) - set(kept))
    assert not lost, f"{len(lost)} of {len(expected)} tokens lost, e.g. {lost[:5]}"
    assert kept == expected


def test_forgetting_while_others_claim_loses_no_token(tmp_path: Path) -> None:
    settings = _settings(str(tmp_path))
    half = PROCESSES // 2
    for n in range(half):  # the tasks the reports will forget, in the claims' own file
        for i in range(CHANGES):
            tokens.remember(settings, WORKER, f"old-{n}-{i}", f"old-token-{n}-{i}")
    _run(tmp_path, [(_remember, n) for n in range(half)] + [(_forget, n) for n in range(half)])
    kept = tokens.known(settings, WORKER)
    remembered = {f"t-{n}-{i}" for n in range(half) for i in range(CHANGES)}
    lost = sorted(remembered - set(kept))
    assert not lost, f"{len(lost)} of {len(remembered)} tokens lost, e.g. {lost[:5]}"
    assert set(kept) == remembered, "a forgotten token came back"
    # Only the tokens and the lock are left (no temporary file), each its owner's alone.
    folder = tmp_path / "leases" / SWARM
    assert sorted(p.name for p in folder.iterdir()) == [".lock", f"{WORKER}.json"]
    for path in folder.iterdir():
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path


def test_forgetting_on_a_machine_with_no_tokens_makes_nothing(tmp_path: Path) -> None:
    tokens.forget_task(_settings(str(tmp_path)), "t-1")
    assert not (tmp_path / "leases").exists()


def test_a_token_kept_after_the_held_tasks_were_judged_is_not_forgotten(tmp_path: Path) -> None:
    """A hook judges the tokens it read against the tasks Redis says the worker holds; a
    session of the same worker claiming at that instant keeps a token the judgement never
    saw: it stays (dropping all but the held lost it, its task leased with no token)."""
    settings = _settings(str(tmp_path))
    tokens.remember(settings, WORKER, "t-done", "token-done")
    judged = tokens.known(settings, WORKER)  # read, then Redis asked: t-done is not held
    tokens.remember(settings, WORKER, "t-new", "token-new")  # another session's claim
    tokens.forget(settings, WORKER, judged, keep=set())
    assert tokens.known(settings, WORKER) == {"t-new": "token-new"}
