"""How a hook reaches the swarm: failing fast.

A client runs a hook at every event of a session (every prompt the user submits, every stop),
and the user waits for it. The core's retries ride out a server that restarts (about 5 s of
pauses, a failover's 53 s for Sentinel and Cluster URLs), which is right for a worker that
must not lose its report, but a hook that cannot reach the swarm only makes the session carry
on without it (exit 1, one line): every turn then cost the user 2 to 5 s. A hook's handle
tries once instead (the session's next event is its next try), and takes a server that
accepts connections but does not answer (a stopped process, a paused one) for down within a
second, not the URL's 10 s; SessionEnd, which Claude Code gives 1.5 s in all (Python's
start-up and imports take 0.4 s or more of them), within a third of a second
(``SESSION_END_TIMEOUT_S``). Every other face keeps the URL's retries and timeouts. What it
says of the swarm names the URL as the user gave it (``Settings.with_timeouts``), never with
the hook's own options, which a user copying it into SWARM_URL would hand every other face. A
request whose reply did not come (``ConnectionFailed.sent``: within the socket timeout, or the
connection closed) is said as that (``not_answered``): the server took it and is busy or
paused, not unreachable, and a write it was sent may still run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._config import Settings
from .._env import DOCTOR_TELLS_MORE
from .._errors import ConnectionFailed

if TYPE_CHECKING:  # (the caller brings redis-py; importing it here would cost every hook)
    from .._client import Swarm

__all__ = [
    "HOOK_CONNECT_TIMEOUT_S",
    "HOOK_RETRIES",
    "HOOK_SOCKET_TIMEOUT_S",
    "SESSION_END_TIMEOUT_S",
    "hook_settings",
    "hook_swarm",
    "not_answered",
]

# A connect (and its TLS handshake) that takes longer is a host gone from the network: a LAN
# answers in milliseconds, a far server's handshake in a few round trips. No retry: a refused
# connection is a server that is down, and no pause a hook can afford brings it back (a
# restart takes longer than the 0.3 s two retries paused); a hook's process is new at each
# event, so no pooled connection of it can have gone stale either. The next event tries again.
HOOK_CONNECT_TIMEOUT_S = 1.0
HOOK_RETRIES = 0
# A reply that takes longer is a server that does not answer (a hook's requests are small:
# a local server answers in a millisecond, a far one in a few round trips). No attempt is
# made again, so a request fails within about connect + socket timeout. A strict URL's
# writes wait up to WAIT_MS for a replica or the disk, which is not a hang: that is added
# (not for SessionEnd's, whose whole time is shorter than that wait).
HOOK_SOCKET_TIMEOUT_S = 1.0
# SessionEnd's connect and socket timeouts: Claude Code gives its session-end hooks 1.5 s in
# all, of which Python's start-up and imports take about half a second on a machine with a
# load of 3 to 6 (more when it is busier); a paused server then fails the hook in about 0.8 to
# 1.2 s (docs/live.md has the figures measured). A
# far server's TLS handshake (two round trips of up to 100 ms) still fits, and a SessionEnd
# that fails costs little: its agent goes stale as its signs of life stop.
SESSION_END_TIMEOUT_S = 0.3
# The events whose hook gets SessionEnd's timeouts (the names ``formats.canonical_event`` gives).
_ENDING_EVENTS = ("SessionEnd",)


def hook_settings(settings: Settings, event: str = "") -> Settings:
    """``settings`` with the hooks' short timeouts and no retries (never longer or more than
    the URL's own); ``event`` (canonical) ``SessionEnd``: its shorter ones
    (``SESSION_END_TIMEOUT_S``)."""
    from .._durability import WAIT_MS  # (here: it brings redis-py, which `swarm --help` skips)

    retries = min(settings.retries, HOOK_RETRIES)
    if event in _ENDING_EVENTS:
        connect = replies = SESSION_END_TIMEOUT_S
    else:
        connect = HOOK_CONNECT_TIMEOUT_S
        replies = HOOK_SOCKET_TIMEOUT_S
        replies += WAIT_MS / 1000 if settings.durability == "strict" else 0.0
    return settings.with_timeouts(  # (shown as given: errors name the user's URL)
        connect_timeout=min(settings.connect_timeout, connect),
        socket_timeout=min(settings.socket_timeout, replies),
        retries=retries,
        none_answered_retries=min(settings.none_answered_retries, retries),
    )


def hook_swarm(settings: Settings, event: str = "") -> Swarm:
    """The handle a hook of ``event`` works with: ``settings``, failing fast
    (``hook_settings``)."""
    from .._client import Swarm

    return Swarm(hook_settings(settings, event))


def not_answered(
    exc: ConnectionFailed, settings: Settings, then: str = ""
) -> ConnectionFailed | None:
    """``exc`` (an error of the handle ``hook_swarm(settings)``) said as what it is when the
    server took the request and did not answer it (``exc.sent``): busy (a long script, a fork
    for a save, a slow disk) or paused, not down, so "check that the server runs" would
    mislead (a connection it closed after taking the request is said so too); ``then`` adds
    what that means for the request. Its ``lease_secrets``, ``sent`` and ``retryable`` are
    kept. None for any other failure, a server that could not be reached among them, and
    one no retry fixes (``retryable`` False: a certificate refused after an earlier try
    reached the server): the core's own message says it, and what to fix."""
    if not exc.sent or not exc.retryable:
        return None
    hook = hook_settings(settings)
    return ConnectionFailed(
        f"the Redis server at {hook.url} did not answer within {hook.socket_timeout:g} s: it "
        "may be busy (a long script, a fork for a save) or paused (or it closed the connection "
        "after taking the request: stopping or restarting), and a hook waits no longer (the "
        f"session waits for it){then}; if it keeps happening, check the server's load "
        f"({DOCTOR_TELLS_MORE})",
        lease_secrets=exc.lease_secrets,
        sent=exc.sent,
        retryable=exc.retryable,
    )
