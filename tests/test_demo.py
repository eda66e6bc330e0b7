"""``swarm demo``: the seed's Pass 1 with five real worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from redis_swarm import Swarm
from redis_swarm._demo import CORPUS_NAME, corpus_text


def _swarm_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "redis_swarm", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )


def test_corpus_is_real_and_large() -> None:
    text = corpus_text()
    assert 300_000 < len(text.encode()) < 1_000_000
    assert "subprocess" in text
    assert "PSF" in text.splitlines()[2] or "Python Software Foundation" in text[:500]


def test_demo_json_runs_pass_1_with_five_workers(redis_url: str) -> None:
    result = _swarm_cli("--url", redis_url, "--swarm", "demo", "demo", "--json", env={})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert len(report["tasks"]) == 5
    workers = report["workers"]
    assert len(workers) == 5
    assert len({w["pid"] for w in workers}) == 5  # five separate processes
    assert {w["task"] for w in workers} == set(report["tasks"])  # each claimed one task
    findings = report["findings"]
    assert len(findings) == 5
    lines = corpus_text().splitlines()
    for finding in findings:
        assert finding["summary"]
        assert finding["sources"], finding
        for source in finding["sources"]:
            name, line = source.rsplit(":", 1)
            assert name == CORPUS_NAME
            assert 1 <= int(line) <= len(lines)
        assert finding["context_version"] == report["context_version"]
        assert finding["worker"] in {w["worker"] for w in workers}
    with Swarm(redis_url, swarm="demo") as swarm:
        synthesis = swarm.get_synthesis(report["synthesis_id"])
        assert set(synthesis.sources) == {f["id"] for f in findings}
        assert all(f["id"] in synthesis.text for f in findings)
        for finding in findings:
            # A finding's first source line really mentions one of its task's words.
            task = swarm.get_task(finding["task_id"])
            line = int(finding["sources"][0].rsplit(":", 1)[1])
            assert any(word in lines[line - 1].lower() for word in task.data["keywords"])


def test_demo_human_output_on_the_embedded_server(swarm_home: Path) -> None:
    result = _swarm_cli("demo", env={"SWARM_HOME": str(swarm_home)})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "embedded://" in out
    assert "posted 5 research tasks" in out
    assert out.count("reported f") >= 5 or out.count("  worker ") == 5
    assert "collect    5 findings" in out
    assert "synthesis" in out
    assert "done" in out
