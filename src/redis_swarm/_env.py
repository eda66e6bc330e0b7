"""The swarm a program's environment names: ``SWARM_URL``, ``SWARM_NAME``, ``SWARM_HOME``;
the agent it runs as, ``SWARM_AGENT`` (``agent_from_env``, which the faces ask); and where
the CLI keeps the contexts it read, ``SWARM_CONTEXT_CACHE`` and ``SWARM_CONTEXT_CACHE_BYTES``
(``context_cache_from_env``).

The library's constructors never read the environment (``Swarm()`` is the default embedded
swarm whatever the shell says): a face, or a program that means "the swarm I was started
for" (an agent of ``swarm run``, a hook, a script beside the CLI), asks for it by calling
``settings_from_env`` (``Swarm.from_env()``), so that one place reads the three variables.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ._config import DEFAULT_HOME, DEFAULT_SWARM, Settings
from ._errors import ConfigError
from ._validate import not_ascii_number

__all__ = [
    "CHECK_SWARM",
    "CONTEXT_CACHE_DIR",
    "DOCTOR_TELLS_MORE",
    "ENV_AGENT",
    "ENV_CONTEXT_CACHE",
    "ENV_CONTEXT_CACHE_BYTES",
    "ENV_HOME",
    "ENV_NAME",
    "ENV_TASK_ID",
    "ENV_TASK_TOKEN",
    "ENV_URL",
    "URL_FROM_ENV_OPTION",
    "ContextCacheSpec",
    "agent_from_env",
    "context_cache_from_env",
    "env_value",
    "require_url_in_env",
    "run_task_id",
    "run_task_token",
    "settings_from_env",
]

ENV_URL = "SWARM_URL"
ENV_NAME = "SWARM_NAME"
# Said of a user refused the keys of the swarm in use (a key refused, swarm doctor): a URL used
# with another swarm's name, or with none (SWARM_NAME unset is swarm 'default'). Not one of
# ``_hints``: every face is started with --swarm / SWARM_NAME, so each says it as it stands.
# (Here, not in _translate: the CLI's --help must not import redis-py.)
CHECK_SWARM = (
    f"check --swarm / {ENV_NAME} (a user made by 'swarm acl' works on the one swarm it was "
    "made for)"
)
# Said of a server that cannot be reached or cannot write (_translate): the doctor, which
# meets the same failure, reports the rest of the message without it. Not one of ``_hints``
# either: a face that cannot run commands words the connection error its own way. (Here, not
# in _translate, for the same reason as CHECK_SWARM.)
DOCTOR_TELLS_MORE = "'swarm doctor' tells more"
ENV_HOME = "SWARM_HOME"
ENV_AGENT = "SWARM_AGENT"
ENV_CONTEXT_CACHE = "SWARM_CONTEXT_CACHE"
ENV_CONTEXT_CACHE_BYTES = "SWARM_CONTEXT_CACHE_BYTES"
# The task swarm run gave its agent, and the token of its lease (``run_task_token``).
ENV_TASK_ID = "SWARM_TASK_ID"
ENV_TASK_TOKEN = "SWARM_TASK_TOKEN"

# The CLI's disk cache of context versions: this folder of the swarm home (its bound: the
# cache's own default, _cache.DEFAULT_DISK_BYTES, unless SWARM_CONTEXT_CACHE_BYTES says).
CONTEXT_CACHE_DIR = "context-cache"
_OFF = frozenset({"0", "off", "no", "false", "none"})
# ASCII digits only (a bare \d takes the Arabic-Indic "١٠" too, which int reads as 10).
_SIZE = re.compile(r"(\d+)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE | re.ASCII)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_UNIT_LETTERS = [unit.upper() for unit in _UNITS if unit]
_UNIT_NAMES = ", ".join(_UNIT_LETTERS)
_SIZES = (
    f"give bytes, or a number with {', '.join(_UNIT_LETTERS[:-1])} or {_UNIT_LETTERS[-1]} "
    "(binary: 512M, 2GiB), or 0 for no disk cache"
)
# The number a size begins with, in any script's digits (told apart from its unit).
_NUMBER = re.compile(r"\s*\d[\d_]*")


def settings_from_env(
    env: Mapping[str, str] | None = None,
    *,
    url: str | None = None,
    swarm: str | None = None,
    home: str | Path | None = None,
) -> Settings:
    """The Settings ``env`` (default: this process's environment) names; ``url``, ``swarm``
    and ``home`` given win over it. Unset: the embedded server, the swarm ``default``, the
    default home. Any of the three set but empty is refused (``env_value``); a bad
    ``SWARM_URL`` raises ConfigError naming what is wrong."""
    environ = os.environ if env is None else env
    if not url:
        url = env_value(ENV_URL, environ) or "embedded"
    if not swarm:
        swarm = env_value(ENV_NAME, environ) or DEFAULT_SWARM
    return Settings.from_url(
        url,
        swarm=swarm,
        home=Path(home or env_value(ENV_HOME, environ) or DEFAULT_HOME).expanduser(),
    )


# What each variable of the swarm names, and what leaving it unset means: said when it is set
# but empty (``env_value``).
_NAMES = {
    ENV_URL: ("the swarm's Redis URL", "the embedded server"),
    ENV_NAME: ("the swarm's name", f"the default swarm {DEFAULT_SWARM!r}"),
    ENV_HOME: ("a folder", f"the default home {str(DEFAULT_HOME)!r}"),
}


def env_value(variable: str, env: Mapping[str, str] | None = None) -> str | None:
    """The value of ``variable`` (SWARM_URL, SWARM_NAME or SWARM_HOME) in ``env`` (default:
    this process's environment), None when it is unset. Set but empty (or blank) it is
    refused with ConfigError, for each of the three alike: a mistake (an export of a
    variable never filled in), not a choice, which read as unset would reach another swarm
    than the one meant (the embedded server, the default home)."""
    value = (os.environ if env is None else env).get(variable)
    if value is not None and not value.strip():
        names, unset = _NAMES[variable]
        raise ConfigError(
            f"{variable} is set but empty: set it to {names}, or unset it to use {unset}"
        )
    return value


# The option of `swarm mcp` and `swarm hook` that makes them refuse to start without SWARM_URL
# in their environment (what their installs write when the URL holds a password).
URL_FROM_ENV_OPTION = "--url-from-env"


def require_url_in_env(who: str, installed_by: str) -> None:
    """For ``--url-from-env`` (what ``swarm mcp install`` and ``swarm hooks install`` write
    when the URL holds a password, left out of the client's settings): ConfigError when
    SWARM_URL is unset or empty in ``who``'s environment. A client passes an unset variable
    on as nothing (Codex) or "" (Gemini CLI); read as no URL, it would reach the embedded
    swarm, not the one meant."""
    if not os.environ.get(ENV_URL, "").strip():
        raise ConfigError(
            f"{ENV_URL} is not set in {who}'s environment: `{installed_by}` configured it to "
            f"take the URL from the client's own environment (a URL with a password is kept "
            f"out of the client's settings), so it reaches no swarm. Set {ENV_URL} (e.g. "
            f"export SWARM_URL='rediss://user:password@host:6380') in the shell that starts "
            "the client (claude, codex, gemini), then start it again"
        )


def run_task_id(env: Mapping[str, str] | None = None) -> str | None:
    """The task swarm run gave the agent it started (``SWARM_TASK_ID``; None: unset or empty)."""
    return (os.environ if env is None else env).get(ENV_TASK_ID) or None


def run_task_token(task_id: str, env: Mapping[str, str] | None = None) -> str | None:
    """The token of the lease on ``task_id`` that swarm run gave its agent
    (``SWARM_TASK_TOKEN``), when ``SWARM_TASK_ID`` names that task: the token is its own
    task's, and a shell that ran as the agent may have kept both, so another task never
    gets it. None otherwise (either unset or empty)."""
    environ = os.environ if env is None else env
    if environ.get(ENV_TASK_ID) != task_id:
        return None
    return environ.get(ENV_TASK_TOKEN) or None


def agent_from_env() -> str | None:
    """The caller's agent name from SWARM_AGENT (read by the faces only); unset or empty:
    None."""
    return os.environ.get(ENV_AGENT) or None


@dataclass(frozen=True)
class ContextCacheSpec:
    """Where the CLI keeps the context versions it read (None: in memory only, as the
    library does), and how many bytes of files at most."""

    directory: Path | None
    max_bytes: int


def context_cache_from_env(home: Path, env: Mapping[str, str] | None = None) -> ContextCacheSpec:
    """The disk cache ``SWARM_CONTEXT_CACHE`` names: unset or empty, ``HOME/context-cache``
    (``home``: the swarm home); ``0``, ``off``, ``no``, ``false`` or ``none``, no disk cache;
    else the folder it names. ``SWARM_CONTEXT_CACHE_BYTES`` bounds it (bytes, or with a
    binary unit: ``512M``, ``2GiB``; default 1 GiB; ``0``: no disk cache). A bad size raises
    ConfigError naming the variable."""
    environ = os.environ if env is None else env
    size = _cache_bytes(environ.get(ENV_CONTEXT_CACHE_BYTES, "").strip())
    where = environ.get(ENV_CONTEXT_CACHE, "").strip()
    if where.lower() in _OFF or size == 0:
        return ContextCacheSpec(None, size)
    directory = Path(where).expanduser().absolute() if where else home / CONTEXT_CACHE_DIR
    return ContextCacheSpec(directory, size)


def _cache_bytes(value: str) -> int:
    if not value:
        from ._cache import DEFAULT_DISK_BYTES  # (the cache's own; loaded with it anyway)

        return DEFAULT_DISK_BYTES
    said = f"{ENV_CONTEXT_CACHE_BYTES}={value[:40]!r}"
    # Only the number is held to ASCII digits: a unit that is not one ('512 МБ', in Cyrillic)
    # is said as such, its digits being fine.
    number = _NUMBER.match(value)
    if number is not None and not_ascii_number(said, number[0]) is not None:
        raise ConfigError(f"{not_ascii_number(said, value)}; {_SIZES}")  # (its unit kept)
    match = _SIZE.fullmatch(value)
    if match is None:
        unit = value[number.end() :].strip() if number is not None else ""
        if unit and not any(ch.isdigit() for ch in unit):
            raise ConfigError(
                f"{said} is not a size: {unit!r} is not one of {_UNIT_NAMES}; {_SIZES}"
            )
        raise ConfigError(f"{said} is not a size: {_SIZES}")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]
