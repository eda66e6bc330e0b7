"""Every Lua script, loaded from ``lua/`` and prefixed with ``lua/_prelude.lua``; and how a
handle calls them: as functions of one Redis Functions library (Redis >= 7.0), or by EVALSHA.

Each script file starts with a KEYS/ARGV header comment. Scripts receive every key through
KEYS and never build one, so they are correct on a Redis Cluster. A line ``--#include _NAME``
pulls in ``lua/_NAME.lua`` (helpers shared by the scripts of one area) after the prelude. A
header line ``-- flags: no-writes`` marks a script that never writes (it runs as FCALL_RO,
and ``durability="strict"`` does not wait after it).

**The library** (``LIBRARY``, built here from the same files: one place per script). Each
script becomes the function ``rs_<script>`` of the library ``redis_swarm``: a generated
wrapper whose body is the script's own file, ``KEYS`` and ``ARGV`` its parameters. The
prelude and the included helpers are defined once, at the top of the library, when it is
loaded: inside the wrapper they would be made again by every call (some 40 closures for a
task script, about as much server work as the rest of the call outside its commands).
Helpers therefore never read ``KEYS`` or ``ARGV``: a script passes them what they need. The
library's version is a hash of its sources. Every call passes the version its caller expects
as its first argument; a library of another version answers ``RS_STALE_LIBRARY`` (and a
missing one ``Function not found``) without running anything, so a stale or missing library
costs no round trip until it is met. Whoever may (``swarm up``, ``swarm acl --apply``,
``Swarm.load_functions()``, any handle whose user has ``FUNCTION LOAD``) then loads it with
``FUNCTION LOAD REPLACE`` and sends the calls again; a user without that right (a worker) gets
PermissionDenied saying to run ``swarm up`` as an admin, or, when the server holds another
version (``held_version`` reads it from the stale reply), that another redis-swarm loaded it.
On a cluster FUNCTION LOAD goes to every master (replicas get it by replication; a new master
that lacks it is met the same way).

Why Functions: a user allowed EVAL can run any Lua, including a script that never ends and
cannot be killed once it wrote; a user allowed only FCALL runs the swarm's own code and no
other. Where Functions do not exist (Redis 6.2, some managed services), a handle falls back
to EVALSHA at the first ``unknown command`` reply, and loads scripts with SCRIPT LOAD on
NOSCRIPT, as before.

**For the ACL roles**: ``function_name``, ``FUNCTIONS`` (every function name) and
``READ_ONLY_SCRIPTS`` / ``READ_ONLY_FUNCTIONS`` (those called with FCALL_RO) are the one
place that says what the library holds; ``_acl`` builds the roles' ``+fcall|rs_...`` rules
from them.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

__all__ = [
    "FUNCTIONS",
    "LIBRARY",
    "LOAD_AS_ADMIN",
    "NO_FUNCTIONS",
    "READ_ONLY_FUNCTIONS",
    "READ_ONLY_SCRIPTS",
    "STALE_LIBRARY",
    "Library",
    "code_version",
    "evalsha",
    "fcall",
    "function_name",
    "held_version",
    "helpers_source",
    "library",
    "script_body",
    "script_names",
    "script_sha",
    "script_source",
]

LIBRARY = "redis_swarm"
# The error code of a call that reached a library of another version (see the docstring).
STALE_LIBRARY = "RS_STALE_LIBRARY"
# What a server without Functions (Redis < 7.0, a managed service without them) answers
# FUNCTION or FCALL: the client falls back to EVALSHA, and no other error is read into it.
NO_FUNCTIONS = re.compile(r"unknown command .(FUNCTION|FCALL(_RO)?).", re.IGNORECASE)
# How the library gets loaded when a user may not load it (a worker's call that met it
# missing says so, and ``swarm doctor``'s row).
LOAD_AS_ADMIN = "run 'swarm up' (or 'swarm acl --apply') with an admin user, which loads it"

_INCLUDE = re.compile(r"^--#include (_\w+)\s*$", re.MULTILINE)
_FLAGS = re.compile(r"^-- flags: ([\w, -]+)$", re.MULTILINE)


def _read(name: str) -> str:
    return (resources.files(__package__) / "lua" / f"{name}.lua").read_text()


@functools.cache
def script_body(name: str) -> str:
    """The script's own file (its helpers, the prelude and its includes, left out)."""
    path = resources.files(__package__) / "lua" / f"{name}.lua"
    if not path.is_file():
        raise KeyError(f"no Lua script named {name!r}")
    return path.read_text()


@functools.cache
def script_source(name: str) -> str:
    """The full source of script ``name`` (prelude and includes first): what EVALSHA runs."""
    body = script_body(name)
    parts = [_read("_prelude")]
    parts += [_read(include) for include in _INCLUDE.findall(body)]
    return "\n".join([*parts, body])


@functools.cache
def script_names() -> list[str]:
    folder = resources.files(__package__) / "lua"
    return sorted(
        p.name[:-4]
        for p in folder.iterdir()
        if p.name.endswith(".lua") and not p.name.startswith("_")
    )


def _flags(name: str) -> list[str]:
    """The flags of the script's header line (its own file's: neither the prelude nor an
    include has one)."""
    found = _FLAGS.search(script_body(name))
    return [f.strip() for f in found[1].split(",")] if found else []


def function_name(script: str) -> str:
    """The library function that runs ``script``."""
    return f"rs_{script}"


# Scripts that never write, and the library's functions: computed from lua/ at first use, not
# at import (every handle imports this module; a `swarm hook` that never reaches its server,
# or sends no script, reads no Lua file).
@functools.cache
def _read_only_scripts() -> frozenset[str]:
    return frozenset(n for n in script_names() if "no-writes" in _flags(n))


_COMPUTED: dict[str, Callable[[], object]] = {
    "READ_ONLY_SCRIPTS": _read_only_scripts,
    "FUNCTIONS": lambda: tuple(function_name(n) for n in script_names()),
    "READ_ONLY_FUNCTIONS": lambda: frozenset(function_name(n) for n in _read_only_scripts()),
}

if TYPE_CHECKING:
    READ_ONLY_SCRIPTS: frozenset[str]
    FUNCTIONS: tuple[str, ...]
    READ_ONLY_FUNCTIONS: frozenset[str]
else:  # (to the type checker, an unknown name stays an error)

    def __getattr__(name: str) -> object:
        compute = _COMPUTED.get(name)
        if compute is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = globals()[name] = compute()  # bound now: the next use is a plain lookup
        return value


@functools.cache
def script_sha(name: str) -> str:
    """The SHA1 EVALSHA names script ``name`` by."""
    return hashlib.sha1(script_source(name).encode()).hexdigest()


@dataclass(frozen=True)
class Library:
    """The Redis Functions library of every script, and its version."""

    source: str
    version: str


# The wrapper of each script: a stale caller is refused before anything runs; the version
# argument is removed, so the script sees the ARGV it always saw.
_FUNCTION = """\
local function {fn}(KEYS, ARGV)
  if ARGV[1] ~= VERSION then return stale(ARGV[1]) end
  table.remove(ARGV, 1)
{source}
end
redis.register_function{{function_name='{fn}', callback={fn}, flags={{{flags}}}}}
"""
_HEAD = """\
#!lua name={library}
local VERSION = '{version}'
local function stale(wanted)
  return redis.error_reply('{stale} the {library} library on this server is version ' ..
    VERSION .. ', the caller expects ' .. tostring(wanted))
end
"""


# What a stale reply says the server holds: written by _HEAD, of this redis-swarm or another.
_HELD = re.compile(rf"^{STALE_LIBRARY} the {LIBRARY} library on this server is version ([^\s,]+),")


# The version line of a library's code, as _HEAD writes it (FUNCTION LIST ... WITHCODE).
_CODE_VERSION = re.compile(r"^local VERSION = '([^']*)'", re.MULTILINE)


def code_version(code: str) -> str | None:
    """The version of a library's code as the server lists it (None: no version line)."""
    found = _CODE_VERSION.search(code)
    return found.group(1) if found else None


def held_version(reply: str) -> str | None:
    """The library version a server holds, read from its ``RS_STALE_LIBRARY`` reply (None:
    another reply, a missing library's ``Function not found`` included)."""
    found = _HELD.match(reply)
    return found[1] if found else None


def helpers_source() -> str:
    """The library's helpers: the prelude, then every file a script includes (each once, in
    the order first met)."""
    names = ["_prelude"]
    for name in script_names():
        for include in _INCLUDE.findall(script_body(name)):
            if include not in names:
                names.append(include)
    return "\n".join(_read(name) for name in names)


@functools.cache
def library() -> Library:
    """The library of every script in ``lua/``, versioned by a hash of what it holds."""
    helpers = helpers_source()
    functions = "".join(
        _FUNCTION.format(
            fn=function_name(name),
            source=script_body(name),
            flags=", ".join(f"'{flag}'" for flag in _flags(name)),
        )
        for name in script_names()
    )
    functions = helpers + "\n" + functions
    version = hashlib.sha1(functions.encode()).hexdigest()[:16]
    head = _HEAD.format(library=LIBRARY, version=version, stale=STALE_LIBRARY)
    return Library(head + functions, version)


def fcall(script: str, keys: tuple[str, ...], args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The FCALL (FCALL_RO for a read-only script) of a script of the current library."""
    command = "FCALL_RO" if script in _read_only_scripts() else "FCALL"
    fn = function_name(script)
    return (command, fn, len(keys), *keys, library().version, *args)


def evalsha(script: str, keys: tuple[str, ...], args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The EVALSHA of a script (where Functions do not exist)."""
    return ("EVALSHA", script_sha(script), len(keys), *keys, *args)
