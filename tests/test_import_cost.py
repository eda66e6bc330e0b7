"""What the package and the commands run most often import, held without timing them.

A client runs `swarm hook` at every turn of a live session (docs/live.md), so its start-up is
paid constantly. redis-py's own import is the floor of any command that reaches Redis (it
loads its asyncio client, and OpenTelemetry's metrics where that is installed, whatever we
import from it); what is ours is held here: the package exports the names that reach Redis on
first use (``redis_swarm.__getattr__``), the CLI imports the shell when a command first asks
for the swarm, and rich when it first prints through a console; a command's module imports
what reaches Redis inside the command, so that its --help, and `swarm --help`, which imports
every command's module to list them, load no redis-py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import redis_swarm
from redis_swarm.cli import COMMAND_MODULES

# Prints, on its last line of stderr, every module loaded once ARGS ran: `swarm ARGS`, or with
# ARGS `import`, only `import redis_swarm`.
_PROBE = """
import json, sys
if sys.argv[1:] == ["import"]:
    import redis_swarm
else:
    from redis_swarm.cli import main
    try:
        main(sys.argv[1:], prog_name="swarm")
    except SystemExit:
        pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _loaded_by(*args: str, stdin: str = "", **env: str) -> tuple[set[str], str]:
    """The modules loaded by ``args`` in a new interpreter, and what it printed."""
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )
    return set(json.loads(run.stderr.strip().splitlines()[-1])), run.stdout


def _under(loaded: set[str], *packages: str) -> list[str]:
    return sorted(m for m in loaded if any(m == p or m.startswith(f"{p}.") for p in packages))


def test_importing_the_package_imports_no_redis() -> None:
    loaded, _ = _loaded_by("import")
    assert not _under(loaded, "redis", "rich", "asyncio", "redis_swarm._client")
    # and each name it exports on first use is there when asked for
    for name in redis_swarm.__all__:
        assert getattr(redis_swarm, name) is not None, name
    assert set(redis_swarm.__all__) <= set(dir(redis_swarm))
    assert redis_swarm.Swarm is redis_swarm._client.Swarm
    with pytest.raises(AttributeError, match="no attribute 'Swarmm'"):
        redis_swarm.Swarmm  # type: ignore[attr-defined]  # noqa: B018


@pytest.mark.parametrize("event", ["UserPromptSubmit", "Stop"])
def test_a_turns_hook_imports_what_it_sends_and_no_more(redis_url: str, event: str) -> None:
    payload = {"hook_event_name": event, "session_id": "s-cost", "stop_hook_active": False}
    loaded, answer = _loaded_by(
        "hook", event, "--client", "claude", stdin=json.dumps(payload), SWARM_URL=redis_url
    )
    assert "redis_swarm._client" in loaded and json.loads(answer) is not None
    # rich: the hook prints with click; the rest: exports the hook never uses
    unused = ["rich", "redis_swarm._acl_apply", "redis_swarm._acl_revoke", "redis_swarm.roles"]
    unused.append("redis_swarm._topology")
    assert not _under(loaded, *unused)


def test_a_command_that_never_reaches_redis_does_not_import_it() -> None:
    loaded, entries = _loaded_by("hooks", "install", "--client", "claude")
    assert "hooks" in json.loads(entries)
    assert not _under(loaded, "redis", "redis_swarm._client")


# `python -m redis_swarm ARGS`, as runpy runs it there, printing every module loaded at exit.
# (-X importtime would not do: it misses what importlib.import_module loads, as each command's
# module and the package's lazy exports.)
_MAIN_PROBE = """
import atexit, json, runpy, sys
atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))
runpy.run_module("redis_swarm", run_name="__main__", alter_sys=True)
"""


def test_swarm_help_imports_no_redis() -> None:
    run = subprocess.run(
        [sys.executable, "-c", _MAIN_PROBE, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = set(json.loads(run.stderr.strip().splitlines()[-1]))
    # it imported every command's module to list them
    assert {f"redis_swarm.cli.{module}" for module in COMMAND_MODULES} <= loaded
    assert not _under(loaded, "redis", "redis_swarm._client")
    # nor what those modules use only when a command runs: rich (its tables and progress
    # bars: --help prints with click), asyncio (swarm watch), the ACL rules (swarm acl: they
    # bring the Lua scripts and the operations' command tables), the runner, the pipeline,
    # the operations behind --limit's bound
    heavy = (
        "rich",
        "asyncio",
        "redis_swarm._acl",
        "redis_swarm._scripts",
        "redis_swarm._ops",
        "redis_swarm._runner",
        "redis_swarm._pipeline",
        "redis_swarm._protocol",
    )
    assert not _under(loaded, *heavy)


COMMANDS = sorted(name for names in COMMAND_MODULES.values() for name in names)

# Prints, on its last line of stderr, {command: the modules loaded once `swarm COMMAND
# --help` ran}, each command run in a child forked before any command's module was imported:
# one interpreter's start-up for them all.
_HELP_PROBE = """
import json, os, sys
from redis_swarm.cli import main
loaded = {}
for command in sys.argv[1:]:
    read, write = os.pipe()
    if os.fork() == 0:
        os.close(read)
        try:
            main([command, "--help"], prog_name="swarm")
        except SystemExit:
            pass
        with os.fdopen(write, "w") as pipe:
            json.dump(sorted(sys.modules), pipe)
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        loaded[command] = json.load(pipe)
    os.wait()
print(json.dumps(loaded), file=sys.stderr)
"""


@pytest.fixture(scope="module")
def loaded_by_help() -> dict[str, set[str]]:
    """The modules each top-level command's --help loads."""
    run = subprocess.run(
        [sys.executable, "-c", _HELP_PROBE, *COMMANDS],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found: dict[str, list[str]] = json.loads(run.stderr.strip().splitlines()[-1])
    return {command: set(modules) for command, modules in found.items()}


@pytest.mark.parametrize("command", COMMANDS)
def test_a_commands_help_imports_no_redis(
    loaded_by_help: dict[str, set[str]], command: str
) -> None:
    loaded = loaded_by_help[command]
    assert f"redis_swarm.cli.{_module_of(command)}" in loaded  # (its --help ran)
    assert not _under(loaded, "redis", "redis_swarm._client")


def _module_of(command: str) -> str:
    return next(module for module, names in COMMAND_MODULES.items() if command in names)
