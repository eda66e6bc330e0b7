"""Every module of the core's operations imports on its own, first, in a fresh interpreter: a
tool, a test or a face that imports one before the package's client must not meet an import
cycle (``_ops.findings``, ``counters``, ``ask`` and ``costs`` did: views took a decoder from
findings, which was still being made)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import redis_swarm._ops

SRC = str(Path(redis_swarm.__file__).resolve().parent.parent)
MODULES = sorted(m.name for m in pkgutil.iter_modules(redis_swarm._ops.__path__))


@pytest.mark.parametrize("module", MODULES)
def test_an_operations_module_imports_alone(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"import redis_swarm._ops.{module}"],
        capture_output=True, text=True, timeout=60, env={"PYTHONPATH": SRC},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-800:]
