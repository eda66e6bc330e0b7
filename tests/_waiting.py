"""Waiting in a test for something another process or thread brings about."""

from __future__ import annotations

import time
from collections.abc import Callable


def until(check: Callable[[], object], what: str, timeout_s: float = 30.0) -> None:
    """Return once ``check()`` is true; fail the test naming ``what`` if it is not within
    ``timeout_s`` (a bound for a slow machine, not a measure: it is looked at every 50 ms)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what}")
        time.sleep(0.05)
