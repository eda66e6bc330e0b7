"""The ``swarm`` command line: a thin face over the core (parse, call, render).

Exit codes: 0 ok, 1 error, 2 usage, 3 nothing to claim or timed out.
"""

from __future__ import annotations

from ._app import main

# Each module below adds its commands to ``main`` when imported.
from . import _server  # noqa: F401  isort: skip
from . import _acl  # noqa: F401  isort: skip

__all__ = ["main"]
