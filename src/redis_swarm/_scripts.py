"""Every Lua script, loaded from ``lua/`` and prefixed with ``lua/_prelude.lua``.

Each script file starts with a KEYS/ARGV header comment. Scripts receive every key through
KEYS and never build one, so they are correct on a Redis Cluster; they run by EVALSHA
(redis-py ``register_script``), loaded once per connection pool. A line ``--#include _NAME``
pulls in ``lua/_NAME.lua`` (helpers shared by the scripts of one area) after the prelude.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

__all__ = ["script_names", "script_source"]

_INCLUDE = re.compile(r"^--#include (_\w+)\s*$", re.MULTILINE)


@functools.cache
def _prelude() -> str:
    return (resources.files(__package__) / "lua" / "_prelude.lua").read_text()


@functools.cache
def script_source(name: str) -> str:
    """The full source of script ``name`` (prelude included)."""
    path = resources.files(__package__) / "lua" / f"{name}.lua"
    if not path.is_file():
        raise KeyError(f"no Lua script named {name!r}")
    body = path.read_text()
    parts = [_prelude()]
    for include in _INCLUDE.findall(body):
        parts.append((resources.files(__package__) / "lua" / f"{include}.lua").read_text())
    return "\n".join([*parts, body])


def script_names() -> list[str]:
    folder = resources.files(__package__) / "lua"
    return sorted(
        p.name[:-4]
        for p in folder.iterdir()
        if p.name.endswith(".lua") and not p.name.startswith("_")
    )
