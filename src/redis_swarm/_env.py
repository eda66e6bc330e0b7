"""The swarm a program's environment names: ``SWARM_URL``, ``SWARM_NAME``, ``SWARM_HOME``;
and the agent it runs as, ``SWARM_AGENT`` (``agent_from_env``, which the faces ask).

The library's constructors never read the environment (``Swarm()`` is the default embedded
swarm whatever the shell says): a face, or a program that means "the swarm I was started
for" (an agent of ``swarm run``, a hook, a script beside the CLI), asks for it by calling
``settings_from_env`` (``Swarm.from_env()``), so that one place reads the three variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ._config import DEFAULT_HOME, Settings, swarm_from_env

__all__ = ["ENV_AGENT", "ENV_HOME", "ENV_NAME", "ENV_URL", "agent_from_env", "settings_from_env"]

ENV_URL = "SWARM_URL"
ENV_NAME = "SWARM_NAME"
ENV_HOME = "SWARM_HOME"
ENV_AGENT = "SWARM_AGENT"


def settings_from_env(
    env: Mapping[str, str] | None = None,
    *,
    url: str | None = None,
    swarm: str | None = None,
    home: str | Path | None = None,
) -> Settings:
    """The Settings ``env`` (default: this process's environment) names; ``url``, ``swarm``
    and ``home`` given win over it. Unset: the embedded server, the swarm ``default``, the
    default home. ``SWARM_NAME`` set but empty is refused (a mistake, not a choice); a bad
    ``SWARM_URL`` raises ConfigError naming what is wrong."""
    environ = os.environ if env is None else env
    return Settings.from_url(
        url or environ.get(ENV_URL) or "embedded",
        swarm=swarm or swarm_from_env(environ.get(ENV_NAME)),
        home=Path(home or environ.get(ENV_HOME) or DEFAULT_HOME).expanduser(),
    )


def agent_from_env() -> str | None:
    """The caller's agent name from SWARM_AGENT (read by the faces only); unset or empty:
    None."""
    return os.environ.get(ENV_AGENT) or None
