"""Translate redis-py errors into SwarmErrors at the boundary."""

from __future__ import annotations

import redis.exceptions as rex

from . import _errors as e

__all__ = ["translate"]

# Scripts report refusals as error replies "CODE message"; the code picks the class.
_SCRIPT_CODES: dict[str, type[e.SwarmError]] = {
    "SWARM_NOTFOUND": e.NotFound,
    "SWARM_CONFLICT": e.Conflict,
    "SWARM_LEASELOST": e.LeaseLost,
    "SWARM_INVALIDSTATE": e.InvalidState,
    "SWARM_INVALID": e.ValidationError,
    "SWARM_TOOLARGE": e.PayloadTooLarge,
}


def translate(exc: BaseException, where: str) -> e.SwarmError:
    """The SwarmError for a redis-py error raised while talking to ``where`` (a masked URL)."""
    if isinstance(exc, e.SwarmError):
        return exc
    if isinstance(exc, UnicodeEncodeError):
        # Raised while encoding a request, before anything is sent: nothing was stored.
        bad = exc.object[exc.start : exc.end] if isinstance(exc.object, str) else "?"
        around = (
            exc.object[max(0, exc.start - 20) : exc.start] if isinstance(exc.object, str) else ""
        )
        return e.ValidationError(
            f"a text holds {bad!r} after {around!r}, which is not valid Unicode (a lone "
            "surrogate, often from bytes decoded with errors='surrogateescape'): fix the text, "
            "e.g. with .encode('utf-8', 'replace').decode()"
        )
    text = str(exc).strip()
    if isinstance(exc, rex.NoPermissionError) or text.startswith("NOPERM"):
        return e.PermissionDenied(
            f"the Redis user may not do this on {where} ({text}): "
            "use a user with the right role (see 'swarm acl')"
        )
    if isinstance(exc, rex.AuthenticationError | rex.AuthenticationWrongNumberOfArgsError) or (
        text.startswith(("NOAUTH", "WRONGPASS"))
    ):
        return e.PermissionDenied(
            f"authentication failed on {where}: check the user name and password in the URL"
        )
    if isinstance(exc, rex.ConnectionError | rex.TimeoutError):
        return e.ConnectionFailed(
            f"cannot reach Redis at {where}: {text or type(exc).__name__}; "
            "check that the server runs and the URL is right ('swarm doctor' tells more)"
        )
    if isinstance(exc, rex.InvalidResponse):
        return e.ConnectionFailed(
            f"the server at {where} does not speak Redis ({text}): check the host and port"
        )
    if isinstance(exc, rex.ResponseError):
        code, _, message = text.partition(" ")
        # Script errors arrive wrapped ("... script: ..., SWARM_X msg") on some versions.
        for known, cls in _SCRIPT_CODES.items():
            if code == known:
                return cls(message)
            if known + " " in text:
                return cls(text.split(known + " ", 1)[1])
        if text.startswith("OOM"):
            return e.ConnectionFailed(
                f"Redis at {where} is out of memory ({text}): raise maxmemory or free data"
            )
        if text.startswith("READONLY"):
            return e.ConnectionFailed(
                f"Redis at {where} is a read-only replica: point the URL at the master"
            )
    return e.SwarmError(f"Redis at {where} answered an error: {text or type(exc).__name__}")
