"""The Python examples of docs/contexts.md, docs/tasks.md, docs/dashboard.md and the README
run as written: a page's blocks in order, in one interpreter, as a reader pasting them would
(each builds on the ones before), against the test server, with ResourceWarning an error. A
block that cannot run here (it waits for other agents, or until you break out) says so on the
line before its fence: ``<!-- doc-example: skip (why) -->``. docs/seed.md's are run by
tests/test_seed_lifecycle.py, one by one and in order; here, in order, twice in one swarm (its
examples run again)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ._cli import subprocess_env
from .test_readme import tour_commands

ROOT = Path(__file__).resolve().parent.parent
# A fence, indented as in a list item, and the line before it (a skip marker, or not).
BLOCK = re.compile(r"(?ms)^([^\n]*)\n( *)```python\n(.*?)\n\2```$")
SKIP = "<!-- doc-example: skip"
# The address the docs write; the examples run against the test server instead.
DOC_URL = "redis://localhost:6379"
# Runs the blocks given on stdin in one namespace, naming the block that failed.
DRIVER = """
import json, sys
namespace = {"__name__": "__main__"}
for name, code in json.load(sys.stdin):
    try:
        exec(compile(code, name, "exec"), namespace)
    except BaseException:
        print(f"{name} failed", file=sys.stderr)
        raise
"""


def python_blocks(page: str) -> list[tuple[str, str]]:
    """``(name, code)`` of each Python block of ``page`` (relative to the checkout) that is
    not marked skipped, in order; the name says where the block is, for a traceback."""
    text = (ROOT / page).read_text()
    blocks = []
    for match in BLOCK.finditer(text):
        before, _, code = match.groups()
        if before.strip().startswith(SKIP):
            continue
        line = text.count("\n", 0, match.start(3)) + 1
        blocks.append((f"{page}:{line}", textwrap.dedent(code)))
    return blocks


def run_page(page: str, redis_url: str, tmp_path: Path, swarm: str) -> None:
    blocks = [(name, code.replace(DOC_URL, redis_url)) for name, code in python_blocks(page)]
    assert blocks, f"{page} has no Python block"
    env = {**subprocess_env(redis_url, swarm, tmp_path), "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", "-c", DRIVER], input=json.dumps(blocks),
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # a warning raised in a finalizer is printed, not raised: it must not be printed either
    assert "ResourceWarning" not in done.stderr, done.stderr


def test_the_blocks_are_found_with_their_indent_and_skips() -> None:
    names = [name for name, _ in python_blocks("docs/contexts.md")]
    codes = [code for _, code in python_blocks("docs/contexts.md")]
    assert any("ContextCache(" in code for code in codes)  # the block inside a list item
    assert not any("follow_events(" in code for code in codes)  # marked skipped
    assert all(not code.startswith(" ") for code in codes)
    assert len(names) == len(set(names)) >= 7


def test_contexts_md_examples_run(redis_url: str, tmp_path: Path) -> None:
    # from an empty folder: the page makes the corpus.md it publishes, long enough for its
    # line range (1200-1450) and holding what it searches for
    assert not (tmp_path / "corpus.md").exists()
    run_page("docs/contexts.md", redis_url, tmp_path, "contexts-doc")


def test_dashboard_md_example_runs_as_a_script(redis_url: str, tmp_path: Path) -> None:
    # a script as pasted (no top-level await), on the server the environment names
    run_page("docs/dashboard.md", redis_url, tmp_path, "dashboard-doc")


def test_tasks_md_examples_run(redis_url: str, tmp_path: Path) -> None:
    run_page("docs/tasks.md", redis_url, tmp_path, "tasks-doc")


def test_seed_md_examples_run_again_and_leave_no_task_open(redis_url: str, tmp_path: Path) -> None:
    """docs/seed.md's blocks, in order, twice in the one swarm it names (as a reader trying
    them again would): each run does the tasks it posts, so the next run's workers claim
    only their own run's, and nothing is left pending or claimed, in that swarm or in the
    one its sweep example makes for itself."""
    from redis_swarm import Swarm

    for _ in range(2):
        run_page("docs/seed.md", redis_url, tmp_path, "seed-docs")
    for name in ("seed-docs", "seed-docs-sweep"):
        with Swarm(redis_url, swarm=name) as swarm:
            stats = swarm.queue_stats()
            assert stats, name
            open_tasks = {
                queue: {s: n for s, n in counts.items() if s in ("pending", "delayed", "claimed")}
                for queue, counts in stats.items()
            }
            assert all(not any(c.values()) for c in open_tasks.values()), (name, open_tasks)


def test_live_md_examples_run(redis_url: str, tmp_path: Path) -> None:
    """docs/live.md's Python block, on its own (its import and handle included), after the
    page's console steps made shard-1 an agent."""
    from redis_swarm import Swarm

    with Swarm(redis_url, swarm="live-doc") as swarm:
        swarm.register("shard", name="shard-1")
    run_page("docs/live.md", redis_url, tmp_path, "live-doc")
    with Swarm(redis_url, swarm="live-doc") as swarm:
        assert swarm.inbox("shard-1", ack=False) == []  # what it was shown, marked read


def test_readme_python_examples_run(redis_url: str, tmp_path: Path) -> None:
    (write_notes,) = [c for c in tour_commands() if c.startswith("cat > notes.md")]
    subprocess.run(["bash", "-ec", write_notes], cwd=tmp_path, check=True, timeout=30)
    run_page("README.md", redis_url, tmp_path, "readme-doc")


@pytest.mark.parametrize(
    ("code", "failed"),
    [
        ("x = 1\n", ""),
        ("undefined_name\n", "NameError"),
        ("open('corpus.md').read()\n", "ResourceWarning"),
    ],
)
def test_a_failing_example_fails_the_run(
    code: str, failed: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "corpus.md").write_text("x\n")
    page = tmp_path / "page.md"
    page.write_text(f"# A page\n\n```python\n{code}```\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    if not failed:
        run_page("page.md", "redis://127.0.0.1:1", tmp_path, "x")
        return
    with pytest.raises(AssertionError, match=failed):
        run_page("page.md", "redis://127.0.0.1:1", tmp_path, "x")


def test_ask_md_asks_and_answers_on_the_swarm_the_readme_builds(
    redis_url: str, tmp_path: Path
) -> None:
    """docs/ask.md's first example asks the shard the README's tour published (not one that
    page publishes only much later), and its answering snippet, run beside it as the page
    says, imports and opens what it uses and answers it."""
    (write_notes,) = [c for c in tour_commands() if c.startswith("cat > notes.md")]
    subprocess.run(["bash", "-ec", write_notes], cwd=tmp_path, check=True, timeout=30)
    from redis_swarm import Swarm

    with Swarm(redis_url, swarm="ask-doc") as swarm:
        swarm.publish_context("shard-1", (tmp_path / "notes.md").read_text(), source="notes.md")
    codes = [code for _, code in python_blocks("docs/ask.md")]
    (answering,) = [code for code in codes if 'swarm.claim("ask.' in code]
    env = {**subprocess_env(redis_url, "ask-doc", tmp_path), "HOME": str(tmp_path)}

    def start(code: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", code], env=env, cwd=tmp_path, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip

    answerer = start(answering)
    asker = start(codes[0])
    _, asked = asker.communicate(timeout=90)
    _, answered = answerer.communicate(timeout=90)
    assert (asker.returncode, answerer.returncode) == (0, 0), asked + answered
