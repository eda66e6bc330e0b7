"""The ``swarm run`` recipes of docs/agents.md, run as written with stand-in agent CLIs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from redis_swarm import Swarm

from ._cli import subprocess_env, swarm_bin

DOCS = Path(__file__).resolve().parent.parent / "docs" / "agents.md"
# Reads the prompt (checking it is one), answers with a finding naming the program.
STAND_IN = """#!/bin/sh
prompt=$(cat)
case "$prompt" in *"ephemeral worker"*) ;; *) echo "no prompt on stdin" >&2; exit 9;; esac
printf '```json\\n{"summary": "%s answered %s (%s bytes of prompt)"}\\n```\\n' \
  "$(basename "$0")" "$SWARM_TASK_ID" "${#prompt}"
"""


def recipes() -> list[str]:
    text = DOCS.read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)\n```", text, re.S):
        joined = block.replace("\\\n", " ")
        commands += [
            line
            for line in joined.splitlines()
            if line.startswith("swarm run ") and "AGENT COMMAND" not in line  # the template
        ]
    return commands


def test_the_docs_have_a_recipe_per_agent() -> None:
    text = " ".join(recipes())
    for program in ("claude -p", "codex exec", "gemini", "llm -m", "./count_terms.py"):
        assert program in text


@pytest.mark.parametrize("recipe", recipes(), ids=lambda r: r.split("--exec ", 1)[1][:30])
def test_recipe_runs(recipe: str, redis_url: str, tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    swarm_bin(bindir)
    for name in ("claude", "codex", "gemini", "llm"):
        (bindir / name).write_text(STAND_IN)
        (bindir / name).chmod(0o755)
    script = re.findall(r"```python\n(.*?)\n```", DOCS.read_text(), re.S)[0]
    (tmp_path / "count_terms.py").write_text(script)
    (tmp_path / "count_terms.py").chmod(0o755)
    queue = re.search(r"--queue (\S+)", recipe).group(1)  # type: ignore[union-attr]
    with Swarm(redis_url, swarm="test") as swarm:
        swarm.publish_context("shard-a", "alpha\nbeta\nalpha gamma\n", source="notes.md")
        posted = [
            swarm.post_task(queue, f"look for {term}", {"term": term}, parent="shard-a")
            for term in ("alpha", "gamma")
        ]
        env = subprocess_env(redis_url, "test", bindir)
        proc = subprocess.run(
            ["bash", "-c", recipe], env=env, cwd=tmp_path, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        summaries = sorted(f.summary for f in swarm.findings().items)
        assert len(summaries) == 2, proc.stdout + proc.stderr
        if "count_terms" in recipe:
            assert summaries == ["1 lines mention gamma", "2 lines mention alpha"]
        else:
            assert all(" answered t-" in s for s in summaries)
        assert {swarm.get_task(t.id).status for t in posted} == {"completed"}
