"""Translate redis-py errors into SwarmErrors at the boundary."""

from __future__ import annotations

import functools
import os
import re
import socket
import ssl as _ssl
import sys
from typing import TYPE_CHECKING, NamedTuple

import redis.exceptions as rex

from . import _errors as e
from ._config import PATH_OPTIONS, SENTINEL_DOCS, Settings
from ._env import CHECK_SWARM, DOCTOR_TELLS_MORE
from ._scripts import NO_FUNCTIONS, function_name

if TYPE_CHECKING:
    from ._ops._commands import Uses

# The roles' rules (``_acl``, with the operations' command table) and what a server's INFO
# says of it (``_ops.server``) are imported by the errors that are said with them, in the
# functions below: every handle imports this module, and `swarm hook` meets none of them.

__all__ = [
    "ENCRYPTED_KEY",
    "HANDSHAKE_TIMEOUT",
    "NO_GOOD_REPLICAS",
    "PASSWORD_AS_USER",
    "RESET_IN_TLS_SETUP",
    "SENT_BEFORE",
    "NoneAnswered",
    "causes",
    "closed_in_tls_setup",
    "encrypted_key",
    "may_have_reached",
    "no_retry_fixes",
    "pool_exhausted",
    "refused_write",
    "timed_out",
    "translate",
    "why_no_answer",
]

# The TLS handshake timed out: the port is a plain one (a Redis server waits for a newline
# that a TLS client never sends) or not the server's tls-port; or the server is paused (a
# stopped process takes connections and answers nothing): a timeout, retried as one.
HANDSHAKE_TIMEOUT = "handshake operation timed out"
# Fragments (lower case) of the text of an error, or of one of its causes, that no retry fixes.
# A certificate or key file of the URL does not load: nothing was sent to any server yet.
_PEM_UNREADABLE = "pem lib"  # ssl_certfile / ssl_keyfile: not PEM, or no key
_KEY_MISMATCH = "key values mismatch"  # ssl_keyfile is not the key of ssl_certfile
_NO_CA_CERTIFICATE = "no certificate or crl found"  # ssl_ca_certs holds no certificate
_A_DIRECTORY = "is a directory"  # any of them
# The client key is encrypted (a pass phrase): OpenSSL would ask for the phrase on the
# terminal ("Enter PEM pass phrase:", at every attempt), then fail with "Error 22 ... Invalid
# argument". A connection refuses it before it loads it (``_connections.refuse_encrypted_key``),
# saying this; the bare failure is read by the file's header (``encrypted_key``).
ENCRYPTED_KEY = "client key is encrypted with a pass phrase"
_INVALID_ARGUMENT = "invalid argument"
TLS_FILE_ERRORS = (
    _PEM_UNREADABLE,
    _KEY_MISMATCH,
    _NO_CA_CERTIFICATE,
    _A_DIRECTORY,
    ENCRYPTED_KEY,
)
# How a PEM file says its private key is encrypted: PKCS#8's own block, or the older
# OpenSSL form's header inside a "BEGIN RSA/EC PRIVATE KEY" block.
_ENCRYPTED_PEM = re.compile(
    rb"-----BEGIN ENCRYPTED PRIVATE KEY-----|^Proc-Type:\s*4,\s*ENCRYPTED", re.MULTILINE
)
# How much of a key file is read for its header (a key, or a certificate chain and its key).
_PEM_READ = 1 << 20
# A TLS 1.2 server's alert for a handshake it will not complete: it requires a client
# certificate and got none (TLS 1.3 says "certificate required" instead), or the two sides
# share no TLS version or cipher. An alert is the server's answer, sent on purpose, not a
# dropped connection: no retry changes it.
HANDSHAKE_FAILURE = "alert handshake failure"
# The alerts of a server that refused the client certificate it was given (OpenSSL's words):
# its answer, sent on purpose. A close without one says nothing of why (a server at its
# maxclients, or restarting, and a proxy's dropped connection close so too): retried. Two
# say what is wrong with the certificate itself: its dates, or its purpose (extendedKeyUsage).
_CLIENT_CERTIFICATE_EXPIRED = "alert certificate expired"
_NOT_FOR_CLIENTS = "alert unsupported certificate"
CERTIFICATE_REFUSED = (
    "alert bad certificate",
    "alert unknown ca",
    "alert certificate unknown",
    _NOT_FOR_CLIENTS,
    "alert certificate revoked",
    _CLIENT_CERTIFICATE_EXPIRED,
    "alert access denied",
)
# Each plain scheme and its TLS twin: a plain URL whose server drops the connection at once
# may name a TLS port (a Redis tls-port closes on the plain client's first bytes).
_TLS_SCHEMES = {
    "redis": "rediss",
    "redis+cluster": "rediss+cluster",
    "redis+sentinel": "rediss+sentinel",
}
# What a plain client reads from a TLS port: the server closed on its first bytes.
_CLOSED_AT_ONCE = "reset by peer"

# What Redis answers a script's HINCRBY of a field that holds no integer (a status counter,
# the posting sequence), and how it marks an error raised inside a script (Redis 7's
# functions, the scripts' only form).
_NOT_AN_INTEGER = "hash value is not an integer"
_SCRIPT_ERROR = "script: "

# Scripts report refusals as error replies "CODE message"; the code picks the class.
_SCRIPT_CODES: dict[str, type[e.SwarmError]] = {
    "SWARM_NOTFOUND": e.NotFound,
    "SWARM_CONFLICT": e.Conflict,
    "SWARM_LEASELOST": e.LeaseLost,
    "SWARM_INVALIDSTATE": e.InvalidState,
    "SWARM_INVALID": e.ValidationError,
    "SWARM_TOOLARGE": e.PayloadTooLarge,
    "SWARM_CORRUPT": e.CorruptRecord,
}


def translate(
    exc: BaseException, where: str, *, swarm: str | None = None, operation: str | None = None
) -> e.SwarmError:
    """The SwarmError for a redis-py error raised while talking to ``where`` (a masked URL);
    ``swarm``: the swarm in use, and ``operation``: the name of the operation (a row of
    ``OPERATIONS``) that sent the request, when known: a refused key is said with them. A
    ConnectionFailed is ``retryable`` unless no retry fixes ``exc`` (``no_retry_fixes``, the
    judgement the client's own retries make too)."""
    if isinstance(exc, e.SwarmError):
        return exc
    error = _translated(exc, where, swarm, operation)
    if error.__cause__ is None:
        # What it was translated from, kept for whoever reads it later (``timed_out``: a
        # translated error thrown back into an operation, which re-raises it, had lost it,
        # so a paused server's timeout was said as a server not running).
        error.__cause__ = exc
    if isinstance(error, e.ConnectionFailed):
        error.retryable = not no_retry_fixes(exc)
    return error


def _translated(
    exc: BaseException, where: str, swarm: str | None, operation: str | None
) -> e.SwarmError:
    if isinstance(exc, UnicodeEncodeError):
        return _not_unicode(exc)
    text = str(exc).strip()
    if isinstance(exc, rex.NoPermissionError) or text.startswith("NOPERM") or _in_script(text):
        return e.PermissionDenied(
            _refused_in_script(text, where) or _not_permitted(text, where, swarm, operation)
        )
    if isinstance(exc, rex.AuthenticationError | rex.AuthenticationWrongNumberOfArgsError) or (
        text.startswith(("NOAUTH", "WRONGPASS"))
    ):
        return e.PermissionDenied(_authentication_failed(where, _node_of(exc)))
    # Each refusal below was answered, or met before anything was sent (the sentinels gave
    # no master to send it to, the pool no connection): this attempt ran nothing, and the
    # request was sent only if an earlier attempt of it was (``_sent_before``).
    before = _sent_before(exc)
    if text.startswith(_NO_MASTER):
        return e.ConnectionFailed(_no_master(exc, text, where), sent=before)
    if isinstance(exc, rex.BusyLoadingError) or text.startswith(_LOADING):
        return e.ConnectionFailed(_loading(where), sent=before)
    if pool_exhausted(exc):
        return e.ConnectionFailed(_pool_exhausted(where), sent=before)
    if isinstance(exc, rex.ConnectionError) and text.startswith(NO_GOOD_REPLICAS):
        # (a Sentinel connection's: the master named where the error carries its connection)
        return e.ConnectionFailed(_too_few_replicas(where, _node_of(exc)), sent=before)
    if isinstance(exc, rex.ConnectionError | rex.TimeoutError | OSError):
        return _unreachable(exc, text, where)
    if isinstance(exc, rex.InvalidResponse):
        # (what is not Redis ran nothing; a Redis server's garbled reply is not known here)
        return e.ConnectionFailed(
            f"the server at {where} does not speak Redis ({text}): check the host and port",
            sent=before,
        )
    if isinstance(exc, rex.ResponseError):
        code, _, message = text.partition(" ")
        # Script errors arrive wrapped ("... script: ..., SWARM_X msg") on some versions.
        for known, cls in _SCRIPT_CODES.items():
            if code == known:
                return cls(message)
            if known + " " in text:
                return cls(text.split(known + " ", 1)[1])
        if _NOT_AN_INTEGER in text and _SCRIPT_ERROR in text:
            # A script's HINCRBY met a counter written around redis-swarm (a worker may).
            from ._ops._work import damaged_counter  # (here: see the top)

            return damaged_counter(None)
        if e.WRONG_TYPE_ERROR in text:
            return e.CorruptRecord(
                f"a key this call uses at {where} holds another type than redis-swarm writes "
                f"there (something wrote it around redis-swarm; Redis: {text}): 'swarm "
                "doctor' names the key and its repair"
            )
        refused = refused_write(exc, where)
        if refused is not None:
            return e.ConnectionFailed(refused, sent=before)
        if isinstance(exc, rex.ReadOnlyError) or text.startswith("READONLY"):
            from ._ops.server import read_only_replica, replica_master  # (here: see the top)

            info = _asked_again(where)  # (on this error path only: where its master is)
            master = replica_master(info) if info is not None else None
            return e.ConnectionFailed(read_only_replica(where, master), sent=before)
        if isinstance(exc, rex.ClusterDownError) or text.startswith(_CLUSTER_DOWN):
            # An outage like a server away (the runner keeps its work and retries; a CLI
            # call says it and what to do), not a refusal of the request: it ran nothing.
            return e.ConnectionFailed(_cluster_down(where), sent=before)
        if isinstance(exc, rex.AskError | rex.ClusterCrossSlotError) or text.startswith(_REDIRECTS):
            return _cluster_redirect(exc, text, where)
        if _DB_OUT_OF_RANGE in text:
            return e.ConfigError(_no_such_database(where))
        if _NOT_A_CLUSTER in text:
            sentinel = _sentinel_said(_as_server_url(where))
            if sentinel is not None:  # (told to use redis://, it met "a Sentinel" next)
                return sentinel
            return e.ConfigError(
                f"Redis at {where} is not a Redis Cluster (cluster mode is not enabled on it): "
                f"for a single server use a redis:// URL: {_as_server_url(where)}"
            )
        if text.lower().startswith("unknown command") and not _older_server(text):
            # A command every data server knows, refused: a sentinel's port? (asked only here)
            sentinel = _sentinel_said(where)
            if sentinel is not None:
                return sentinel
    return e.SwarmError(f"Redis at {where} answered an error: {text or type(exc).__name__}")


def _sentinel_said(where: str) -> e.ConfigError | None:
    """That the plain URL ``where`` names a Redis Sentinel, when its server says it is one
    (asked only on an error it explains); None when not, or when it does not answer."""
    from ._ops.server import not_a_data_server, sentinel_services  # (here: see the top)

    info = _asked_again(where)
    if info is None or info.get("redis_mode") != "sentinel":
        return None
    return e.ConfigError(not_a_data_server(where, sentinel_services(info)))


# WAITAOF, which a data server before Redis 7.2 lacks (durability='strict' asks it).
_NO_WAITAOF = re.compile(r"unknown command .WAITAOF.", re.IGNORECASE)


def _older_server(text: str) -> bool:
    """Whether ``text`` refuses a command an older data server lacks too (Functions before
    Redis 7.0, WAITAOF before 7.2): said as such, not asked whether a sentinel answers."""
    return bool(NO_FUNCTIONS.search(text) or _NO_WAITAOF.search(text))


# How long the error path waits for the server's INFO (``_asked_again``), connecting and
# then for the reply: a server that answered just now answers at once.
_ASKED_AGAIN_TIMEOUT = 1.0


def _on_an_event_loop() -> bool:
    """Whether this thread runs an asyncio event loop (an ``AsyncSwarm``'s errors are said
    there): a blocking INFO would stall every other task of the loop (the MCP server's, the
    dashboard's), so the error is said without what it would add."""
    asyncio = sys.modules.get("asyncio")  # (not imported for it: swarm --help does without)
    if asyncio is None:
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _asked_again(where: str) -> dict[str, object] | None:
    """INFO of the server at the plain URL ``where``, on a connection of its own, once, for
    an error that it may explain (a replica's master; whether it is a sentinel); None when
    it is not a plain URL or does not answer it. ``where`` is masked: when it has a password
    the server is asked without credentials (a sentinel without requirepass answers)."""
    settings = _settings_of(where)
    if settings is None or settings.kind not in ("standalone", "unix") or _on_an_event_loop():
        return None
    from ._connect import sync_client  # (here: _connect imports this module)

    try:
        if settings.password is not None:
            settings = settings.replace(username=None, password=None)
        settings = settings.replace(
            retries=0,
            socket_timeout=_ASKED_AGAIN_TIMEOUT,
            connect_timeout=_ASKED_AGAIN_TIMEOUT,
        )
        client = sync_client(settings)
        try:
            info = client.info()
        finally:
            client.close()
    except Exception:  # (anything: the error first met is said as it is)
        return None
    return info if isinstance(info, dict) else None


# Redis's refusal of a SELECT of a database at or above its ``databases`` setting (redis-py
# selects the URL's database as each connection is made).
_DB_OUT_OF_RANGE = "DB index is out of range"


def _no_such_database(where: str) -> str:
    """The URL names a database the server does not have: which, and what to do."""
    settings = _settings_of(where)
    which = f"database {settings.db}" if settings is not None else "the URL's database"
    return (
        f"Redis at {where} has no {which}: a server has only as many as its 'databases' "
        "setting (16 by default), numbered from 0 ('CONFIG GET databases' on it says how many): "
        "name one below that count in the URL (its /N; ?db=N for a unix socket), or raise "
        "databases in the server's redis.conf and restart it"
    )


# A server loading its dataset answers every command with this (redis-py raises it as a
# BusyLoadingError, a ConnectionError: it is retried as an outage is, and would otherwise be
# said as a server that cannot be reached); a reply it did not class keeps the code.
_LOADING = "LOADING"


# What a cluster node answers while the cluster refuses commands (``CLUSTERDOWN``): a master
# of some slots failed and no replica took over yet (cluster-require-full-coverage).
_CLUSTER_DOWN = ("CLUSTERDOWN", "The cluster is down")


def _cluster_down(where: str) -> str:
    """The cluster answered, refusing every command until all its slots are served again."""
    return (
        f"the Redis Cluster at {where} is down: a master of some of its slots failed and no "
        "replica has taken over yet (or none is up); it ran nothing. A replica is usually "
        "promoted within the cluster's node timeout; if not, start the failed node or its "
        "replica ('swarm doctor' names it). The nodes were reached: this is not a wrong URL"
    )


def _loading(where: str) -> str:
    """The server runs and answered, but is still loading its data into memory."""
    return (
        f"Redis at {where} is loading its data into memory (after a restart, or a replica "
        "syncing from its master) and answers nothing else until it is done: retry in a "
        "moment. The server runs and was reached: this is not a connection problem"
    )


# The scheme of a URL and its credentials, if any (the password masked: no '/' in it).
_CREDENTIALS = re.compile(r"^([a-z+]+://)(?:[^@/]*@)?", re.IGNORECASE)


def _node_of(exc: BaseException) -> str | None:
    """The ``host:port`` of the cluster node that raised ``exc``: redis-py's cluster clients
    attach the node (or its connection) to an authentication error as ``connection``."""
    node = getattr(exc, "connection", None)
    host, port = getattr(node, "host", None), getattr(node, "port", None)
    return f"{host}:{port}" if host and port else None


def _authentication_failed(where: str, node: str | None = None) -> str:
    """The server refused the URL's credentials: what the URL gave it, and what to fix. Only
    the masked URL is known here: whether it names a user and a password, not the password.
    ``node``: the cluster node that refused them, when the cluster client named it: it met
    that node after the URL's had let the user in (it learnt the layout with them), so the
    user is most likely missing there (ACLs are per node)."""
    settings = _settings_of(where)
    if settings is not None and settings.kind == "cluster" and node is not None:
        user = settings.shown_user
        return (
            f"{e.AUTHENTICATION_FAILED} on cluster node {node} of {where}: the nodes of the URL "
            f"let the user {user!r} in, so it is most likely missing on {node} (ACLs are per "
            "node: a node added later, as with redis-cli --cluster add-node, has none of the "
            "users made before), or has another password there: run 'swarm acl --apply' for "
            "it again as an admin (with its password, --password-stdin, to keep it): it "
            f"makes the user on every node and saves it there with ACL SAVE (its output says "
            f"how {node} keeps it; docs/deployment.md, 'Resharding')"
        )
    if settings is not None and settings.kind != "embedded" and settings.username is None:
        named = _CREDENTIALS.sub(r"\1USER:PASSWORD@", where, count=1)
        if settings.password is None:
            return (
                f"{e.AUTHENTICATION_FAILED} on {where}: the server requires a user and the URL "
                f"names none: add the user and its password, as in {named} (or :PASSWORD@ "
                "alone for a password set with requirepass)"
            )
        return (
            f"{e.AUTHENTICATION_FAILED} on {where}: the URL names no user, so Redis checked the "
            "password as its 'default' user's, and refused it (that user is off, or its "
            f"password is another): name the user, as in {named}"
        )
    # The URL parser reads a raw '@' or ':' in a password as written (the password ends at
    # the last '@', the user name at the first ':'); a '%' it reads as an escape.
    escape = (
        ", and that a '%' in the password is written %25 (the URL is percent-decoded)"
        if settings is not None and settings.password is not None
        else ""
    )
    if settings is not None and settings.password is None:
        # (a user name alone is most likely a password with its ':' forgotten: masked)
        escape = f"; {PASSWORD_AS_USER}"
    return (
        f"{e.AUTHENTICATION_FAILED} on {where}: check the user name and password in the URL{escape}"
    )


# What a URL with a user name and no password is most likely meant to be.
PASSWORD_AS_USER = (
    "a URL of the form redis://PASSWORD@host gives a user name, not a password: write "
    "redis://:PASSWORD@host (or redis://USER:PASSWORD@host)"
)


# What a Redis Cluster node answers about a key it does not serve (redis-py strips the code
# of the errors it classes: MovedError, AskError, ClusterCrossSlotError keep only the rest).
_REDIRECTS = ("MOVED ", "ASK ", "CROSSSLOT ")


# A redirect's slot and node, at the end of its words (``_cluster_redirect``).
_REDIRECT = re.compile(r"(\d+ \S+:\d+)\s*$")


def _cluster_redirect(exc: BaseException, text: str, where: str) -> e.SwarmError:
    """A cluster node sent the request elsewhere. Through a redis+cluster:// URL the client
    follows redirects itself, so one that still arrives is a slot moving under the request
    (a resharding or a failover): an outage, retried as one. Through any other URL it is the
    wrong kind of URL, and no retry helps."""
    settings = _settings_of(where)
    if settings is not None and settings.kind == "cluster":
        return e.ConnectionFailed(
            f"Redis Cluster at {where} moved a slot while this request ran ({text}): a "
            "resharding or a failover is under way; try again",
            sent=_sent_before(exc),  # (a redirect: the node did not run it)
        )
    if isinstance(exc, rex.ClusterCrossSlotError) or text.startswith("CROSSSLOT"):
        said = "that the keys of one request are on several of its nodes (CROSSSLOT)"
    else:
        # (the redirect's own words: redis-py puts a pipeline's "Command # 1 (...) of
        # pipeline caused error: " before them)
        found = _REDIRECT.search(text)
        code = "ASK" if type(exc) is rex.AskError or text.startswith("ASK ") else "MOVED"
        where_to = f"{code} {found[1]}" if found else f"{code} {text.removeprefix(code + ' ')}"
        said = f"{where_to}: the swarm's keys are on another node"
    return e.ConfigError(
        f"Redis at {where} is a node of a Redis Cluster (it answered {said}): use a cluster "
        f"URL, which follows the keys to every node: {_as_cluster_url(where)}"
    )


# What redis-py's cluster client says when it could not learn the layout from the URL's
# nodes: none answered (the reasons follow), or one answered that is no cluster node.
_CLUSTER_UNREACHABLE = "Redis Cluster cannot be connected"
_NOT_A_CLUSTER = "Cluster mode is not enabled"
_CLUSTER_URL = re.compile(r"^(rediss?)\+cluster://([^/?#,]*)[^/?#]*(\?.*)?$", re.IGNORECASE)


def _as_server_url(where: str) -> str:
    """``where`` (a masked redis+cluster:// URL) as the redis:// URL of its first node."""
    match = _CLUSTER_URL.match(where)
    if match is None:
        return "redis://HOST:PORT (rediss:// for TLS)"
    return f"{match[1].lower()}://{match[2]}{match[3] or ''}"


_NODE_URL = re.compile(r"^(rediss?)://([^/?#]*)(?:/[^?#]*)?(\?.*)?$", re.IGNORECASE)


def _as_cluster_url(where: str) -> str:
    """``where`` (a masked redis:// or rediss:// URL) as the redis+cluster:// URL of the same
    node: user, host and options kept, the database dropped (a cluster has only db 0)."""
    match = _NODE_URL.match(where)
    if match is None:
        return "redis+cluster://HOST:PORT (rediss+cluster:// for TLS)"
    scheme, node, query = match[1].lower(), match[2], match[3] or ""
    return f"{scheme}+cluster://{node}{query}"


def refused_write(exc: BaseException, where: str) -> str | None:
    """Why a server refused a write for want of room (out of memory), of a disk (cannot
    persist) or of good replicas (NOREPLICAS), with what to do; None for any other error. All
    three refuse a load of the library too, whatever the user: ``_transport`` says so rather
    than ask for an admin."""
    text = str(exc).strip()
    # redis-py strips the code of the errors it classes ("OOM", "READONLY"); a script's
    # error carries it inside its text (EVALSHA, on Redis 6.2).
    if isinstance(exc, rex.OutOfMemoryError) or _OUT_OF_MEMORY in text:
        return _out_of_memory(where)
    if NO_GOOD_REPLICAS in text:
        return _too_few_replicas(where, _node_of(exc))
    misconf = _MISCONF.search(text)
    if misconf is not None:
        return _cannot_persist(where, misconf[1])
    return None


# redis-py's error when a client's pool has all its max_connections in use: a
# MaxConnectionsError (a ConnectionError) on the redis-py versions that have it, a bare
# ConnectionError with this text before. Raised at once, before anything is sent: the pools
# used here hand out a connection or refuse, they never wait for one.
_POOL_FULL_TEXT = "too many connections"
_MaxConnectionsError: type[Exception] | None = getattr(rex, "MaxConnectionsError", None)


def pool_exhausted(exc: BaseException) -> bool:
    """True when ``exc`` says the client's own pool had no connection left to give: more
    calls at once on one handle than its ``max_connections``, not an outage. Not retried
    (``_retries``): a retry would only hide the limit behind a pause, or wait for a call
    that itself waits."""
    if _MaxConnectionsError is not None and isinstance(exc, _MaxConnectionsError):
        return True
    return isinstance(exc, rex.ConnectionError) and str(exc).strip().lower() == _POOL_FULL_TEXT


class NoneAnswered(rex.ConnectionError):
    """No server the client could ask answered: every sentinel of a Sentinel URL, or every
    node a cluster client knows, refused the connection or never answered (``timed_out``:
    some took it and never answered). Retried within ``Settings.none_answered_window_s``
    (``_retries``)."""

    timed_out = False


# Fragments (lower case) of the text of a connection's failure (the socket's, the ssl
# module's, redis-py's own), or of one of its causes, that no retry fixes, only a change of
# configuration (``no_retry_fixes``): certificates, either side's; a port that answers the
# TLS handshake with no TLS, or a TLS version the two sides do not share; a certificate or
# key file of the URL that does not load; a password refused. Never read in a server's
# reply: its text is the server's (a MISCONF names the errno its disk met, "Permission
# denied" among them), and what it refuses may pass (``_AUTH_REFUSED`` aside).
_NO_SUCH_FILE = "no such file or directory"
_NO_RETRY_FIXES = (
    "certificate verify failed",
    "certificate required",
    *CERTIFICATE_REFUSED,
    HANDSHAKE_FAILURE,
    "wrong version number",
    "wrong_version_number",
    "unsupported protocol",
    *TLS_FILE_ERRORS,
    _NO_SUCH_FILE,
    "permission denied",
    "invalid username-password",
    "wrongpass",
    "noauth",
)
# The one server reply no retry fixes: the credentials refused (its code, or the words of
# Redis 6's AUTH refusal). Every other reply may pass: a disk full or not writable (MISCONF),
# a replica (READONLY), a load (LOADING), a failover (NOREPLICAS).
_AUTH_REFUSED_CODES = ("WRONGPASS", "NOAUTH")
_AUTH_REFUSED_WORDS = "invalid username-password"
# How a server's error reply begins: its code, in capitals ("MISCONF Errors writing ...").
# (A reply a connection turns into a ConnectionError keeps it: ``_sentinel``'s NOREPLICAS.)
_REPLY_CODE = re.compile(r"^-?[A-Z][A-Z_]*[A-Z] ")
_NO_RETRY_FIXES_CLASSES = (
    rex.AuthenticationError,
    rex.AuthorizationError,
    _ssl.SSLCertVerificationError,
)


def no_retry_fixes(exc: BaseException) -> bool:
    """Whether no retry can fix the connection error ``exc``, only a change of configuration:
    the one judgement of it, which the client's own retries give up on at once
    (``_retries.is_permanent``) and ``ConnectionFailed.retryable`` says (``translate``), for
    the loops that ride out outages. True for a TLS connection refused over a certificate
    (the server's does not verify; the server refuses the client's with an alert, or requires
    one), a port that answers the TLS handshake with no TLS (or with no TLS version in
    common), a certificate or key file of the URL that does not load, a password refused
    (``_NO_RETRY_FIXES``, read in the text of a connection's failure only: a server's reply
    is judged by its code, and only the credentials refused are final); a Sentinel URL's,
    when no sentinel answered and one of them failed so (when one answered, the master is
    what is missing: a failover, which passes).

    False for what may pass: a server down, paused or restarting (a unix socket that is not
    there: its server removes it while it is down), loading, full, read-only, unable to
    write to its disk (a MISCONF, whatever errno it names: "Permission denied" too); a TLS
    connection closed in the handshake without a word (a server at its maxclients, or
    restarting, closes so too, as one that refused the client certificate and whose alert
    was lost); a TLS handshake never answered (by a plain port, but by a paused server too:
    a timeout, which the client's retries try again only within a short window). And a
    handle's pool with every connection in use: a later call may find one free (the
    client's own retries do not wait for one: ``_retries.is_permanent``)."""
    text = str(exc)
    if text.startswith(_NO_MASTER):
        # (its sentinels' failures are in its text; ``failed_sentinels`` says them apart)
        given: tuple[tuple[str, str], ...] | None = getattr(exc, "failed_sentinels", None)
        if given is not None and not isinstance(exc, NoneAnswered):
            return False  # a sentinel answered: the master is down, or failing over
        failures = given if given is not None else _sentinel_failures(text)
        return any(_refused_by_text(error.lower()) for _, error in failures)
    chain = causes(exc)
    if any(isinstance(item, _NO_RETRY_FIXES_CLASSES) for item in chain):
        return True
    gone = any(f"{_CONNECTING} /" in str(item) for item in chain)  # a unix socket's path
    return any(
        _auth_refused(str(item))
        if _a_reply(item)
        else _refused_by_text(str(item).lower(), socket_gone=gone)
        for item in chain
    )


def _a_reply(item: BaseException) -> bool:
    """Whether ``item`` is a server's error reply (redis-py's ResponseError, a load's
    BusyLoadingError, or a ConnectionError made of a reply, which keeps its code), not a
    connection's failure: its text is the server's, which ``_NO_RETRY_FIXES`` is not read in."""
    if isinstance(item, rex.ResponseError | rex.BusyLoadingError):
        return True
    return isinstance(item, rex.ConnectionError) and _REPLY_CODE.match(str(item)) is not None


def _auth_refused(text: str) -> bool:
    """Whether the server's reply ``text`` refused the credentials (``_AUTH_REFUSED_CODES``)."""
    return text.lstrip("-").startswith(_AUTH_REFUSED_CODES) or _AUTH_REFUSED_WORDS in text.lower()


def _refused_by_text(low: str, *, socket_gone: bool = False) -> bool:
    """Whether the lower-cased text of an error says what no retry fixes (``_NO_RETRY_FIXES``);
    ``socket_gone``: the error was met connecting to a unix socket, whose missing file is its
    server down, not a file of the URL."""
    return any(
        fragment in low
        for fragment in _NO_RETRY_FIXES
        if not (socket_gone and fragment == _NO_SUCH_FILE)
    )


def _pool_exhausted(where: str) -> str:
    """What a handle that ran out of connections tells: the limit, why a handle needs many,
    and the two ways out. A ConnectionFailed, as an outage is (what retries through an
    outage, a runner's report, rides this out too once the waits end), but one that says
    the server is fine."""
    settings = _settings_of(where)
    size = settings.max_connections if settings is not None else None
    per = " to one node" if settings is not None and settings.kind == "cluster" else ""
    held = f"all its {size} connections{per}" if size is not None else f"all its connections{per}"
    limit = f" (max_connections={size})" if size is not None else ""
    return (
        f"this handle of {where} has {held} in use{limit}: more calls at once than its pool "
        "holds, and each call holds one while it runs, a waiting call (claim with wait_s, "
        "ask, an inbox wait) for its whole wait. Raise it with ?max_connections=N in the URL "
        "(or Settings.from_url(URL, max_connections=N)), or make fewer calls wait at once on "
        "this handle. The server was not asked: this is not a connection problem"
    )


# Redis's refusal of a write while its memory is full (maxmemory reached, with a policy that
# refuses writes rather than dropping keys: noeviction, or volatile-* with no key to drop).
_OUT_OF_MEMORY = "command not allowed when used memory > 'maxmemory'"


def _out_of_memory(where: str) -> str:
    """A full server refused a write: why, that nothing stored is lost, and what to do. A
    ConnectionFailed, as an outage is: the request was right, the server cannot take it now,
    and what retries through an outage (a runner's report, a lease renewal) should retry
    here too rather than give the work up. The swarm's own clean-up (``swarm gc``) writes,
    so it is refused too until there is room."""
    return (
        f"Redis at {where} is out of memory (its used memory is above maxmemory) and refuses "
        "writes: the write it refused was not applied, and nothing stored is lost (reads still "
        "work). Raise the limit (an admin: CONFIG SET maxmemory BYTES, and maxmemory in redis.conf "
        "to keep it), or free memory on the server; then 'swarm gc' releases the context "
        "chunks no kept version uses. 'swarm doctor' shows the memory in use"
    )


# Redis's refusal of a write by a master with fewer good replicas (connected, and acknowledging
# within min-replicas-max-lag seconds) than its min-replicas-to-write: checked before anything
# runs, so nothing was applied (a script that writes is refused whole). A Sentinel connection
# turns it into a ConnectionError whose text keeps the code (``_sentinel``), so both are read;
# both look for it anywhere in the text (a script's error carries it inside, on Redis 6.2).
NO_GOOD_REPLICAS = "NOREPLICAS"


def _too_few_replicas(where: str, node: str | None = None) -> str:
    """A master refused a write for want of good replicas: that nothing was applied, why,
    the likeliest first, and what to do. A ConnectionFailed, as an outage is: what retries
    through an outage (a runner's report, a lease renewal) retries it. ``node``: the node
    that refused, when a cluster client named it (``_node_of``): on a cluster URL it is
    named, with a cluster's ways out (``_cluster_too_few_replicas``); behind Sentinel, the
    master the connection reached, when the error carries it, else how to ask for it."""
    settings = _settings_of(where)
    if settings is not None and settings.kind == "cluster":
        return _cluster_too_few_replicas(where, node)
    return (
        f"Redis at {where} refuses writes: it has fewer good replicas than its "
        "min-replicas-to-write (NOREPLICAS), so the write was not applied and nothing stored is "
        "lost. Either a failover is in progress (this master was demoted, or its replica "
        "promoted: retry, and a Sentinel URL finds the new master), or its replicas are down "
        "or lag more than min-replicas-max-lag seconds (INFO replication on the master): bring "
        "one back. To take writes with no replica, an admin user sets it on the master: "
        f"{_admin_cli(where, node)}CONFIG SET min-replicas-to-write 0"
        f"{_which_master(settings, node)}, at the cost of writes a failover may lose "
        f"({SENTINEL_DOCS})"
    )


def _which_master(settings: Settings | None, node: str | None) -> str:
    """Behind Sentinel, where the error names no master (the refusal reaches here as the
    Sentinel connection's ConnectionError, which carries no address): where MASTER and PORT
    are found, the master the sentinels name now."""
    if settings is None or settings.kind != "sentinel" or node is not None:
        return ""
    from ._durability import redis_cli_master_lookup  # (here: an error's words only)

    lookup = redis_cli_master_lookup(settings)
    return (
        ", MASTER and PORT being the master the sentinels name now ('swarm doctor' names it; "
        f"a sentinel tells: {lookup})"
    )


def _admin_cli(where: str, node: str | None = None) -> str:
    """The start of a redis-cli command an admin user runs on the server of ``where`` (the
    URL as shown; ``node``: one node, or behind Sentinel the master, to be filled in when
    None): CONFIG SET and ``--cluster`` are no other role's (``_acl``)."""
    from ._durability import redis_cli_of  # (here: an error's words only)

    return redis_cli_of(where, may_run=False, master=node)


def _cluster_too_few_replicas(where: str, node: str | None) -> str:
    """``_too_few_replicas`` on a cluster: the master that refused (``node``, when known)
    named, and a cluster's ways out: its client follows a failover by itself (no Sentinel),
    and a master short of replicas gets one back, or a new one (``add-node``)."""
    master = f"the Redis Cluster node {node} of {where}" if node else f"a master of {where}"
    at = node or "MASTER:PORT"
    from ._durability import redis_cli_of  # (here: an error's words only)

    return (
        f"{master} refuses writes: it serves the slot of what was asked and has fewer good "
        "replicas than its min-replicas-to-write (NOREPLICAS), so the write was not applied "
        "and nothing stored is lost. Either a failover of that master is in progress (retry: "
        "the cluster client follows the slot to its new master), or its replicas are down or "
        f"lag more than min-replicas-max-lag seconds (INFO replication on {at}): bring one "
        "back, or add one as an admin user "
        f"({redis_cli_of(where, may_run=False, cluster_tool=True)}--cluster add-node NEW:PORT {at} "
        "--cluster-slave). To take writes with "
        f"no replica, an admin user sets it on {at}: {_admin_cli(where, at)}CONFIG SET "
        f"min-replicas-to-write 0, at the cost of writes a failover may lose "
        f"({DOCTOR_TELLS_MORE})"
    )


# Redis's refusal while it cannot write its data to disk: its AOF (disk full, directory not
# writable) or, with stop-writes-on-bgsave-error, its RDB snapshot. It refuses every write, and
# PING, and the swarm's scripts that may write (listings included); a script's error carries
# the reply inside its text ("... -MISCONF ..." on Redis 6.2).
_MISCONF = re.compile(r"(?:^|[\s:-])MISCONF ([^\r\n]{0,200})")


def _cannot_persist(where: str, detail: str) -> str:
    """A server that cannot write to its disk refused a request: why, that nothing stored is
    lost, and what to do. A ConnectionFailed, as the out-of-memory refusal is (what retries
    through an outage retries here too), and the server recovers by itself once it can write:
    its acknowledged writes it could not write yet are kept in memory meanwhile."""
    settings = _settings_of(where)
    if settings is not None and settings.kind == "embedded":
        from ._embedded import EmbeddedServer

        server = EmbeddedServer(settings.home)
        place = f"its data directory {server.data_dir} (its log: {server.logfile})"
    else:
        place = "its data directory, on its host (CONFIG GET dir names it; its log says why)"
    return (
        f"Redis at {where} cannot persist writes ({detail.strip().rstrip('.')}): its disk is "
        "full or its data directory is not writable, so it refuses writes and the swarm's "
        "commands that may write (most, listings included): what it refused was not applied, "
        "and nothing stored is lost while it keeps running (do not stop it: what it could not "
        f"write yet is in its memory). Free space in {place}; it takes writes again by itself "
        f"once it can write. {DOCTOR_TELLS_MORE}"
    )


# A worker user may post a task (peer assist asks by posting one), but not write a pass's
# keys (docs/security.md): the post's script asks the caller's rights to them before it
# writes anything (task_post.lua), and names itself and the pass in its refusal (whether it
# runs as a function or by EVALSHA). Any other key refused inside it (a user of another swarm)
# is said by ``_not_permitted``.
_TASK_POST = re.compile(rf"\b{function_name('task_post')}: .* of a pass\b")


# What lua/task_update.lua answers a caller that may not requeue or drop a dead task: a
# script's own refusal, run once Redis passed its keys (so no key of another swarm).
_SCRIPT_REFUSED_DEAD = "may not take a task out of the dead-letter set"


def _refused_in_script(text: str, where: str) -> str | None:
    """What a script refused to this user was, where the script tells; else None."""
    if _TASK_POST.search(text) is None:
        return None
    settings = _settings_of(where)
    user = settings.shown_user if settings is not None else "default"
    return (
        f"the Redis user {user!r} may not post a task to a pass on {where} (nothing was "
        "stored): passes are posted by a shard, coordinator or admin user, and a worker posts "
        "tasks only without one; post it without --pass (pass_name), or as a shard or "
        "coordinator user (swarm acl --role shard --user NAME makes one)"
    )


# How Redis names the command a user may not run (NOPERM); a key it may not touch is not named.
_REFUSED_COMMAND = re.compile(r"permissions to run the '([^']+)' command")
_FUNCTION_CALLS = ("fcall", "fcall_ro")


def _not_permitted(text: str, where: str, swarm: str | None, operation: str | None) -> str:
    """What a NOPERM refused, and which roles (``_acl``'s, see docs/security.md) may do it:
    for a command, those whose rules hold it; for a function (FCALL, whose function Redis
    does not name), those that may call every function of the library; for a key, which
    Redis does not name either, see ``_key_refused``."""
    settings = _settings_of(where)
    user = settings.shown_user if settings is not None else "default"
    refused = _REFUSED_COMMAND.search(text)
    if refused is None:
        return f"the Redis user {user!r} may not do this on {where} ({_key_text(text)}): " + (
            _key_refused(
                swarm, operation, in_script=_in_script(text) or _SCRIPT_REFUSED_DEAD in text
            )
        )
    command = refused[1]
    roles = _roles_that_run(command)
    what = "this operation's function" if command in _FUNCTION_CALLS else repr(command)
    named = [role for role in roles if role != "admin"] or ["admin"]
    if named == ["admin"]:
        # Making an admin needs an admin: the way on is a URL of one, not 'swarm acl'.
        admin_url = _CREDENTIALS.sub(r"\1ADMIN:PASSWORD@", where, count=1)
        return (
            f"the Redis user {user!r} may not run {what} on {where} ({text}): only an admin "
            f"user may: run it again with an admin user's URL in SWARM_URL (SWARM_URL="
            f"{admin_url}, exported or read from a file: a --url shows its password in ps and "
            "the shell's history), or as the server's default user where it is on (no user in "
            "the URL); docs/security.md says what each role may do"
        )
    job = _not_a_workers(operation) if command in _FUNCTION_CALLS else None
    return (
        f"the Redis user {user!r} may not run {what} on {where} ({text}): "
        f"{job + ': ' if job else ''}a {' or '.join(named)} user may ('swarm acl --role "
        f"{named[0]} --user NAME' makes one; docs/security.md says what each role may do)"
    )


# What a worker may not do, said of the operations of another role whose function Redis
# refused it (FCALL: the role, not the key, is the cause), as ``_WORKER_KEYS_REFUSED`` says of
# a key; an operation not listed is named.
_OTHER_ROLES_JOBS = {
    "publish_context": (
        "a worker may not publish a context (a shard publishes the contexts its workers read)"
    ),
    "gc": "a worker may not collect unused context chunks (the shard that publishes does)",
    "synthesize": "a worker may not write a synthesis (a shard synthesizes its pass)",
}


def _not_a_workers(operation: str | None) -> str | None:
    """What a worker may not do in ``operation`` (a shard's or coordinator's), whose function
    Redis refused it; None for a worker's operation or none named."""
    from ._ops._commands import OPERATIONS  # (here: see the top)

    uses = OPERATIONS.get(operation or "")
    if uses is None or uses.worker:
        return None
    return _OTHER_ROLES_JOBS.get(
        operation or "", f"{operation!r} is a shard's or coordinator's operation, not a worker's"
    )


def _key_refused(swarm: str | None, operation: str | None, *, in_script: bool = False) -> str:
    """Why a key was refused, and what to do. A user made by 'swarm acl' touches the keys of
    its own swarm only: a URL used with the wrong swarm (most often SWARM_NAME unset: swarm
    'default') is refused every key, whatever its role. An operation every role may run on
    its own swarm (``_worker_refused``: None) was refused for that reason alone, and says so
    alone (a shard told that a shard may would be told nothing); one a worker may not do may
    be refused for either, and says both: first what a worker may not do and who may (the
    likely cause: a worker user running another role's operation), then the swarm. An
    operation not named (a raw command) says the swarm, else the role. A key refused inside a
    script (``in_script``) is one of the swarm the user was made for: Redis checks the keys an
    FCALL names before it runs the script, and refuses there a user of another swarm; so an
    operation every role may run, refused so, lacks a command in the role's rules."""
    from ._ops._commands import OPERATIONS  # (here: see the top)

    in_use = f"swarm {swarm!r}, the swarm in use" if swarm is not None else "the swarm in use"
    uses = OPERATIONS.get(operation or "")
    if uses is None:
        return (
            f"a key it names is outside what the user's role may touch in {in_use}: "
            f"{CHECK_SWARM}; else the key is one its role may only read: docs/security.md "
            "says what each role may do, and 'swarm acl --role ROLE --user NAME' makes a user "
            "of another role"
        )
    refused = _worker_refused(operation or "", uses)
    if refused is None and in_script:
        return (
            f"the keys are of {in_use}, but the rules of the user's role lack a command this "
            "operation's script runs on one of them: run 'swarm acl --role ROLE --user NAME "
            "--apply' for this user again (rules an older redis-swarm made lack what a newer "
            "one runs: after an upgrade, users are applied again; docs/security.md), and if "
            "the rules just applied refuse it too, report a bug"
        )
    if refused is None:
        return (
            "every role may do this on the keys of its own swarm, so the user was made for "
            f"another swarm, and is refused every key of {in_use}: {CHECK_SWARM}"
        )
    if in_script:  # (its keys passed: the role is the cause, not the swarm)
        return f"{refused}: {_SHARD_MAY}"
    return (
        f"{refused}: {_SHARD_MAY}; else the user was made for another swarm, and is refused "
        f"every key of {in_use}: {CHECK_SWARM}"
    )


# The operations a worker's rules let it send (``_worker_may_run``) but that refuse it what it
# asked, and why: both take a task out of the dead-letter set, which only a shard's,
# coordinator's or admin's may do but for a report (docs/security.md's worker row; the
# script asks the caller's rights first); cancel shares rs_task_update with renew, so a worker
# may cancel an open task.
_DEAD_LETTERS = (
    "only a shard, a coordinator or an admin takes a task out of the dead-letter set, but for "
    "a report, which completes it"
)
_WORKER_KEYS_REFUSED = {
    "requeue_dead": f"a worker may not requeue a dead task ({_DEAD_LETTERS})",
    "cancel": f"a worker may cancel an open task but not a dead one ({_DEAD_LETTERS})",
}


def _worker_refused(operation: str, uses: Uses) -> str | None:
    """What a worker may not do in ``operation`` (which sends ``uses``), said to a user refused
    one of its keys; None when a worker may do it on its own swarm (a worker's operation, or
    one whose commands and scripts its rules hold: posting tasks, whose refusal inside the
    script, a pass's keys, ``_refused_in_script`` says)."""
    if uses.worker:
        return None
    if operation in _WORKER_KEYS_REFUSED:
        return _WORKER_KEYS_REFUSED[operation]
    if _only_reads(uses):
        from ._acl import WORKER_HIDDEN  # (here: see the top)

        hidden = ", ".join(sorted(WORKER_HIDDEN))
        return (
            "the key is one a worker may not even read (a worker reads every key of its swarm "
            f"but these: {hidden})"
        )
    if _worker_may_run(uses):
        return None
    return "a worker may not do this"


# What Redis says of a key refused inside a script, which goes on to name the script's function
# and its line ("script: rs_task_update, on @user_function:2847."): internals, said otherwise.
# Redis 8 says it otherwise ("ACL failure in script: No permissions to access a key script:
# rs_task_report, on @user_function:677."), and not as a NOPERM.
_IN_SCRIPT = ("user executing the script", "ACL failure in script")


def _in_script(text: str) -> bool:
    """Whether ``text`` is Redis's refusal of a command a script ran (a key, most often)."""
    return any(words in text for words in _IN_SCRIPT)


def _key_text(text: str) -> str:
    """Redis's words for a refused key; a script's, which name its internals, in plain words."""
    return "one of the keys it touches was refused" if _in_script(text) else text


# What a refusal says of an operation that is a shard's or coordinator's, not a worker's.
_SHARD_MAY = (
    "a shard or coordinator user may ('swarm acl --role shard --user NAME' makes one; "
    "docs/security.md says what each role may do)"
)


@functools.cache
def _worker_write_commands() -> frozenset[str]:
    """The commands a worker may run on some keys of its swarm only (its writes): an
    operation sending one itself may write a key the worker may only read."""
    from ._ops._commands import WORKER_WRITES  # (here: see the top)

    return frozenset().union(*WORKER_WRITES.values())


def _only_reads(uses: Uses) -> bool:
    """Whether an operation sending ``uses`` only reads: no script, no write command."""
    return not uses.scripts and not uses.commands & _worker_write_commands()


def _worker_may_run(uses: Uses) -> bool:
    """Whether a worker's role may run an operation that sends ``uses``: one of its own, or
    one whose scripts are all the worker's (a worker posts tasks with ``task_post``, which
    ``ask`` calls: Redis checks what a script writes against the worker's key rules) and
    which itself sends only reads the worker may run (reads of its swarm's keys)."""
    if uses.worker:
        return True
    from ._acl import role_commands, role_scripts  # (here: see the top)

    reads = role_commands("worker") - _worker_write_commands()
    return uses.scripts <= role_scripts("worker") and uses.commands <= reads


def _roles_that_run(command: str) -> list[str]:
    """The roles whose users may run ``command`` (lower case, as NOPERM names it: 'info',
    'config|get'); for FCALL, those that may call every function."""
    from ._acl import ROLES, role_commands, role_scripts  # (here: see the top)

    if command in _FUNCTION_CALLS:
        scripts = {role: role_scripts(role) for role in ROLES if role != "admin"}
        every = frozenset().union(*scripts.values())
        return [role for role in ROLES if role == "admin" or scripts[role] >= every]
    return [role for role in ROLES if role == "admin" or command in role_commands(role)]


def _not_unicode(exc: UnicodeEncodeError) -> e.ValidationError:
    """Raised while encoding a request, before anything is sent: nothing was stored."""
    bad = exc.object[exc.start : exc.end] if isinstance(exc.object, str) else "?"
    around = exc.object[max(0, exc.start - 20) : exc.start] if isinstance(exc.object, str) else ""
    return e.ValidationError(
        f"a text holds {bad!r} after {around!r}, which is not valid Unicode (a lone "
        "surrogate, often from bytes decoded with errors='surrogateescape'): fix the text, "
        "e.g. with .encode('utf-8', 'replace').decode()"
    )


def causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it (redis-py wraps the socket's or the ssl module's error)."""
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in out and len(out) < 8:
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


def _unreachable(exc: BaseException, text: str, where: str) -> e.ConnectionFailed:
    """A connection that failed or timed out: TLS trouble named, else what to check."""
    sent = may_have_reached(exc)
    tls = _tls_problem(" ".join(str(c) for c in causes(exc)), text, where, closed_in_tls_setup(exc))
    if tls is not None:
        # A certificate refused (either side's) ends the connection before any request runs,
        # however far redis-py had got (a TLS 1.3 server's alert comes at the first read).
        return e.ConnectionFailed(tls.message, sent=sent and (not tls.refused or _sent_before(exc)))
    tls_port = _tls_port_hint(where, text)
    node = _cluster_node(where, text)
    if node is not None:
        # One node of a cluster that others of the URL serve: the URL is not what is wrong.
        return e.ConnectionFailed(_node_unreachable(where, node, text, tls_port), sent=sent)
    if tls_port and not text.startswith(_CLUSTER_UNREACHABLE):
        # A reset on a plain connection: the server closed it with what it was sent unread
        # (a TLS port, on the client's first bytes): it ran none of it.
        return e.ConnectionFailed(
            f"the server at {where} closed the connection ({text}): {tls_port}",
            sent=_sent_before(exc),
        )
    if where.startswith("embedded:") and any(gone in text.lower() for gone in _NOT_LISTENING):
        return e.ConnectionFailed(_embedded_not_running(where, text), sent=sent)
    if text.startswith(_CLUSTER_UNREACHABLE):
        reasons = text.split(": ", 1)[-1]
        return e.ConnectionFailed(
            f"cannot reach Redis Cluster at {where}: no node of the URL answered (the last one "
            f"tried: {reasons}); check that the nodes run and that the URL names some of them, as "
            f"redis+cluster://HOST:PORT[,HOST:PORT...] ({DOCTOR_TELLS_MORE})"
            f"{'; ' if tls_port else ''}{tls_port}",
            sent=sent,
        )
    # (a TLS handshake that timed out is said above, the asyncio client's too: its TLS
    # connections make it apart from the TCP connect, ``_connections.AsyncHandshakeApart``)
    return e.ConnectionFailed(
        f"cannot reach Redis at {where}: {text.rstrip('.') or type(exc).__name__}; "
        f"check that the server runs and the URL is right ({DOCTOR_TELLS_MORE})",
        sent=sent,
    )


# How redis-py (sync and asyncio alike) words a connection it could not make: "Error 111
# connecting to HOST:PORT. Connection refused." (a DNS failure, an unreachable host, a TLS
# handshake refused: the same, with their reason), "Timeout connecting to server" (the TCP
# connect or the TLS handshake). Nothing was sent on it. redis-py raises a read timeout and a
# connect timeout as one class (TimeoutError), and a refused connect and a dropped one as
# another (ConnectionError): its words are what tells them apart.
_CONNECTING = "connecting to"
# The socket's own errors for a connection that could not be made, when no redis-py error
# wraps them.
_NOT_CONNECTED = (ConnectionRefusedError, FileNotFoundError, socket.gaierror)
# What the retries (``_retries``) set, True, on the error they give up with when an earlier
# attempt of the request may have reached the server: the last attempt's error alone (a
# reconnect refused while the server restarts) would say that nothing was sent.
SENT_BEFORE = "swarm_sent_before"


def _sent_before(exc: BaseException) -> bool:
    return bool(getattr(exc, SENT_BEFORE, False))


def may_have_reached(exc: BaseException) -> bool:
    """Whether the request that failed with ``exc`` (a redis-py error, or the socket's) may
    have reached the server: True unless the connection could not be made (``_CONNECTING``),
    or an earlier attempt of it may have (``SENT_BEFORE``). The error a cluster client's
    command met is its cause (redis-py keeps it so under its "Redis Cluster cannot be
    connected"), whose text names the last refresh's failure, not the command's. A reply that
    did not come to the connection's own setup (HELLO, AUTH) reads as a request's: True; a
    reset in it does not, where it is said as a connection not made (the asyncio TLS
    client's, ``RESET_IN_TLS_SETUP``: ``_connections.AsyncHandshakeApart``)."""
    if _sent_before(exc):
        return True
    if pool_exhausted(exc):
        return False
    met = _met(exc)
    return not isinstance(met, _NOT_CONNECTED) and _CONNECTING not in str(met)


def _met(exc: BaseException) -> BaseException:
    """The innermost redis-py connection or timeout error in ``exc``'s causes (``__cause__``
    only: a context is an error handled before, not this one's), else ``exc``."""
    met, current = exc, exc.__cause__
    for _ in range(8):
        if current is None:
            break
        if isinstance(current, rex.ConnectionError | rex.TimeoutError):
            met = current
        current = current.__cause__
    return met


# redis-py's Sentinel client, when no sentinel gave the master's address: "No master found
# for 'NAME'", then " : " and, for each sentinel that failed, its client's repr (every
# option of its connection: a kilobyte each) and " - " and the error: from 8.2 on its class
# and text, before its class alone ("network:ConnectionError"). The clients built here say
# which sentinels failed and why in an attribute instead (``failed_sentinels``, see
# ``_sentinel``); the text is read for a client built elsewhere.
_NO_MASTER = "No master found for "
_SENTINEL_FAILED = re.compile(r"host=([^,>]+),port=(\d+).*?\)> - (.*)", re.DOTALL)
_CONNECT_FAILED = re.compile(r"Error (-?\d+) connecting to \S+?\. (.*?)\.?$")


def _sentinel_failures(text: str) -> list[tuple[str, str]]:
    """The sentinels that failed in the text of redis-py's "No master found" error, in the
    order they were asked: each one's host:port and its error (class, then text). A sentinel
    that answered (that it knows no such master, or that the master is down) is not there."""
    failures: list[tuple[str, str]] = []
    for entry in re.split(r", (?=<redis\.)", text.partition(" : ")[2]):
        match = _SENTINEL_FAILED.search(entry)
        if match is not None:
            failures.append((f"{match[1]}:{match[2]}", match[3]))
    return failures


# The node redis-py names when a connection to it failed: "Error 111 connecting to HOST:PORT."
# or "Error while reading from HOST:PORT : (104, ...)" (the host may be an IPv6 address).
_NODE_NAMED = re.compile(r"(?:connecting to|reading from|writing to) (\S+):(\d+)\b")


def _cluster_node(where: str, text: str) -> str | None:
    """``HOST:PORT`` of the cluster node a failed connection was to, when ``where`` is a
    cluster URL and the error names one (a command routed to the node that holds its keys'
    slot: not "no node of the URL answered", which is said apart)."""
    if not _CLUSTER_URL.match(where) or text.startswith(_CLUSTER_UNREACHABLE):
        return None
    found = _NODE_NAMED.search(text)
    return None if found is None else f"{found[1]}:{found[2]}"


def _node_unreachable(where: str, node: str, text: str, tls_port: str) -> str:
    """A cluster node that refused, reset or timed out a connection while its cluster is
    reachable: what it means for the swarm, and what to check."""
    return (
        f"cannot reach the Redis Cluster node {node} of {where} ({text.rstrip('.')}): it "
        "serves the slot of what was asked, so this swarm is not served until the node is "
        "back or a replica of it takes over (a master down with no replica leaves its slots "
        "unserved); check that node and the cluster's state (CLUSTER INFO, CLUSTER NODES) "
        f"({DOCTOR_TELLS_MORE})" + (f"; {tls_port}" if tls_port else "")
    )


def _tls_port_hint(where: str, text: str) -> str:
    """What to try when a server of a plain URL (``where``) closed the connection at once
    (``text``, the error, says so): it may be a TLS port, reached by the TLS twin of the
    URL's scheme; "" for anything else."""
    scheme = where.partition("://")[0].lower()
    twin = _TLS_SCHEMES.get(scheme)
    if twin is None or _CLOSED_AT_ONCE not in text.lower():
        return ""
    return f"if it only speaks TLS (tls-port), use {twin}:// with ssl_ca_certs"


def _no_master(exc: BaseException, text: str, where: str) -> str:
    """One short line for a Sentinel URL whose sentinels gave no master: which sentinels were
    tried, which did not answer and why, and what to check (a TLS failure of theirs said as
    ``_sentinel_tls`` says it; whether a retry may help: ``no_retry_fixes``)."""
    settings = _settings_of(where)
    head = text.partition(" : ")[0]
    service = settings.service_name if settings is not None else head[len(_NO_MASTER) :]
    given: tuple[tuple[str, str], ...] | None = getattr(exc, "failed_sentinels", None)
    failures = given if given is not None else _sentinel_failures(text)
    failed = {node: why_no_answer(error) for node, error in failures}
    tried = [f"{h}:{p}" for h, p in settings.nodes] if settings is not None else list(failed)
    answered = [node for node in tried if node not in failed]
    tls = [f for node, error in failures if (f := _sentinel_tls(where, node, error)) is not None]
    if tls and not answered:
        # (the TLS settings of the URL are the sentinels' too: one failure says what to fix)
        return tls[0].message
    said = ", ".join(f"{node} ({why})" for node, why in failed.items())
    tls_port = _tls_port_hint(where, said)
    if not answered:
        return (
            f"no Sentinel of {where} answered: tried {said}; check that the sentinels run and "
            "that the URL names them by their own host:port (26379 by default, not the "
            f"master's port){'; ' if tls_port else ''}{tls_port}"
        )
    silent = f"; no answer from {said}" if said else ""
    down: tuple[tuple[str, str, str], ...] = getattr(exc, "down_masters", ())
    if down:
        seen = "; ".join(f"{node} sees {address} {why}" for node, address, why in down)
        return (
            f"no Sentinel of {where} gave the master's address: the master of {service!r} "
            f"is down: {seen}{silent}: check that master and its replicas "
            f"(SENTINEL REPLICAS {service} on a sentinel lists them; a failover needs a "
            "replica that is up and a quorum of sentinels), or try again once the failover "
            "has ended"
        )
    verb = "monitors" if len(answered) == 1 else "monitor"
    return (
        f"no Sentinel of {where} gave the master's address: {', '.join(answered)} {verb} no "
        f"master named {service!r} that is up{silent}: "
        "check the service name in the URL (SENTINEL MASTERS on a sentinel lists those it "
        "monitors), or try again once a failover has ended"
    )


# What an error whose text was lost (redis-py before 8.2 wrote a sentinel's error as its class
# alone) most likely was, said in words.
_BARE_ERRORS = {
    "connectionerror": "could not connect",
    "timeouterror": "timed out",
}


def _sentinel_tls(where: str, node: str, error: str) -> _TlsFailure | None:
    """What the TLS failure of sentinel ``node`` (``error``: its text, the SSL error's) of the
    TLS Sentinel URL ``where`` was, as ``_tls_problem`` says it of a rediss:// URL, naming
    the sentinel; None when it is none."""
    if not where.startswith("rediss"):
        return None
    found = _tls_problem(error, error, where, closed=False)
    if found is None:
        return None
    named = found.message.replace(f"TLS to {where}", f"TLS to the sentinel {node} of {where}", 1)
    return found._replace(message=named)


def why_no_answer(error: str) -> str:
    """A sentinel's error, as the few words that say why it gave no master."""
    error = re.sub(r"^(?:\w+:)?\w+(?:Error|Exception): ", "", error.strip())  # the class
    error = re.sub(r"^\w+\('(.*)'\)$", r"\1", error)  # the repr older redis-py gives
    bare = re.fullmatch(r"(?:\w+:)?(\w+)", error)
    if bare is not None and bare[1].lower() in _BARE_ERRORS:
        return _BARE_ERRORS[bare[1].lower()]
    connect = _CONNECT_FAILED.search(error)
    if connect is not None:
        number = int(connect[1])
        # (an SSL error's number is the ssl module's, no errno: its own text says it)
        ssl = "ssl" in connect[2].lower()  # ([SSL: ...], [X509: ...] (_ssl.c:N))
        return os.strerror(number) if number > 0 and not ssl else _shortened(connect[2])
    if error.lower().startswith("timeout"):
        return "timed out"
    if error.lower().startswith("unknown command"):
        return f"not a Sentinel: {error.split(',')[0]}"
    return _shortened(error)


def _shortened(error: str) -> str:
    return error if len(error) <= 100 else error[:99] + "…"


# A unix socket nothing listens on: the file is gone (a clean stop removes it) or was left by
# a server whose process is gone.
_NOT_LISTENING = ("no such file or directory", "connection refused")


# What the message of a stopped embedded server tells a command to do once it is up (it is
# not restarted behind the user's back); a caller that tries again by itself says the message
# without it (``said_retrying``).
_RUN_AGAIN = ", then run this command again"


def timed_out(exc: BaseException) -> bool:
    """Whether ``exc`` (a ConnectionFailed, or what it was translated from) or one of its
    causes is a request or a connection that timed out (a paused, busy or far server, or a
    TLS handshake never answered): its words say no more than that Redis did not answer."""
    return any(
        isinstance(item, rex.TimeoutError | TimeoutError)
        or (isinstance(item, NoneAnswered) and item.timed_out)
        or HANDSHAKE_TIMEOUT in str(item).lower()
        for item in causes(exc)
    )


def said_retrying(exc: BaseException | str, instead: str = "") -> str:
    """The message of ``exc`` (or that text) for a caller that tries again by itself
    (``swarm run``'s pool and a pipeline's "...; retrying" lines, a running A2A server's
    log): the advice to run the command again replaced by ``instead``."""
    return str(exc).replace(_RUN_AGAIN, instead)


def _embedded_not_running(where: str, text: str) -> str:
    """The embedded server stopped under a command that was using it ('swarm down', or its
    process ended): it is not restarted behind the user's back; say how to start it."""
    settings = _settings_of(where)
    log, up = "", "swarm up"
    if settings is not None and settings.kind == "embedded":
        from ._embedded import EmbeddedServer, swarm_command

        log = f"; if nobody stopped it, its log {EmbeddedServer(settings.home).logfile} says why"
        up = swarm_command(settings.home, "up")  # (with --home when not the default one)
    return (
        f"cannot reach Redis at {where}: the embedded server is not running ({text.rstrip('.')}"
        f"): start it with '{up}'{_RUN_AGAIN} (it was stopped by 'swarm "
        f"down', or its process ended{log})"
    )


# What the asyncio client's TLS connections say of a reset met as they were being set up, in
# their first exchange after the handshake (``_connections.AsyncHandshakeApart``): under TLS
# 1.3 a server refuses a client certificate (or its lack) after the handshake, and one that
# closes with the client's first request unread resets the connection, its alert dropped
# unsent; one at its maxclients, or restarting, may reset it too.
RESET_IN_TLS_SETUP = "the server reset the connection as it was being set up"

# The ssl module's word for a TLS connection that ended without a goodbye (an EOF), in the
# handshake or at the first write after it.
_EOF_MIDWAY = "violation of protocol"
_SSL_DETAIL = re.compile(r"certificate verify failed: (.*?)\.? \(_ssl\.c")


def closed_in_tls_setup(exc: BaseException) -> bool:
    """True when the server ended a TLS connection without a word while it was being made:
    the sync client reads an EOF in the handshake (``_EOF_MIDWAY``), asyncio's a
    ConnectionResetError with no text. A server that refuses the client's certificate does
    this when the alert saying so is lost (it races the server's close); so does one at its
    maxclients, or restarting, and a proxy in front of one."""
    chain = causes(exc)
    return any(_CONNECTING in str(item) for item in chain) and any(
        _EOF_MIDWAY in str(item).lower()
        or (type(item) is ConnectionResetError and not item.args)
        or RESET_IN_TLS_SETUP in str(item)
        for item in chain
    )


class _TlsFailure(NamedTuple):
    """A TLS failure, said (``message``: one line naming what to check). ``refused``: a
    certificate refused, either side's (the server's did not verify, or the server refused
    the client's or wants one): the connection ended before any request ran. (Whether a
    retry may help is ``no_retry_fixes``'s to say, not the message's.)"""

    message: str
    refused: bool = False


def _refused(message: str) -> _TlsFailure:
    return _TlsFailure(message, refused=True)


def _tls_problem(chain: str, text: str, where: str, closed: bool) -> _TlsFailure | None:
    """What a TLS failure was, for a person and for a retry; None when it is not one.
    ``chain``: the text of the error and of its causes; ``text``: the error's own;
    ``closed``: the server ended the connection without a word (an EOF) while it was being
    made. Only that close may pass (a server at its maxclients, or restarting, closes so
    too), and a handshake that timed out (a server paused); every other is configuration."""
    low = text.lower()
    closed = closed or _EOF_MIDWAY in low
    if where.startswith("rediss"):
        found = _tls_setup_problem(chain.lower(), text, where)
        if found is not None:
            return found
    if "certificate verify failed" in low:
        match = _SSL_DETAIL.search(text)
        detail = match[1] if match else "certificate verify failed"
        if "mismatch" in low or "hostname" in low:
            return _refused(
                f"TLS to {where} refused: the server's certificate does not name this host "
                f"({detail}): connect by a name or IP the certificate lists (its subjectAltName), "
                "or give the server a certificate for this name"
            )
        if "expired" in low:
            return _refused(
                f"TLS to {where} refused: the server's certificate has expired ({detail}): "
                "renew the server certificate (tls-cert-file), or check this machine's clock "
                "if it should not have"
            )
        if "not yet valid" in low:
            return _refused(
                f"TLS to {where} refused: the server's certificate is not valid yet ({detail}): "
                "check this machine's clock (and the clock of the machine that made the "
                "certificate), or give the server one valid from now (tls-cert-file)"
            )
        return _refused(_not_verified(where, detail))
    if closed and where.startswith("rediss"):
        # Under TLS 1.3 a server checks the client certificate after the handshake, and a
        # client that loses that race sees the connection end (EOF) instead of the alert.
        settings = _settings_of(where)
        if settings is not None and settings.ssl_certfile is not None:
            return _TlsFailure(_closed_with_certificate(where, text))
        # No certificate given: the end of a connection says no more than that (a dropped
        # connection ends so too, and is retried as one), but the likeliest cause is this.
        return _TlsFailure(
            f"TLS to {where} failed: the server closed the connection in the TLS handshake "
            "without a word; most likely the server requires a client certificate "
            "(tls-auth-clients yes): add ssl_certfile=...&ssl_keyfile=... to the URL"
        )
    if "certificate required" in low:
        return _refused(_certificate_required(where))
    if HANDSHAKE_FAILURE in low:
        return _refused(_handshake_refused(where, text))
    if any(alert in low for alert in CERTIFICATE_REFUSED):
        return _refused(_certificate_rejected(where, text))
    if "wrong version number" in low or "wrong_version_number" in low:
        return _TlsFailure(
            f"TLS to {where} failed: the server does not speak TLS on this port ({text}): use "
            "redis:// for a plain port, or the server's tls-port"
        )
    return None


def _not_verified(where: str, detail: str) -> str:
    """The server's certificate chain did not verify: against the URL's ssl_ca_certs, or,
    without one, against this machine's system CA store (which a private CA is not in)."""
    settings = _settings_of(where)
    if settings is not None and settings.ssl_ca_certs is None:
        joiner = "&" if "?" in where else "?"
        return (
            f"TLS to {where} refused: certificate verify failed ({detail}): the URL gives no "
            "ssl_ca_certs, so this machine's system CA store was used, and no CA in it signed "
            f"the server's certificate: add {joiner}ssl_ca_certs=/path/ca.crt to the URL (the "
            "CA that signed the server's certificate, its tls-cert-file)"
        )
    return (
        f"TLS to {where} refused: certificate verify failed ({detail}): check ssl_ca_certs "
        "in the URL; it must be the CA that signed the server's certificate (tls-cert-file)"
    )


def _certificate_required(where: str) -> str:
    return (
        f"TLS to {where} refused: the server requires a client certificate "
        "(tls-auth-clients yes): add ssl_certfile=...&ssl_keyfile=... to the URL"
    )


def _handshake_refused(where: str, text: str) -> str:
    """A TLS 1.2 server's handshake failure alert (``HANDSHAKE_FAILURE``): without a client
    certificate in the URL, most likely the server requires one; with one, it may have
    refused it; either way, the two sides may share no TLS version or cipher."""
    settings = _settings_of(where)
    if settings is None or settings.ssl_certfile is None:
        return (
            f"{_certificate_required(where)} (it ended the TLS handshake with a failure alert: "
            f"{text}; if it takes clients without one, it shares no TLS version or cipher with "
            "this client: check its tls-protocols and tls-ciphers)"
        )
    return (
        f"TLS to {where} refused: the server ended the TLS handshake with a failure alert "
        f"({text}): it refused the client certificate (check ssl_certfile/ssl_keyfile, and "
        "that its CA is in the server's tls-ca-cert-file), or it shares no TLS version or "
        "cipher with this client (check its tls-protocols and tls-ciphers)"
    )


_CHECK_CERTIFICATE = (
    "check ssl_certfile/ssl_keyfile, and that its CA is in the server's tls-ca-cert-file"
)


def _certificate_rejected(where: str, text: str) -> str:
    """The server refused the client certificate with an alert: what it said, if it tells."""
    low = text.lower()
    if _CLIENT_CERTIFICATE_EXPIRED in low:
        return (
            f"TLS to {where} refused ({text}): the client certificate has expired: renew it "
            "(a new ssl_certfile, signed by a CA in the server's tls-ca-cert-file), or check "
            "the server's clock if it should not have"
        )
    if _NOT_FOR_CLIENTS in low:
        return (
            f"TLS to {where} refused ({text}): the client certificate is not made for client "
            "authentication (extendedKeyUsage clientAuth): reissue it with extendedKeyUsage "
            "clientAuth (a certificate made for servers only is no client's)"
        )
    return (
        f"TLS to {where} refused: the server rejected the client certificate ({text}): "
        f"{_CHECK_CERTIFICATE}"
    )


def _closed_with_certificate(where: str, text: str) -> str:
    """The server ended the connection in the TLS handshake without a word (retried, as a
    dropped connection is), and the URL gives a client certificate: the likely causes."""
    return (
        f"TLS to {where} failed: the server closed the connection in the TLS handshake without "
        f"a word ({text}); most likely the server rejected the client certificate (its alert "
        f"saying so lost in the race with its close): {_CHECK_CERTIFICATE}; else it takes no "
        "more connections (maxclients) or is restarting"
    )


def _tls_setup_problem(chain: str, text: str, where: str) -> _TlsFailure | None:
    """What to fix when a TLS connection failed before a server said anything: the
    handshake timed out, or a certificate or key file of the URL did not load."""
    if HANDSHAKE_TIMEOUT in chain:
        # A plain port waits for a newline the TLS client never sends; but a paused server
        # (SIGSTOP, a frozen host, a stalled failover) takes the connection and never answers
        # either, and that passes: a timeout (retried as one), said as one, with both causes.
        return _TlsFailure(
            f"TLS to {where} failed: the TLS handshake timed out (the server took the "
            "connection and never answered it, within connect_timeout): a paused or "
            "overloaded server does that, which passes (try again once it answers); so does "
            "a server that does not speak TLS on this port: if the port speaks no TLS (a "
            "plain port), use redis://; else the server's TLS port (tls-port) is another one"
        )
    found = _tls_file_problem(chain, text, where)
    return _TlsFailure(found) if found is not None else None


def _tls_file_problem(chain: str, text: str, where: str) -> str | None:
    """What to fix when a certificate or key file of the URL did not load."""
    if ENCRYPTED_KEY in chain or _INVALID_ARGUMENT in chain:
        settings = _settings_of(where)
        found = settings and encrypted_key(settings.ssl_certfile, settings.ssl_keyfile)
        if found:
            return f"TLS to {where} failed: {_encrypted_key_fix(*found)}"
    if _KEY_MISMATCH in chain:
        return (
            f"TLS to {where} failed: ssl_keyfile is not the private key of the certificate in "
            f"ssl_certfile ({text}): give the key made with that certificate"
        )
    if _NO_CA_CERTIFICATE in chain:
        return (
            f"TLS to {where} failed: ssl_ca_certs holds no certificate ({text}): it must be the "
            "CA certificate (PEM) that signed the server's certificate, not a key"
        )
    settings = _settings_of(where)
    if _PEM_UNREADABLE in chain:
        if settings is not None and settings.ssl_keyfile is None:
            return (
                f"TLS to {where} failed: ssl_certfile does not hold both a certificate and its "
                f"private key ({text}): add ssl_keyfile=PATH, the key of that certificate"
            )
        return (
            f"TLS to {where} failed: the client certificate does not load ({text}): "
            "ssl_certfile must be the certificate (PEM) and ssl_keyfile its private key (PEM)"
        )
    if any(f in chain for f in ("no such file", _A_DIRECTORY, "permission denied")):
        bad = _bad_file(settings)
        return (
            f"TLS to {where} failed: {bad}"
            if bad is not None
            else f"TLS to {where} failed: a certificate or key file in the URL does not load "
            f"({text}): check the ssl_ca_certs, ssl_certfile and ssl_keyfile paths"
        )
    return None


def encrypted_key(certfile: str | None, keyfile: str | None) -> tuple[str, str] | None:
    """The option and path of the client key when it is encrypted with a pass phrase (its
    PEM header says so): ``keyfile``'s, else ``certfile``'s, which holds the key when no
    keyfile is given, as OpenSSL reads them. None when it is not, or cannot be read (its
    loading then says what is wrong with it)."""
    option, path = ("ssl_keyfile", keyfile) if keyfile else ("ssl_certfile", certfile)
    if not path:
        return None
    try:
        with open(path, "rb") as file:
            head = file.read(_PEM_READ)
    except OSError:
        return None
    return (option, path) if _ENCRYPTED_PEM.search(head) else None


def _encrypted_key_fix(option: str, path: str) -> str:
    """What an encrypted client key is, and what to do: no pass phrase is taken (OpenSSL
    would ask for it on a terminal, and a process with none would wait or fail)."""
    held = "is encrypted" if option == "ssl_keyfile" else "holds an encrypted private key"
    return (
        f"{option} {path} {held} (a pass phrase): give an unencrypted key (openssl pkey -in "
        f"{path} -out plain.key), kept readable by you alone: no pass phrase is taken"
    )


def _settings_of(where: str) -> Settings | None:
    """The settings of the masked URL ``where``: it names the certificate and key files."""
    try:
        return Settings.from_url(where)
    except e.SwarmError:
        return None


def _bad_file(settings: Settings | None) -> str | None:
    """What is wrong with the first file option that names no readable file, and what to do;
    None when all are (or ``settings`` are unknown)."""
    for name in PATH_OPTIONS if settings is not None else ():
        path = getattr(settings, name)
        if path is None:
            continue
        if not os.path.exists(path):
            return f"{name}={path} does not exist: fix the path in the URL"
        if os.path.isdir(path):
            return f"{name}={path} is a directory: name the PEM file itself"
        if not os.access(path, os.R_OK):
            return f"{name}={path} is not readable by this user: fix its permissions"
    return None
