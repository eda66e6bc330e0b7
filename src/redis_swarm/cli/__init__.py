"""The ``swarm`` command line: a thin face over the core (parse, call, render).

Exit codes: 0 ok, 1 error, 2 usage, 3 nothing to claim or timed out, 141 standard output
closed by its reader (as git or grep killed by SIGPIPE).
"""

from __future__ import annotations

from ._app import main

# Which private module of this package adds which commands to ``main``. A command's module is
# imported when the command runs, and only it: `swarm hook`, which a client runs at every
# turn, and the commands agents run do not load the dashboard, the runner or A2A (the imports
# were most of their time). tests/test_cli_lazy.py checks this against what each module adds.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "_a2a": ("a2a",),
    "_acl": ("acl",),
    "_agents": ("agents", "status"),
    "_ask": ("ask", "serve"),
    "_bench": ("bench",),
    "_contexts": ("context", "gc"),
    "_dashboard": ("dashboard", "watch"),
    "_demo": ("demo",),
    "_events": ("events",),
    "_findings": ("findings", "synth"),
    "_hooks": ("hook", "hooks"),
    "_mcp": ("mcp",),
    "_messages": ("msg",),
    "_pipeline": ("lineage", "pipeline"),
    "_prompt": ("prompt",),
    "_retire": ("retire",),
    "_run": ("run",),
    "_server": ("doctor", "down", "up"),
    "_tasks": ("task",),
}
main.lazy = {
    name: f"{__name__}.{module}" for module, names in COMMAND_MODULES.items() for name in names
}

__all__ = ["COMMAND_MODULES", "main"]
