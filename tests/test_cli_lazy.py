"""The CLI imports the module of the command it runs, and only it (cli/__init__'s
COMMAND_MODULES): a client runs `swarm hook` at every turn, and agents run `swarm task ...`
in tool calls, so what they import is their start-up time."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

from redis_swarm.cli import COMMAND_MODULES, main


def test_the_command_map_is_what_the_modules_add() -> None:
    for module, names in COMMAND_MODULES.items():
        importlib.import_module(f"redis_swarm.cli.{module}")
        for name in names:
            command = main.commands.get(name)
            assert command is not None, f"{module} adds no command {name!r}"
            assert command.callback is not None
            assert command.callback.__module__ == f"redis_swarm.cli.{module}", name
    listed = {name for names in COMMAND_MODULES.values() for name in names}
    assert set(main.commands) == listed, "a command missing from COMMAND_MODULES"


_PROBE = """
import json, sys
from redis_swarm.cli import main
try:
    main(sys.argv[1:], prog_name="swarm")
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules if m.startswith("redis_swarm"))), file=sys.stderr)
"""


def _modules_after(args: list[str], stdin: str = "", **env: str) -> set[str]:
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )
    return set(json.loads(run.stderr.strip().splitlines()[-1]))


def test_a_hook_loads_neither_the_dashboard_nor_the_runner(redis_url: str) -> None:
    event = {"hook_event_name": "SessionStart", "session_id": "s-lazy", "cwd": "/tmp"}
    loaded = _modules_after(
        ["hook", "SessionStart", "--client", "claude"],
        stdin=json.dumps(event),
        SWARM_URL=redis_url,
    )
    assert "redis_swarm.cli._hooks" in loaded
    for heavy in ("dashboard", "_runner", "a2a_server", "_pipeline", "cli._task", "cli._run"):
        assert not any(m.startswith(f"redis_swarm.{heavy}") for m in loaded), heavy


def test_help_lists_every_command() -> None:
    loaded = _modules_after(["--help"])
    assert {f"redis_swarm.cli.{module}" for module in COMMAND_MODULES} <= loaded
