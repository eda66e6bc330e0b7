"""The core's hints, said in commands: an error a command prints names the command that
helps (``COMMAND_WORDS``), never the Python call behind it."""

from __future__ import annotations

import json
from pathlib import Path

from redis_swarm import Swarm
from redis_swarm.cli._app import COMMAND_WORDS

from ._cli import Cli


def test_every_hint_a_command_prints_names_a_command(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    swarm.publish_context("shard-1", "one line\n", source="t")
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"blob": "x" * 1_100_000}))
    errors = [
        cli("context", "get", "nobody", expect=1).stderr,
        cli("context", "get", "shard-1", "--version", "zz", expect=None).stderr,
        cli("agents", "deregister", "ghost", expect=1).stderr,
        cli("context", "search", "shard-1", "(", "--regex", expect=None).stderr,
        cli("task", "post", "q", "big", "--data", f"@{big}", expect=1).stderr,
    ]
    said = "\n".join(errors)
    for core_words, command_words in COMMAND_WORDS:
        assert command_words in said, (command_words, said)  # (a reworded core hint fails)
        assert core_words not in said, said
