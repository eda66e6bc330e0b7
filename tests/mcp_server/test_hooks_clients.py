"""Real clients load what ``swarm hooks install`` writes, where their CLIs can check it without
a model (issue 19.3): Gemini CLI validates the hooks of its settings file at start (``gemini
mcp list`` reports a malformed one). Claude Code and Codex have no offline command that reads
their hook files (docs/live.md says so)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .._cli import SRC
from .test_clients import GEMINI, _needs, _quiet_env


def _gemini_list(env: dict[str, str], work: Path) -> str:
    done = subprocess.run(
        [str(GEMINI), "mcp", "list"], env=env, cwd=work, capture_output=True, text=True,
        timeout=90, check=False,
    )  # fmt: skip
    return done.stdout + done.stderr


@_needs(GEMINI, "Gemini CLI (@google/gemini-cli)")
def test_gemini_cli_loads_the_hooks_install_writes(tmp_path: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    (home / ".gemini").mkdir(parents=True)
    work.mkdir()
    (home / ".gemini" / "trustedFolders.json").write_text(json.dumps({str(work): "TRUST_FOLDER"}))
    env = _quiet_env(home)
    settings = work / ".gemini" / "settings.json"
    settings.parent.mkdir()
    # the control: a malformed hooks entry is reported, so the check below checks something
    settings.write_text(json.dumps({"hooks": {"AfterAgent": "not a list"}}))
    assert "Please fix the configuration" in _gemini_list(env, work)
    settings.unlink()
    subprocess.run(
        [sys.executable, "-m", "redis_swarm", "--url", "redis://127.0.0.1:1", "hooks",
         "install", "--client", "gemini", "--queue", "q", "--loop", "--write"],
        env={**env, "PYTHONPATH": SRC}, cwd=work, check=True, capture_output=True,
    )  # fmt: skip
    assert set(json.loads(settings.read_text())["hooks"]) == {
        "SessionStart", "BeforeAgent", "AfterAgent", "PreCompress",
    }  # fmt: skip
    listed = _gemini_list(env, work)
    assert "Please fix the configuration" not in listed and "Expected" not in listed, listed
