"""Every Lua script, loaded from ``lua/`` and prefixed with ``lua/_prelude.lua``.

Each script file starts with a KEYS/ARGV header comment. Scripts receive every key through
KEYS and never build one, so they are correct on a Redis Cluster; they run by EVALSHA
(redis-py ``register_script``), loaded once per connection pool.
"""

from __future__ import annotations

import functools
from importlib import resources

__all__ = ["script_names", "script_source"]


@functools.cache
def _prelude() -> str:
    return (resources.files(__package__) / "lua" / "_prelude.lua").read_text()


@functools.cache
def script_source(name: str) -> str:
    """The full source of script ``name`` (prelude included)."""
    path = resources.files(__package__) / "lua" / f"{name}.lua"
    if not path.is_file():
        raise KeyError(f"no Lua script named {name!r}")
    return _prelude() + "\n" + path.read_text()


def script_names() -> list[str]:
    folder = resources.files(__package__) / "lua"
    return sorted(
        p.name[:-4]
        for p in folder.iterdir()
        if p.name.endswith(".lua") and not p.name.startswith("_")
    )
