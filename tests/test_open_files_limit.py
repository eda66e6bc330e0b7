"""The suite's own guard on open files (tests/_open_files.py): a worker takes the hard limit
the machine gives, and a test that fails for want of a descriptor says what the process held."""

from __future__ import annotations

import errno
import resource
import subprocess
import sys
from pathlib import Path

import redis

from . import _open_files

ROOT = Path(__file__).resolve().parent.parent

# A child at a soft limit of 64 (its hard one as the machine gives it, or 64 too), which opens
# 200 sockets, says whether that held, and what the guard says of what it held.
_CHILD = """
import resource, socket, sys
from tests import _open_files
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
hard = hard if sys.argv[1] == "keep" else int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
_open_files.raise_limit()
held = []
try:
    for _ in range(200):
        held.append(socket.socket())
    print("held", len(held))
except OSError as exc:
    print("ran out", _open_files.ran_out(exc))
print(_open_files.first_report())
print(_open_files.first_report())
"""


def _child(hard: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, hard], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_worker_takes_the_hard_limit_it_is_given() -> None:
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 300:
        return  # (a machine that allows fewer than the child opens: nothing to raise to)
    said = _child("keep")
    assert said.startswith("held 200"), said


def test_running_out_says_what_was_open_and_only_once() -> None:
    said = _child("64").splitlines()
    assert said[0] == "ran out True", said
    assert said[1].startswith(("64 open", "63 open", "65 open")), said
    assert "limit 64, hard 64" in said[1], said
    socket_line = next(line for line in said if line.strip().endswith("socket"))
    assert int(socket_line.split()[0]) > 50, said
    assert any(line.startswith("1 threads: MainThread") for line in said), said
    assert said[-1] == "None", said  # the second failure does not repeat it


def test_redis_py_s_words_for_it_are_known_through_the_chain() -> None:
    said = redis.ConnectionError("Error 24 connecting to 127.0.0.1:1.")
    said.__cause__ = OSError(errno.EMFILE, "Too many open files")
    assert _open_files.ran_out(said)
    assert not _open_files.ran_out(redis.ConnectionError("Connection refused."))
    assert not _open_files.ran_out(None)
