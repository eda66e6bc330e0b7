"""The lowest redis-py pyproject.toml allows is one the package works with: every module
imports on it, and the CLI reaches a server, posts and claims a task through it.

redis-py at the floor is installed into a folder of the test's (``pip install --target``, one
pure-Python wheel) that PYTHONPATH puts before the environment's own redis-py; the rest of the
environment (hiredis, mcp, ...) is the one the suite runs in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from ._cli import SRC
from .test_packaging_metadata import pyproject

# Imports every module of the package, warnings as errors, and names redis-py's version.
_IMPORT_ALL = """
import importlib, pkgutil, sys, warnings
warnings.simplefilter("error")
import redis, redis_swarm
failed = []
for found in pkgutil.walk_packages(redis_swarm.__path__, "redis_swarm."):
    if not found.name.endswith("__main__"):
        try:
            importlib.import_module(found.name)
        except Exception as exc:
            failed.append(f"{found.name}: {type(exc).__name__}: {exc}")
print(redis.__version__)
print(*failed, sep="\\n", file=sys.stderr)
sys.exit(1 if failed else 0)
"""


def _redis_floor() -> str:
    """The version the ``>=`` of the redis requirement names."""
    (line,) = (d for d in pyproject()["project"]["dependencies"] if d.startswith("redis["))
    (floor,) = (s.version for s in Requirement(line).specifier if s.operator == ">=")
    return floor


@pytest.mark.slow
def test_the_package_works_on_the_lowest_redis_py_it_allows(redis_url: str, tmp_path: Path) -> None:
    floor = _redis_floor()
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site)]
    got = subprocess.run(
        [*pip, f"redis=={floor}"], capture_output=True, text=True, timeout=110, check=False
    )
    if got.returncode and "Could not find a version that satisfies" in got.stderr:
        pytest.skip(f"redis=={floor} is not to be had (offline?): {got.stderr.strip()[-300:]}")
    assert got.returncode == 0, got.stderr
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), SRC])}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args], env=env, capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip

    imported = run("-c", _IMPORT_ALL)
    assert imported.returncode == 0, f"on redis-py {floor}:\n{imported.stderr}"
    assert Requirement(f"redis=={floor}").specifier.contains(imported.stdout.strip())
    swarm = ("-m", "redis_swarm", "--url", redis_url, "--swarm", "floor")
    for command in (("status",), ("task", "post", "q", "hello"), ("task", "claim", "q")):
        done = run(*swarm, *command)
        assert done.returncode == 0, f"swarm {' '.join(command)} on redis-py {floor}: {done}"
    assert "hello" in done.stdout, done  # (the task claimed)
