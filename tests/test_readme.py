"""The README's tour runs as written (against a test server instead of the embedded one)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from ._cli import Cli

README = Path(__file__).resolve().parent.parent / "README.md"
# Long-running or client-specific lines: covered by their own tests.
SKIP = (
    "source ",
    "swarm run ",
    "swarm serve ",
    "swarm ask ",
    "swarm mcp ",
    "swarm hooks ",
    "swarm a2a ",
    "claude ",
    "swarm dashboard",
    "swarm up",
    "swarm down",
    "swarm doctor",
)
# A line that writes a file with a here-document: ``cat > FILE <<'END'``, its lines, END.
HEREDOC = re.compile(r"<<'(\w+)'")


def tour_commands(skipped: bool = False) -> list[str]:
    """The tour's commands that run here (``skipped``: the others); a here-document is one
    command, its lines included; comment lines are none."""
    text = README.read_text()
    tour = text.split("## A 2-minute tour", 1)[1]
    block = re.search(r"```bash\n(.*?)```", tour, re.S)
    assert block is not None
    commands: list[str] = []
    lines = iter(block.group(1).splitlines())
    for raw in lines:
        line = raw.split("  #", 1)[0].strip()
        if (heredoc := HEREDOC.search(line)) is not None:
            body = list(iter(lines.__next__, heredoc.group(1)))
            line = "\n".join([line, *body, heredoc.group(1)])
        if line and not line.startswith("#"):
            commands.append(line)
    return [line for line in commands if line.startswith(SKIP) == skipped]


def test_readme_skipped_commands_name_real_options() -> None:
    """The tour lines not run here still parse: their commands and options exist (--help
    answers only once every option given is known)."""
    from click.testing import CliRunner

    from redis_swarm.cli import main

    commands = [c for c in tour_commands(skipped=True) if c.startswith("swarm ")]
    assert any(c.startswith("swarm serve ") for c in commands)
    for command in commands:
        result = CliRunner().invoke(main, [*shlex.split(command)[1:], "--help"])
        assert result.exit_code == 0, f"{command}: {result.output}"


def test_readme_tour_runs(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each command in turn, in this process, from an empty folder (a process per command
    would cost its start-up, and check nothing more: the first command also runs as a real
    ``swarm`` process); the tour writes the file it publishes itself, with a shell."""
    monkeypatch.chdir(tmp_path)
    swarm = Cli(redis_url, swarm="tour")
    task_id = token = ""
    commands = tour_commands()
    assert any(c.startswith("swarm task report") for c in commands)
    first = subprocess.run(
        [sys.executable, "-m", "redis_swarm", *shlex.split(commands[0])[1:]],
        capture_output=True, text=True, env={**os.environ, **swarm.env}, timeout=60,
        check=False,
    )  # fmt: skip
    assert first.returncode == 0, f"{commands[0]}: {first.stderr}"
    for command in commands:
        if not command.startswith("swarm "):
            done = subprocess.run(["bash", "-ec", command], timeout=30, check=False)
            assert done.returncode == 0, command
            continue
        command = command.replace("TASK_ID", task_id).replace("TOKEN", token)
        args = shlex.split(command)
        assert args[0] == "swarm"
        result = swarm(*args[1:], expect=None)
        assert result.code == 0, f"{command}: {result!r}"
        if args[1:3] == ["task", "claim"]:
            claimed = json.loads(result.stdout)
            task_id, token = claimed["id"], claimed["token"]
    findings = swarm.json("findings")
    (finding,) = findings["items"]
    assert finding["summary"] == "3 retries, 2 s backoff"
    # the finding's sources name the line of the published file that says so
    for source in finding["sources"]:
        name, line = source.rsplit(":", 1)
        said = (tmp_path / name).read_text().splitlines()[int(line) - 1]
        assert "3 retries, 2 s backoff" in said, source
