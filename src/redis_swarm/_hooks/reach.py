"""How a hook reaches the swarm: failing fast.

A client runs a hook at every event of a session (every prompt the user submits, every stop),
and the user waits for it. The core's retries ride out a server that restarts (about 5 s of
pauses, a failover's 53 s for Sentinel and Cluster URLs), which is right for a worker that
must not lose its report, but a hook that cannot reach the swarm only makes the session carry
on without it (exit 1, one line): every turn then cost the user 2 to 5 s. A hook's handle
tries for well under a second instead; every other face keeps the URL's retries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._config import Settings

if TYPE_CHECKING:  # (the caller brings redis-py; importing it here would cost every hook)
    from .._client import Swarm

__all__ = ["HOOK_CONNECT_TIMEOUT_S", "HOOK_RETRIES", "hook_settings", "hook_swarm"]

# A connect (and its TLS handshake) that takes longer is a host gone from the network: a LAN
# answers in milliseconds, a far server's handshake in a few round trips. Two retries pause
# 0.3 s at most (_config.retry_window): a refused connection is a server that is down.
HOOK_CONNECT_TIMEOUT_S = 1.0
HOOK_RETRIES = 2


def hook_settings(settings: Settings) -> Settings:
    """``settings`` with the hooks' short connect timeout and few retries (never longer or
    more than the URL's own)."""
    retries = min(settings.retries, HOOK_RETRIES)
    return settings.replace(
        connect_timeout=min(settings.connect_timeout, HOOK_CONNECT_TIMEOUT_S),
        retries=retries,
        none_answered_retries=min(settings.none_answered_retries, retries),
    )


def hook_swarm(settings: Settings) -> Swarm:
    """The handle a hook works with: ``settings``, failing fast (``hook_settings``)."""
    from .._client import Swarm

    return Swarm(hook_settings(settings))
