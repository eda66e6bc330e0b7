"""What a fresh clone's tour of the README found, held to the code: an ephemeral worker that
closes (the seed's ``EphemeralWorker``, the ``Worker`` role, the demo's worker processes, the
README's and docs/tasks.md's examples) is no longer counted alive, and its findings still
name it; the demo's account cuts a finding at a word and counts its chunks in words."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from redis_swarm import EphemeralWorker, Swarm, Worker
from redis_swarm._codec import counted
from redis_swarm._demo import _cut_at_word, _worker_main

from ._cli import subprocess_env
from .test_readme import README, tour_commands

ROOT = Path(__file__).resolve().parent.parent
PYTHON_BLOCK = re.compile(r"```python\n(.*?)\n```", re.S)


def _alive(swarm: Swarm) -> set[str]:
    return {a.id for a in swarm.status().roster if a.alive}


# --- a worker that closes leaves


@pytest.mark.parametrize("kind", [EphemeralWorker, Worker], ids=lambda k: k.__name__)
def test_a_closed_worker_is_no_longer_alive_and_its_finding_names_it(
    kind: type[Worker], redis_url: str
) -> None:
    with Swarm(redis_url, swarm="leave") as swarm:
        swarm.post_task("research", "Find the retry policy")
        with kind(url=redis_url, swarm="leave", model="m-1") as worker:
            task = worker.claim("research")
            assert task is not None
            worker.report({"summary": "3 retries"})
            assert worker.worker_id in _alive(swarm)
        assert worker.worker_id not in _alive(swarm)
        assert swarm.status().agents.alive == 0
        (finding,) = swarm.findings().items
        assert (finding.worker, finding.model) == (worker.worker_id, "m-1")


def test_a_worker_that_never_claimed_leaves_others_alone(redis_url: str) -> None:
    """A worker that never claimed never registered: its close deregisters nobody, not even
    an agent of the same name registered by someone else (a worker given an id never
    deregisters it: tests/test_worker_leave.py)."""
    with Swarm(redis_url, swarm="leave") as swarm:
        swarm.register("worker", name="w-shared")
        Worker(url=redis_url, swarm="leave", worker_id="w-shared").close()
        assert "w-shared" in _alive(swarm)
        # closing one swept meanwhile is no error
        with Worker(url=redis_url, swarm="leave") as worker:
            assert worker.claim("empty") is None
            worker.heartbeat()
            swarm.deregister(worker.worker_id)
        assert _alive(swarm) == {"w-shared"}


def test_the_demos_worker_process_leaves_when_it_exits(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SWARM_URL", redis_url)
    monkeypatch.setenv("SWARM_NAME", "demo-leave")
    with Swarm(redis_url, swarm="demo-leave") as swarm:
        swarm.publish_context("shard-1", "# Retries\nthe retry policy\n", source="notes.md")
        swarm.post_task("demo.q", "Which retries?", {"keywords": ["retry"]}, parent="shard-1")
        assert _worker_main(["--queue", "demo.q"]) == 0
        assert '"finding"' in capsys.readouterr().out
        (finding,) = swarm.findings().items
        assert finding.worker is not None
        assert _alive(swarm) == set()


# --- the README's Python snippet and docs/tasks.md's example leave no live worker


def test_the_readmes_python_snippet_runs_on_the_tours_file_and_its_worker_leaves(
    redis_url: str, tmp_path: Path
) -> None:
    (write_notes,) = [c for c in tour_commands() if c.startswith("cat > notes.md")]
    subprocess.run(["bash", "-ec", write_notes], cwd=tmp_path, check=True, timeout=30)
    (snippet,) = [b for b in PYTHON_BLOCK.findall(README.read_text()) if "EphemeralWorker" in b]
    env = subprocess_env(redis_url, "readme-python", tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", snippet], env=env, cwd=tmp_path, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with Swarm(redis_url, swarm="readme-python") as swarm:
        status = swarm.status()
        assert [a.role for a in status.roster if a.alive] == ["shard"]  # the shard stays
        (finding,) = swarm.findings().items
        assert finding.worker is not None and finding.worker.startswith("worker_")
        assert "retry" in swarm.get_context(str(finding.shard))


def test_tasks_md_example_leaves_no_live_worker(redis_url: str, tmp_path: Path) -> None:
    (example,) = PYTHON_BLOCK.findall((ROOT / "docs" / "tasks.md").read_text())[:1]
    env = subprocess_env(redis_url, "tasks-leave", tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", example], env=env, cwd=tmp_path, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with Swarm(redis_url, swarm="tasks-leave") as swarm:
        assert swarm.status().agents.alive == 0
        assert {f.worker for f in swarm.findings().items} == {"worker-17"}


# --- the demo's account


def test_a_findings_line_is_cut_at_a_word_with_an_ellipsis() -> None:
    summary = "12 lines of the context mention timeout / subprocess; the most relevant are in X"
    cut = _cut_at_word(summary, 40)
    assert cut == "12 lines of the context mention timeout…"
    assert len(cut) <= 40 and summary.startswith(cut[:-1])
    assert _cut_at_word("short", 40) == "short"
    assert _cut_at_word("x" * 50, 40) == "x" * 39 + "…"  # one long word: cut inside it
    assert (counted(1, "chunk"), counted(3, "chunk")) == ("1 chunk", "3 chunks")
