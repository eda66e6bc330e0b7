"""``swarm hooks install`` without --write, for a Gemini CLI settings file that holds ``//``
comments: it printed the file merged with our entries, the comments silently gone (a copy the
user would paste over the file, losing them), while --write refuses to rewrite such a file.
It now says the file has comments and prints only the ``hooks`` entries to add by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from redis_swarm._client_files import strip_comments

from ._cli import Cli

COMMENTED = """{
  // the theme I like
  "theme": "dark",
  "hooks": {
    /* a hook of my own */
    "AfterAgent": [{"matcher": "", "hooks": [{"type": "command", "command": "notify-send"}]}]
  }
}
"""


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cli:
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # (the user scope's file: none)
    monkeypatch.setenv("GEMINI_CLI_HOME", str(tmp_path / "home"))
    return Cli("redis://127.0.0.1:1/0", swarm="team")


def _settings(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "project" / ".gemini" / "settings.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def test_a_commented_file_is_printed_the_entries_to_add(cli: Cli, tmp_path: Path) -> None:
    path = _settings(tmp_path, COMMENTED)
    out = cli("hooks", "install", "--client", "gemini", "--queue", "review")
    printed = json.loads(out.stdout)
    assert list(printed) == ["hooks"]  # ours alone: not a merged copy without the comments
    assert "theme" not in out.stdout and "notify-send" not in out.stdout
    assert {"SessionStart", "BeforeAgent", "AfterAgent"} <= set(printed["hooks"])
    commands = [h["command"] for gs in printed["hooks"].values() for g in gs for h in g["hooks"]]
    assert commands and all(" hook " in c and "--queue review" in c for c in commands)
    assert f"{path} holds comments, which a merged copy would lose" in out.stderr
    assert "printed are only the entries to add by hand" in out.stderr
    assert "in place of" not in out.stderr  # (none of ours there)
    assert path.read_text() == COMMENTED

    # added by hand as it says, the comments kept: there is nothing left to add
    hooks = json.loads(strip_comments(COMMENTED))["hooks"]
    for event, groups in printed["hooks"].items():
        hooks[event] = [*hooks.get(event, []), *groups]
    by_hand = (
        '{\n  // the theme I like\n  "theme": "dark",\n  "hooks": ' + json.dumps(hooks) + "\n}\n"
    )
    path.write_text(by_hand)
    again = cli("hooks", "install", "--client", "gemini", "--queue", "review")
    assert "it holds these `swarm hook` entries already: nothing to add" in again.stderr

    # installed before with other options: the printed ones take their place
    other = cli("hooks", "install", "--client", "gemini", "--queue", "triage")
    assert "in place of the `swarm hook` entries the file holds" in other.stderr
    assert "--queue triage" in other.stdout and "--queue review" not in other.stdout
    assert path.read_text() == by_hand

    # comments taken out: the merged file is printed, as for any other
    path.write_text(json.dumps({"theme": "dark"}))
    out = cli("hooks", "install", "--client", "gemini")
    merged = json.loads(out.stdout)
    assert merged["theme"] == "dark" and "SessionStart" in merged["hooks"]
    assert f"goes in {path} (--write merges it)" in out.stderr
