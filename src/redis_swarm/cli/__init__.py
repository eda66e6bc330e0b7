"""The ``swarm`` command line: a thin face over the core (parse, call, render).

Exit codes: 0 ok, 1 error, 2 usage, 3 nothing to claim or timed out.
"""

from __future__ import annotations

import importlib
import pkgutil

from ._app import main

# Every private module of this package adds its commands to ``main`` when imported.
for _module in pkgutil.iter_modules(__path__):
    if _module.name.startswith("_") and _module.name != "_app":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["main"]
