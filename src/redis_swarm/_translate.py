"""Translate redis-py errors into SwarmErrors at the boundary."""

from __future__ import annotations

import re

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
        return _not_unicode(exc)
    text = str(exc).strip()
    if (
        isinstance(exc, rex.NoPermissionError)
        or text.startswith("NOPERM")
        or "user executing the script can't" in text
    ):
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
    if isinstance(exc, rex.ConnectionError | rex.TimeoutError | OSError):
        return _unreachable(exc, text, where)
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


def _not_unicode(exc: UnicodeEncodeError) -> e.ValidationError:
    """Raised while encoding a request, before anything is sent: nothing was stored."""
    bad = exc.object[exc.start : exc.end] if isinstance(exc.object, str) else "?"
    around = exc.object[max(0, exc.start - 20) : exc.start] if isinstance(exc.object, str) else ""
    return e.ValidationError(
        f"a text holds {bad!r} after {around!r}, which is not valid Unicode (a lone "
        "surrogate, often from bytes decoded with errors='surrogateescape'): fix the text, "
        "e.g. with .encode('utf-8', 'replace').decode()"
    )


def _unreachable(exc: BaseException, text: str, where: str) -> e.ConnectionFailed:
    """A connection that failed or timed out: TLS trouble named, else what to check."""
    tls = _tls_problem(text, where)
    if tls is not None:
        return e.ConnectionFailed(tls)
    if "reset by peer" in text and where.startswith("redis://"):
        return e.ConnectionFailed(
            f"the server at {where} closed the connection ({text}): if it only speaks TLS "
            "(tls-port), use rediss:// with ssl_ca_certs"
        )
    return e.ConnectionFailed(
        f"cannot reach Redis at {where}: {text or type(exc).__name__}; "
        "check that the server runs and the URL is right ('swarm doctor' tells more)"
    )


_SSL_DETAIL = re.compile(r"certificate verify failed: (.*?)\.? \(_ssl\.c")


def _tls_problem(text: str, where: str) -> str | None:
    """One line naming what to check, for a TLS failure; None when it is not one."""
    low = text.lower()
    if "certificate verify failed" in low:
        match = _SSL_DETAIL.search(text)
        detail = match[1] if match else "certificate verify failed"
        if "mismatch" in low or "hostname" in low:
            return (
                f"TLS to {where} refused: the server's certificate does not name this host "
                f"({detail}): connect by a name or IP the certificate lists (its subjectAltName), "
                "or give the server a certificate for this name"
            )
        if "expired" in low or "not yet valid" in low:
            return (
                f"TLS to {where} refused: the server's certificate is out of date ({detail}): "
                "renew the server certificate (tls-cert-file) or check this machine's clock"
            )
        return (
            f"TLS to {where} refused: certificate verify failed ({detail}): check ssl_ca_certs "
            "in the URL; it must be the CA that signed the server's certificate (tls-cert-file)"
        )
    if "certificate required" in low or (
        "violation of protocol" in low and where.startswith("rediss")
    ):
        return (
            f"TLS to {where} refused: the server requires a client certificate "
            "(tls-auth-clients yes): add ssl_certfile=...&ssl_keyfile=... to the URL"
        )
    if any(f in low for f in ("alert unknown ca", "alert bad certificate", "certificate unknown")):
        return (
            f"TLS to {where} refused: the server rejected the client certificate ({text}): check "
            "ssl_certfile/ssl_keyfile, and that its CA is in the server's tls-ca-cert-file"
        )
    if "wrong version number" in low or "wrong_version_number" in low:
        return (
            f"TLS to {where} failed: the server does not speak TLS on this port ({text}): use "
            "redis:// for a plain port, or the server's tls-port"
        )
    if ("no such file" in low or "errno 2" in low) and where.startswith("rediss"):
        return (
            f"TLS to {where} failed: a certificate or key file in the URL is missing ({text}): "
            "check the ssl_ca_certs, ssl_certfile and ssl_keyfile paths"
        )
    return None
