"""A docs walk found: a mistyped command that is loaded only when used (``swarm statu``,
``swarm task lst``) got no "Did you mean" hint, while a loaded one did: click drew the hint
from the commands imported so far only."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from redis_swarm.cli import main

needs_hints = pytest.mark.skipif(
    not hasattr(click, "NoSuchCommand"), reason="click before 8.4 gives no hint for any command"
)


@needs_hints
@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        (["statu"], "status"),
        (["contxt"], "context"),
        (["agent"], "agents"),
        (["task", "lst"], "list"),
        (["task", "pots"], "post"),
    ],
)
def test_a_mistyped_command_is_told_the_one_meant(typed: list[str], meant: str) -> None:
    result = CliRunner().invoke(main, typed)
    assert result.exit_code == 2
    assert f"No such command {typed[-1]!r}." in result.output
    assert "Did you mean" in result.output and repr(meant) in result.output


@needs_hints
def test_the_hint_in_json_and_nothing_far_off() -> None:
    result = CliRunner().invoke(main, ["statu", "--json"])
    assert result.exit_code == 2
    assert "Did you mean 'status'?" in result.output
    result = CliRunner().invoke(main, ["zzzzzz"])
    assert result.exit_code == 2 and "Did you mean" not in result.output


_PROBE = """
import json, sys
from click.testing import CliRunner
from redis_swarm.cli import main
result = CliRunner().invoke(main, ["statu"])
print(json.dumps([result.output, sorted(sys.modules)]))
"""


@needs_hints
def test_the_hint_imports_no_command() -> None:
    """Naming every command costs no import of one (nor redis, nor asyncio)."""
    import json

    run = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    output, loaded = json.loads(run.stdout)
    assert "Did you mean 'status'?" in output
    assert not {"redis", "asyncio", "redis_swarm.cli._agents"} & set(loaded)
