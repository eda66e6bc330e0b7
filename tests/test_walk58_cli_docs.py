"""A docs walk found: ``claude -p`` pools shown without the tool permission their agent needs
to read the context (docs/agents.md), and Gemini's hook events listed without
``SessionStart``, which ``swarm hooks install --client gemini`` writes. The docs are checked
against the code's one table of events per client."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from redis_swarm._hooks.formats import EVENTS, client_event

ROOT = Path(__file__).resolve().parent.parent
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted(ROOT.glob("examples/**/*")),
]
NAME = re.compile(r"`(\w+)`")


def _events(client: str) -> list[str]:
    """The names ``client`` gives the events the hooks are installed for, in the table's order."""
    return [name for event in EVENTS if (name := client_event(event, client)) is not None]


def _commands(path: Path) -> list[str]:
    """The shell commands of ``path``, continued lines joined."""
    return path.read_text(errors="replace").replace("\\\n", " ").splitlines()


def test_claude_pools_in_the_docs_may_run_swarm() -> None:
    """Every ``swarm run`` / ``swarm serve`` example with a ``claude -p`` agent lets it run
    ``swarm context search|read`` (the prompt tells it to): headless, its Bash calls are
    denied otherwise, and its finding says nothing."""
    shown = [
        (path.relative_to(ROOT), line)
        for path in DOCS
        if path.is_file()
        for line in _commands(path)
        if re.search(r"swarm (run|serve) .*--exec '(claude -p[^']*)'", line)
    ]
    assert len(shown) >= 4
    missing = [(str(p), line) for p, line in shown if '--allowedTools "Bash(swarm:*)"' not in line]
    assert missing == []


@pytest.mark.parametrize(
    ("doc", "pattern"),
    [
        ("live.md", r"\*\*Gemini CLI\*\* has no subagent events; its events are (.*?), and"),
        ("cli.md", r"\(Gemini: (.*?); it has no subagent events\)"),
    ],
)
def test_gemini_hook_events_in_the_docs_are_the_installed_ones(doc: str, pattern: str) -> None:
    found = re.search(pattern, (ROOT / "docs" / doc).read_text(), re.S)
    assert found is not None, f"docs/{doc} no longer lists Gemini's hook events"
    assert NAME.findall(found.group(1)) == _events("gemini")


def test_the_event_list_of_swarm_hook_is_claudes_and_codexs() -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    found = re.search(r"EVENT: (.*?) \(Gemini:", text, re.S)
    assert found is not None
    assert NAME.findall(found.group(1)) == _events("claude") == _events("codex")
