"""Without the ``a2a`` extra, importing the A2A packages says which extra to install (the
error chained to the missing module's), and ``swarm a2a`` still names the module missing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ._cli import SRC

# `import MODULE` with a2a-sdk hidden, as if it were not installed: prints the error's name,
# whether it is chained, and its message.
_PROBE = """
import importlib, sys
sys.modules["a2a"] = None
try:
    importlib.import_module(sys.argv[1])
except ModuleNotFoundError as exc:
    print(exc.name, exc.__cause__ is not None, exc, sep="\\n")
"""
HINT = "pip install 'redis-swarm[a2a]'"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("module", ["redis_swarm.a2a", "redis_swarm.a2a_server"])
def test_importing_an_a2a_package_without_the_extra_names_it(module: str) -> None:
    done = _run("-c", _PROBE, module)
    assert done.returncode == 0, done.stderr
    name, chained, message = done.stdout.splitlines()
    assert name.partition(".")[0] == "a2a" and chained == "True"
    assert message == f"{module} needs a2a: {HINT}"


def test_swarm_a2a_without_the_extra_names_the_module_missing() -> None:
    command = "import sys; sys.modules['a2a'] = None; from redis_swarm.cli import main; main()"
    done = _run("-c", command, "--url", "redis://127.0.0.1:1/0", "a2a", "--queue", "q")
    assert done.returncode == 1
    assert "swarm a2a needs a2a" in done.stderr and HINT in done.stderr, done.stderr
