"""One settings object, built from a URL.

The library never reads the environment: the faces (CLI, MCP server, dashboard, seed classes)
read ``SWARM_URL``, ``SWARM_NAME`` and ``SWARM_HOME`` and pass them here. (Which
``redis-server`` program the embedded server runs is the machine's business, like PATH:
``_embedded`` reads ``SWARM_REDIS_SERVER``.)

Accepted URLs::

    embedded                                  the private server under the default home
    embedded:///abs/path/to/home              the private server under that home
    redis://[user:pass@]host[:port][/db]
    rediss://[user:pass@]host[:port][/db]?ssl_ca_certs=..&ssl_certfile=..&ssl_keyfile=..
                                             &ssl_cert_reqs=required|optional|none
    (every network URL also takes ?retries=N&socket_timeout=S&connect_timeout=S; retries
     defaults to 6, and to 30 for cluster and sentinel URLs: see FAILOVER_RETRIES; how long
     a request lasts when the server does not answer: Settings.longest_request_s; when no
     sentinel or no node of the cluster answers at all: Settings.none_answered_window_s)
    (every URL, embedded and unix included, also takes ?durability=normal|strict,
     ?compression=auto|always|never and ?max_connections=N (default 100: see
     Settings.max_connections), so that the CLI, the MCP server and SWARM_URL can set them)
    (every number, a port, a database and an option's value, is written in ASCII digits:
     1_0, the Arabic-Indic ١٠ and the full-width １０, which int() reads, are refused)
    (a user name, password or path holding : / ? # @ or % is written percent-encoded:
     the password p@ss:w/rd as p%40ss%3Aw%2Frd; render_url writes every URL that way)
    unix:///path/to.sock[?db=N]               (user:pass@ allowed, as in redis-py)
    redis+cluster://[user:pass@]h1:p1[,h2:p2]
    rediss+cluster://...                      the same over TLS
    redis+sentinel://[user:pass@]h1:p1[,h2:p2]/service[/db]
                                              (a sentinel's port defaults to 26379; a service
                                               name holds letters, digits and . - _)
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, parse_qsl, quote, unquote, unquote_plus, urlsplit

from ._errors import ConfigError
from ._validate import check_swarm_name, not_ascii_number

__all__ = [
    "BACKOFF_BASE_S",
    "BACKOFF_CAP_S",
    "DEFAULT_HOME",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_SWARM",
    "PATH_OPTIONS",
    "SENTINEL_DOCS",
    "UNCHECKED_TLS",
    "Durability",
    "Kind",
    "Settings",
    "check_sentinel_service",
    "handed_url",
    "mask_options",
    "mask_query",
    "mask_url",
    "retry_window",
    "shown_user",
    "unverified_tls",
    "url_host",
    "user_may_be_secret",
]

Kind = Literal["embedded", "standalone", "unix", "cluster", "sentinel"]
Durability = Literal["normal", "strict"]
Compression = Literal["auto", "always", "never"]

DEFAULT_HOME = Path("~/.local/share/redis-swarm").expanduser()
# Where a message about a Sentinel set (its URL, its guard min-replicas-to-write) points to.
SENTINEL_DOCS = "docs/deployment.md, 'Sentinel'"
# The URL of a Sentinel setup (docs/deployment.md, "Sentinel"; ``Settings.from_url``).
SENTINEL_URL = "redis+sentinel://SENTINEL:26379/SERVICE"
DEFAULT_SWARM = "default"


# The options whose value is a file's path (read relative to the current directory, as
# redis-py and the ssl module open it): made absolute in a URL handed on (``handed_url``).
PATH_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
_SSL_OPTIONS = (*PATH_OPTIONS, "ssl_cert_reqs")
# Connection options any network URL may carry (e.g. ?retries=40 to ride out a failover).
_CLIENT_OPTIONS: dict[str, type] = {
    "retries": int,
    "socket_timeout": float,
    "connect_timeout": float,
}
# How many connections a handle's client holds at most (Settings.max_connections): every
# kind of URL takes it, embedded and unix included, since every client has a pool.
_POOL_OPTIONS: dict[str, type] = {"max_connections": int}
# The options whose values are numbers, and the type each is read as.
_NUMBER_OPTIONS: dict[str, type] = {**_CLIENT_OPTIONS, **_POOL_OPTIONS}
# redis-py's own default since 8.0 (before, 2**31: no limit), given to every redis-py here:
# enough for most handles, and a bound that keeps a runaway handle from taking a server's
# maxclients (10000 by default) alone.
DEFAULT_MAX_CONNECTIONS = 100
_CERT_REQS = ("required", "optional", "none")
# How many times a request is retried by default: its pauses add up to 5.1 s at most
# (retry_window), enough for a server that restarts.
PLAIN_RETRIES = 6
# Cluster and Sentinel exist to survive a failover, which takes the servers' failure detection
# (cluster-node-timeout 15 s, down-after-milliseconds 30 s by default) plus an election: their
# clients keep retrying up to 53 s by default, standalone ones up to 5.1 s (retry_window).
# While a failover runs, some of their servers still answer (sentinels saying the master is
# down, nodes saying CLUSTERDOWN): when none answers at all, a request is retried for no
# longer than a plain URL's (Settings.none_answered_window_s).
FAILOVER_RETRIES = 30
# The pause before the Nth retry of a request: a random share of BACKOFF_BASE_S * 2**N, at most
# BACKOFF_CAP_S (exponential backoff with jitter).
BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 2.0


def retry_window(retries: int) -> float:
    """How long ``retries`` retries of one request ride out an outage: the longest their
    pauses add up to (5.1 s for 6, 53.1 s for 30)."""
    return sum(
        min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2.0 ** min(n, 64)) for n in range(1, retries + 1)
    )


# Settings of the swarm's behaviour, not of the connection: every kind of URL takes them.
_BEHAVIOUR_OPTIONS = ("durability", "compression")
# What a URL whose user name, password or path holds a raw URL delimiter is told. The error
# cannot say more: where the password ends is exactly what such a URL does not tell.
_ENCODE_HINT = (
    "a password, user name or path holding any of : / ? # @ [ ] must have them percent-encoded, "
    "e.g. the password p@ss:w/rd written p%40ss%3Aw%2Frd"
)


def _unreadable(url: str) -> str:
    """What to fix in a URL that does not split into its parts: with no credentials, a
    bracket that does not enclose an IPv6 host."""
    if "@" not in url and url.split("://", 1)[0].lower() in _FORMS:
        return (
            f"an IPv6 host is written in brackets, its port after them, as [::1]:6379; {_form(url)}"
        )
    return _ENCODE_HINT


@dataclass(frozen=True)
class Settings:
    """Where the swarm lives and how to talk to it. Build it with ``Settings.from_url``."""

    kind: Kind
    swarm: str = "default"
    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl: bool = False
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_cert_reqs: str = "required"
    nodes: tuple[tuple[str, int], ...] = ()
    service_name: str | None = None
    home: Path = DEFAULT_HOME
    # Timeouts in seconds; retries on connection errors use exponential backoff with jitter.
    # socket_timeout: the longest a reply may take once a request is sent (a server that
    # takes longer is taken for hung; a blocking wait asks the server for less than it);
    # well above the 5 s a strict write's WAIT may take (_durability.WAIT_MS).
    socket_timeout: float = 10.0
    connect_timeout: float = 5.0
    retries: int = PLAIN_RETRIES
    # The retries of a Sentinel or Cluster URL's request while none of its servers answers at
    # all (none_answered_window_s): a plain URL's default, the URL's retries if fewer.
    none_answered_retries: int = PLAIN_RETRIES
    health_check_interval: int = 15
    # The connections the handle's client may hold at once (a cluster client: to each node).
    # A call holds one while it runs, and a call that waits (a claim's wait_s, an ask, an
    # inbox wait) for its whole wait: a handle shared by more calls at once than this fails
    # the extra ones at once (ConnectionFailed, saying so) rather than queue them.
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    # "strict" waits for the write to reach disk (embedded: appendfsync always) or a replica.
    durability: Durability = "normal"
    compression: Compression = "auto"
    # The URL these settings are shown as when not their own (``url``): those of a request of
    # this process's own with other timeouts (``with_timeouts``). Not copied by ``replace``.
    shown_as: str | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_url(
        cls,
        url: str = "embedded",
        *,
        swarm: str = "default",
        home: str | Path | None = None,
        **options: object,
    ) -> Settings:
        """Parse ``url`` into Settings. A bad URL raises ConfigError naming what is wrong."""
        check_swarm_name(swarm)
        if not isinstance(url, str):
            raise ConfigError(
                f"the Redis URL must be a string, got {type(url).__name__}: pass 'embedded' "
                "or 'redis://host:port'"
            )
        if not url.strip():
            raise ConfigError("the Redis URL is empty: pass 'embedded' or redis://host:port")
        url = url.strip()
        base: dict[str, object] = {"swarm": swarm}
        if home is not None:
            base["home"] = Path(home).expanduser()
        known = sorted(f.name for f in dataclasses.fields(cls) if f.init)
        for name in options:
            if name not in known:
                raise ConfigError(f"unknown setting {name!r}: use one of {', '.join(known)}")
        try:
            parser = _parser(url)
        except ConfigError:
            _refuse_secret_options(url)
            raise
        try:
            try:
                values = {**base, **parser(url), **options}
            except ValueError:  # urlsplit's own refusals ("Invalid IPv6 URL" for a raw [ or ])
                raise ConfigError(
                    f"cannot read the URL {mask_url(url)!r}: {_unreadable(url)}"
                ) from None
            settings = cls(**values)  # type: ignore[arg-type]
            settings._check()
            check_sentinel_service(settings, given=url)
        except ConfigError:
            # Its message may quote a piece of a secret given as an option (the database
            # 'CRET' of /my&password=SE/CRET), or of a password that ran past the host part.
            _refuse_secret_options(url)
            if parser is not _parse_embedded and _spills(url):
                raise ConfigError(
                    f"cannot read the URL {mask_url(url)!r}: {_ENCODE_HINT}"
                ) from None
            raise
        return settings

    def _check(self) -> None:
        if self.durability not in ("normal", "strict"):
            raise ConfigError(f"durability must be 'normal' or 'strict', not {self.durability!r}")
        if self.compression not in ("auto", "always", "never"):
            raise ConfigError(
                f"compression must be 'auto', 'always' or 'never', not {self.compression!r}"
            )
        if (
            isinstance(self.max_connections, bool)
            or not isinstance(self.max_connections, int)
            or self.max_connections < 1
        ):
            raise ConfigError(
                f"max_connections must be a whole number of at least 1, not "
                f"{self.max_connections!r}: it is how many connections the handle may hold at "
                "once (each call that waits holds one); e.g. ?max_connections=300 in the URL, "
                "or Settings.from_url(URL, max_connections=300); the default is "
                f"{DEFAULT_MAX_CONNECTIONS}"
            )
        if self.ssl_cert_reqs not in _CERT_REQS:
            raise ConfigError(
                f"ssl_cert_reqs must be one of {', '.join(_CERT_REQS)}, not {self.ssl_cert_reqs!r}"
            )
        for name in ("service_name", "path", "home", *PATH_OPTIONS):
            value = getattr(self, name)
            secret = _secret_options(str(value), _VALUE_DELIMITER) if value else []
            if secret:  # (options written into it: a '?' forgotten, as in /mymaster&password=)
                said = f"{secret[0][0]}=..." if _OPTION_NAME.fullmatch(secret[0][0]) else "a secret"
                raise ConfigError(
                    f"the {name} of {mask_url(self.url)!r} gives {said} as an "
                    "option, which a Redis URL does not take: a user name and password go "
                    "before the host, as USER:PASSWORD@HOST, percent-encoded"
                )
        if self.ssl_keyfile and not self.ssl_certfile:
            raise ConfigError(
                "ssl_keyfile is the key of a client certificate: give the certificate too "
                "(ssl_certfile=...), or drop ssl_keyfile"
            )

    def with_swarm(self, swarm: str) -> Settings:
        """The same server, another swarm."""
        return dataclasses.replace(self, swarm=check_swarm_name(swarm))

    def replace(self, **changes: object) -> Settings:
        settings = dataclasses.replace(self, **changes)  # type: ignore[arg-type]
        settings._check()
        return settings

    def with_timeouts(
        self,
        *,
        retries: int | None = None,
        socket_timeout: float | None = None,
        connect_timeout: float | None = None,
        none_answered_retries: int | None = None,
    ) -> Settings:
        """These settings with other retries and timeouts (each one given; the others kept),
        for a request of this process's own (a quick probe, a hook, the doctor on a failing
        cluster), shown as these are (``url``): its errors name the URL the user gave, not
        options the user never wrote."""
        given = {
            "retries": retries,
            "socket_timeout": socket_timeout,
            "connect_timeout": connect_timeout,
            "none_answered_retries": none_answered_retries,
        }
        timed = self.replace(**{name: value for name, value in given.items() if value is not None})
        object.__setattr__(timed, "shown_as", self.url)  # (frozen: set once, as made)
        return timed

    @property
    def retry_window_s(self) -> float:
        """How long the retries of one request ride out an outage (``retry_window``)."""
        return retry_window(self.retries)

    @property
    def none_answered_window_s(self) -> float:
        """How long the retries of one request ride out a Sentinel or Cluster URL none of whose
        servers answers at all (every sentinel of the URL, or every node the client knows,
        refuses connections or takes them and never answers): the retry window of
        ``none_answered_retries`` (by default a plain URL's retries: 5.1 s), the URL's own if
        shorter. A failover leaves some of them answering (sentinels that say the master is
        down, nodes that say CLUSTERDOWN), and is ridden out for the whole ``retry_window_s``;
        none answering is a setup that is down or restarting (a sentinel restarts in about a
        second) or a URL naming the wrong ports, which a user learns within seconds."""
        return retry_window(self.none_answered_retries_in_force)

    @property
    def none_answered_retries_in_force(self) -> int:
        """The retries ``none_answered_window_s`` is made of: ``none_answered_retries``, the
        URL's own ``retries`` if fewer."""
        return min(self.retries, self.none_answered_retries)

    @property
    def longest_request_s(self) -> float:
        """The longest one request lasts when the server does not answer (a stopped or hung
        process, a host gone from the network) before it raises ConnectionFailed: one
        attempt (``connect_timeout`` + ``socket_timeout``) plus the retry window, since
        once an attempt has timed out another is made only if it would end within the
        window too (``_retries``). 20.1 s with a redis:// URL's defaults, where a server that
        takes connections but never answers fails the request after ``socket_timeout``
        (10 s): no second attempt fits; 68.1 s with a cluster or Sentinel URL's, whose
        retries ride out a failover. A request that waits (a claim's ``wait_s``, an inbox's)
        asks the server to block for less than ``socket_timeout``: an operation that waits
        ends within its wait plus this bound."""
        return self.connect_timeout + self.socket_timeout + self.retry_window_s

    @property
    def is_local(self) -> bool:
        """True when the server is on this machine (compression would not pay): every host
        a loopback name or address (``_net.is_loopback``, the one rule of it)."""
        if self.kind in ("embedded", "unix"):
            return True
        from ._net import is_loopback  # (_net imports this module)

        hosts = [h for h, _ in self.nodes] or [self.host]
        return all(is_loopback(h) for h in hosts)

    @property
    def url(self) -> str:
        """The URL with the password masked: safe for logs, errors and output (that of the
        settings these were made from, for ``with_timeouts``'s)."""
        return self.shown_as or self.render_url(mask=True)

    @property
    def shown_user(self) -> str:
        """The user these settings log in as, for a message or a report: masked as ``url``
        masks it (``shown_user``). The one way a user name is shown: ``username`` itself is
        what logs in, never printed."""
        return shown_user(self.username, self.password)

    @property
    def holds_secret(self) -> bool:
        """Whether the URL holds a secret: a password, or a user name that may be one
        (``user_may_be_secret``: redis://SECRET@HOST, redis://USER%3ASECRET@HOST), which
        ``url`` shows as ``***``. The one rule of it: no file or command written for another
        process holds such a URL (``_executable.reach_options``, ``swarm mcp install``)."""
        return bool(self.password) or user_may_be_secret(self.username, self.password)

    def render_url(self, *, mask: bool = True) -> str:
        """The URL of these settings, every option it can carry included (those left at
        their default are left out); ``Settings.from_url`` of the unmasked one gives them
        back (but ``swarm``, ``none_answered_retries`` and ``health_check_interval``, which
        no URL carries). User name, password and paths are percent-encoded; ``mask`` shows
        the password as ``***``, and so any secret option written into a service name or a
        path (``mask_options``: /mymaster&password=..., which ``_check`` refuses)."""

        def shown(text: str) -> str:
            return mask_options(text, _VALUE_DELIMITER) if mask else text

        auth = ""
        if self.username or self.password:
            auth = quote(self.username or "", safe="")
            if mask and user_may_be_secret(self.username, self.password):
                auth = "***"
            if self.password:
                auth += ":" + ("***" if mask else quote(self.password, safe=""))
            auth += "@"
        if self.kind == "embedded":
            where = f"embedded://{shown(_encoded(str(self.home.absolute())))}"
        elif self.kind == "unix":
            where = f"unix://{auth}{shown(_encoded(self.path or ''))}"
        elif self.kind == "standalone":
            tls = "s" if self.ssl else ""
            where = f"redis{tls}://{auth}{url_host(self.host)}:{self.port}/{self.db}"
        else:
            tls = "s" if self.ssl else ""
            hosts = ",".join(f"{url_host(h)}:{p}" for h, p in self.nodes)
            where = f"redis{tls}+{self.kind}://{auth}{hosts}"
            if self.kind == "sentinel":
                where += f"/{shown(quote(self.service_name or '', safe=''))}/{self.db}"
        query = "&".join(f"{name}={shown(_encoded(value))}" for name, value in self._options())
        return f"{where}?{query}" if query else where

    def _options(self) -> list[tuple[str, str]]:
        """The ?options of the URL: those not at their default (which may depend on the kind)."""
        out: list[tuple[str, object]] = []
        if self.kind == "unix":
            out.append(("db", self.db))
        if self.ssl:
            out += [(name, getattr(self, name)) for name in _SSL_OPTIONS]
        if self.kind not in ("embedded", "unix"):
            out += [(name, getattr(self, name)) for name in _CLIENT_OPTIONS]
        out += [(name, getattr(self, name)) for name in (*_POOL_OPTIONS, *_BEHAVIOUR_OPTIONS)]
        return [
            (name, _number(value) if name in _NUMBER_OPTIONS else str(value))
            for name, value in out
            if value is not None and value != _default(name, self.kind)
        ]

    def __repr__(self) -> str:
        # (its own URL, masked: not ``url``, which is that of the settings a
        # ``with_timeouts`` was made from, and would hide its real timeouts)
        return f"Settings(url={self.render_url(mask=True)!r}, swarm={self.swarm!r})"


def user_may_be_secret(username: str | None, password: str | None) -> bool:
    """Whether the user name of a URL may be a password, to be masked as one: written where
    the user name goes (redis://SECRET@HOST, the ':' before it forgotten), it is the only
    credential of the URL; or it holds a ':' (percent-encoded: redis://USER%3ASECRET@HOST),
    a user and password run together. A user name beside a password is none: shown."""
    return bool(username) and (password is None or ":" in (username or ""))


def shown_user(username: str | None, password: str | None) -> str:
    """The user a URL logs in as, for a message: ``***`` for a user name that may be a
    password (``user_may_be_secret``), ``default`` for none."""
    if user_may_be_secret(username, password):
        return "***"
    return username or "default"


# What each ssl_cert_reqs but "required" leaves unchecked of the server a client connects to
# (a client's ssl CERT_OPTIONAL checks the certificate as CERT_REQUIRED does; the host name is
# checked only with "required": ``_connections.common``).
UNCHECKED_TLS = {
    "none": "the server's certificate and host name",
    "optional": "the server's host name",
}


def unverified_tls(settings: Settings) -> str | None:
    """What the URL of ``settings`` turns off of the verification of its server, said for a
    person (the ``TlsNotVerified`` warning a handle gives as it connects); None when the
    certificate and host name are verified. (``UNCHECKED_TLS`` names what is off.)"""
    unchecked = UNCHECKED_TLS.get(settings.ssl_cert_reqs) if settings.ssl else None
    if unchecked is None:
        return None
    option = f"ssl_cert_reqs={settings.ssl_cert_reqs}"
    if settings.ssl_cert_reqs == "none":
        return (
            f"{option} turns off the check of {unchecked}: anyone in the middle can pretend "
            "to be the server, and is sent the URL's user and password (the traffic is still "
            "encrypted); use it only to diagnose, then drop it from the URL (and give "
            "ssl_ca_certs=CA.crt if the server's CA is a private one)"
        )
    return (
        f"{option} turns off the check of {unchecked} (as none does): any server with a "
        "certificate from a CA this machine trusts can pretend to be this one, and is sent "
        "the URL's user and password; drop it from the URL to verify the host name too "
        "(connect by a name the certificate lists)"
    )


def _default(name: str, kind: Kind) -> object:
    """The value of setting ``name`` when the URL does not give it."""
    return _default_retries(kind) if name == "retries" else getattr(Settings, name)


def _default_retries(kind: Kind) -> int:
    return FAILOVER_RETRIES if kind in ("cluster", "sentinel") else Settings.retries


def _number(value: object) -> str:
    """A retries or timeout value as a URL writes it: 5 rather than 5.0, exact otherwise."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def _encoded(text: str) -> str:
    """A path or an option's value as a URL carries it: every delimiter percent-encoded."""
    return quote(text, safe="/")


# The part of a URL that names its scheme (a known one even when mistyped, as rediss//).
_SCHEME_PREFIX = re.compile(
    r"[a-z][a-z0-9+.-]*://|(?:embedded|unix|rediss?(?:\+cluster|\+sentinel)?)[:/]+", re.I
)
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*", re.I)


def mask_url(url: str) -> str:
    """The URL for an error message, its user name and password hidden even when the URL
    does not parse: everything between the scheme and the last '@' (a password may hold
    any character, even an '@', a '/' or '://', so nothing else tells where it ends); and
    the value of every option whose name says it holds a secret (``mask_options``: a
    password given as ?password=..., which the URL refuses)."""
    return mask_options(_without_userinfo(url))


def mask_query(url: str, secret: Callable[[str], bool]) -> str:
    """``url`` (or a path with its query) with the value of every query parameter whose
    name ``secret`` says holds one shown as ``***``: the name matched decoded, as a server
    reads it (``parse_qsl``, blank values kept: a ``?%74oken=`` is a token too). The rest as
    it came, a fragment kept. (An access line's tokens, a webhook's keys.)"""
    where, mark, query = url.partition("?")
    if not mark:
        return url
    query, hash_mark, fragment = query.partition("#")
    kept = []
    for part in query.split("&"):
        # (a part without '=' has no value to cut; parse_qsl of one part: its decoded name)
        named = parse_qsl(part, keep_blank_values=True)
        if "=" in part and named and secret(named[0][0]):
            part = part.partition("=")[0] + "=***"
        kept.append(part)
    return f"{where}?{'&'.join(kept)}{hash_mark}{fragment}"


def _without_userinfo(url: str) -> str:
    """``url`` with everything between its scheme and its last '@' shown as ``***``."""
    at = url.rfind("@")
    if at < 0 or _socket_path_at(url, url[len("unix://") :]):
        return url  # (a socket's path holding '@', no credentials before it)
    prefix = _SCHEME_PREFIX.match(url)
    keep = prefix.end() if prefix is not None and prefix.end() <= at else 0
    return f"{url[:keep]}***{url[at:]}"


# Where an option may start in a URL (or in a text written as one: a service name holding
# '&password=...'), a delimiter written as it is or percent-encoded, once or more (%2526):
# any of them in a URL; in a value (a service name, a file's path), those no path holds.
_URL_DELIMITER = re.compile(r"[?&;#/,:@]|%(?:25)*(?:3F|26|3B|23|2F|2C|3A|40)", re.IGNORECASE)
_VALUE_DELIMITER = re.compile(r"[?&;#]|%(?:25)*(?:3F|26|3B|23)", re.IGNORECASE)
_EQUALS = re.compile(r"=|%(?:25)*3D", re.IGNORECASE)
# The names of the options that hold a secret: a password, a token, a secret, a credential,
# and the user name (the URL's own is masked with its password). No option a URL takes has one.
_SECRET_NAME = re.compile(r"pass|secret|token|cred|auth|^user(?:name)?$", re.IGNORECASE)
# Where a secret option's value ends before the end of the text: at an '&' that an option the
# URL takes follows. Nothing else tells (a value may hold any ';', '#', '/' or '&').
_NEXT_OPTION = re.compile(
    "&(?=(?:{})=)".format("|".join((*_SSL_OPTIONS, *_NUMBER_OPTIONS, *_BEHAVIOUR_OPTIONS, "db")))
)


# A name an error may quote (any other is said as "a secret"): no piece of a value.
_OPTION_NAME = re.compile(r"[A-Za-z0-9_.-]{1,40}")


def _decoded(text: str) -> str:
    """``text`` percent-decoded until nothing changes (%253D is an '=' encoded twice)."""
    for _ in range(8):
        decoded = unquote_plus(text)
        if decoded == text:
            break
        text = decoded
    return text


def _secret_options(
    text: str,
    delimiter: re.Pattern[str] = _URL_DELIMITER,
    folders: Sequence[tuple[int, int]] = (),
) -> list[tuple[str, int, int]]:
    """The options in ``text`` whose name says they hold a secret (``_SECRET_NAME``), their
    name or its '=' percent-encoded too: each as its decoded name and where its value starts
    and ends (at the end of ``text``, or at an '&' before an option a URL takes). A '/' inside
    one of ``folders`` (spans of ``text`` that hold a file's path: ``_file_paths``) starts no
    option: it separates folders, and a folder may be named auth=1."""
    found: list[tuple[str, int, int]] = []
    starts = [0, *(m.end() for m in delimiter.finditer(text) if not _in_folder(m, folders))]
    for start in starts:
        if found and start < found[-1][2]:
            continue  # (inside the value of the one before)
        after = delimiter.search(text, start)
        token = text[start : after.start() if after else len(text)]
        name, equals, _ = _decoded(token).partition("=")
        name = name.strip()
        if not equals or not name or "/" in name or not _SECRET_NAME.search(name):
            continue
        # (its value from the '=', or the whole option when that '=' is encoded otherwise)
        raw = _EQUALS.search(token)
        value = (
            start + raw.end() if raw and _decoded(token[: raw.start()]).strip() == name else start
        )
        end = _NEXT_OPTION.search(text, value)
        found.append((name, value, end.start() if end else len(text)))
    return found


def _in_folder(delimiter: re.Match[str], folders: Sequence[tuple[int, int]]) -> bool:
    """True when ``delimiter`` is a '/' (percent-encoded or not) inside one of ``folders``."""
    return _decoded(delimiter.group()) == "/" and any(
        start <= delimiter.start() < end for start, end in folders
    )


def _file_paths(url: str) -> list[tuple[int, int]]:
    """Where ``url`` holds a file's path, as spans of it: a unix socket's or the embedded
    home (before any '?'), and the value of each of ``PATH_OPTIONS``. (The same parts
    ``Settings._check`` reads with ``_VALUE_DELIMITER``, once they are parsed.)"""
    spans = []
    scheme, sep, _ = url.partition("://")
    query = url.find("?")
    if sep and scheme.lower() in ("unix", "embedded"):
        spans.append((len(scheme) + len(sep), query if query >= 0 else len(url)))
    if query >= 0:
        at = query + 1
        for pair in url[at:].split("&"):
            name, equals, _ = pair.partition("=")
            if equals and unquote_plus(name) in PATH_OPTIONS:
                spans.append((at + len(name) + 1, at + len(pair)))
            at += len(pair) + 1
    return spans


def mask_options(text: str, delimiter: re.Pattern[str] = _URL_DELIMITER) -> str:
    """``text`` (a URL, or a piece of one) with the value of every option whose name says it
    holds a secret (``_secret_options``) shown as ``***``: from its '=' to the end of the
    text, or to an '&' that an option a URL takes follows."""
    for _, start, end in reversed(_secret_options(text, delimiter)):
        if end > start:
            text = f"{text[:start]}***{text[end:]}"
    return text


def _refuse_secret_options(url: str) -> None:
    """Refuse a URL that gives a secret (a password, a token...) as an option or in its path
    (a '?' forgotten: /mymaster&password=...), which no Redis URL takes, saying where a
    password goes: the error it met else may quote a piece of it (the database 'CRET' of
    /my&password=SE/CRET, a service name that the URL of its Settings shows).

    A folder named so in a file's path (unix:///run/auth=1/redis.sock) is no such option: the
    URL's error is its own (which shows the URL masked all the same, by ``mask_url``)."""
    text = _without_userinfo(url)
    secret = _secret_options(text, folders=_file_paths(text))
    if not secret:
        return
    scheme = url.split("://", 1)[0].lower() if "://" in url else url.split("?", 1)[0].lower()
    option = secret[0][0].lower()
    if scheme == "embedded":
        where = "the embedded server takes no password: drop it"
    elif option.startswith("ssl") and scheme in _TLS_SCHEMES:
        # (redis-py's ssl_password: an encrypted key's passphrase)
        where = (
            "a client key's passphrase is not taken: give ssl_keyfile a key that is not "
            "encrypted (openssl pkey -in KEY -out PLAIN_KEY), kept readable by you alone"
        )
    elif option.startswith("ssl"):
        where = (
            f"{option} is a TLS setting, and this URL does not use TLS (a rediss URL does: "
            f"{', '.join(f'{tls}://' for tls in _TLS_SCHEMES)}): drop it"
        )
    elif option.startswith("sentinel"):  # (sentinel_password)
        where = (
            "sentinels that require a password are not supported: the sentinels are reached "
            f"without one ({SENTINEL_DOCS}): drop it; the user name and password "
            "before the host are the servers'"
        )
    else:
        form = _form(url) if scheme in _FORMS else "write it as redis://USER:PASSWORD@HOST:6379"
        if scheme == "unix":
            form = "write it as unix://USER:PASSWORD@/path/to/redis.sock"
        where = (
            "a user name and password go before the host, percent-encoded (the password "
            f"p@ss:w/rd as p%40ss%3Aw%2Frd): {form}"
        )
    name = f"{secret[0][0]}=..." if _OPTION_NAME.fullmatch(secret[0][0]) else "a secret"
    raise ConfigError(
        f"cannot read the URL {mask_url(url)!r}: it gives {name} as an option, "
        f"which a Redis URL does not take; {where}"
    ) from None


def handed_url(url: str) -> str:
    """``url`` as handed to another process (an agent's environment, a client's or a hook's
    configuration, a prompt, the URL ``swarm acl`` tells agents to use), which may run in
    another folder: each file path among its options (``PATH_OPTIONS``: ssl_ca_certs,
    ssl_certfile, ssl_keyfile) made absolute against the current directory, where this
    process reads it. The rest stays as written (a masked password stays masked); a URL with
    no options (embedded, a ``${SWARM_URL}`` reference) comes back as it is."""
    base, mark, query = url.partition("?")
    if not mark:
        return url
    pairs = []
    for pair in query.split("&"):
        name, equals, value = pair.partition("=")
        if equals and value and unquote_plus(name) in PATH_OPTIONS:
            # (unquote_plus: the parser's parse_qs reads a '+' as a space, so this does too)
            value = _encoded(str(Path(unquote_plus(value)).absolute()))
        pairs.append(f"{name}{equals}{value}")
    return f"{base}?{'&'.join(pairs)}"


def _authority_end(rest: str) -> int:
    """Where the host part ends in ``rest`` (a URL after its '://')."""
    found = re.search(r"[/?#]", rest)
    return found.start() if found else len(rest)


def _spills(url: str) -> bool:
    """True when an '@' comes after the host part: a user name or password before it that
    holds a raw / ? or # (or an option holding a raw '@')."""
    rest = url.split("://", 1)[-1]
    return "@" in rest[_authority_end(rest) :]


def _socket_path_at(url: str, path: str) -> bool:
    """True when the '@' in ``path`` belongs to a unix socket's file name (/run/user@1000):
    nothing before the path (unix:///...) and no ':' before the '@', so no user:password
    that a raw '/' cut short."""
    return url.lower().startswith("unix:///") and ":" not in path[: path.rfind("@")]


def _check_delimiters(url: str) -> None:
    """Refuse what no Redis URL holds: a fragment ('#'), an '@' in the path. Either is a
    password (or a path) with a raw delimiter, that would else be read as something else."""
    rest = url.split("://", 1)[1]
    path = re.split(r"[?#]", rest[_authority_end(rest) :], maxsplit=1)[0]
    if "#" in rest or ("@" in path and not _socket_path_at(url, path)):
        raise ConfigError(f"cannot read the URL {mask_url(url)!r}: {_ENCODE_HINT}")


# A variable's reference that its client left as it was (Claude Code passes ``${VAR}`` on when
# VAR is unset; the MCP Inspector never expands it): named in the error, which else reads as
# a malformed URL.
_UNFILLED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def _parser(url: str) -> Callable[[str], dict[str, object]]:
    """The parser of ``url``'s scheme; a ConfigError for a URL that has none it knows."""
    if "://" not in url:
        if url.split("?", 1)[0].lower() == "embedded":
            return _parse_embedded
        reference = _UNFILLED.fullmatch(url.strip())
        if reference is not None:
            name = reference.group(1) or reference.group(2)
            raise ConfigError(
                f"{name} is not set or not expanded: the URL given is the reference {url!r} "
                f"itself, which an MCP client passes on as written when its configuration "
                "says so (as `swarm mcp install` writes for a URL that holds a password) and "
                f"either {name} is not in its environment or the client does not expand "
                "${VAR} in a server's env (the MCP Inspector does not). Set "
                f"{name} to the Redis URL (e.g. export {name}='rediss://user:password@host:6380') "
                "in the shell that starts the client, then start the client again; a client "
                f"that does not expand it needs the URL itself (the Inspector: -e {name}=URL)"
            )
        raise ConfigError(
            f"{mask_url(url)!r} is not a Redis URL: it needs '://' after the scheme, as in "
            "redis://host:6379 or rediss://user:password@host:6380 (or use embedded)"
        )
    scheme = url.split("://", 1)[0]
    if not _SCHEME.fullmatch(scheme):
        raise ConfigError(
            f"{mask_url(url)!r} is not a Redis URL: it must start with a scheme, as in "
            f"redis://host:6379; {_ENCODE_HINT}"
        )
    parser = _PARSERS.get(scheme.lower())
    if parser is None:
        raise ConfigError(
            f"unsupported URL scheme {scheme!r} in {mask_url(url)!r}: use embedded, redis://, "
            "rediss://, unix://, redis+cluster:// or redis+sentinel://"
        )
    if parser is not _parse_embedded:
        _check_delimiters(url)
    return parser


def url_host(host: str) -> str:
    """``host`` as a URL or an address (HOST:PORT) says it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def _auth(netloc: str) -> tuple[dict[str, object], str]:
    if "@" not in netloc:
        return {}, netloc
    userinfo, hosts = netloc.rsplit("@", 1)
    user, _, password = userinfo.partition(":")
    out: dict[str, object] = {}
    if user:
        out["username"] = unquote(user)
    if password:
        out["password"] = unquote(password)
    return out, hosts


def _port(text: str, url: str) -> int:
    _ascii_number(f"port {text!r}", text, url)
    try:
        port = int(text)
    except ValueError:
        raise ConfigError(
            f"port {text!r} in {mask_url(url)!r} is not a number: {_form(url)}"
        ) from None
    if not 0 < port < 65536:
        raise ConfigError(f"port {port} in {mask_url(url)!r} is out of range 1-65535: {_form(url)}")
    return port


def _db(text: str, url: str) -> int:
    _ascii_number(f"database {text!r}", text, url)
    try:
        db = int(text)
    except ValueError:
        raise ConfigError(f"database {text!r} in {mask_url(url)!r} is not a number") from None
    if db < 0:
        raise ConfigError(
            f"database {db} in {mask_url(url)!r} is negative: name one from 0 (Redis's default "
            "has 16, 0 to 15), as in redis://HOST:6379/0"
        )
    return db


def _ascii_number(what: str, text: str, url: str, *, fraction: bool = False) -> None:
    """Refuse ``text``, a number of ``url`` (``what`` names it), when it is not written in
    ASCII digits, which ``int`` and ``float`` would read all the same (``not_ascii_number``)."""
    if not_ascii_number(what, text) is not None:  # (the URL is masked only for the error)
        refused = not_ascii_number(f"{what} in {mask_url(url)!r}", text, fraction=fraction)
        raise ConfigError(refused)


def _query(
    url: str, query: str, allowed: tuple[str, ...], *, network: bool = True
) -> dict[str, object]:
    """The ?options of a URL: ``allowed`` ones, the pool's size, the behaviour options, and
    for a network URL the connection options (retries and timeouts)."""
    out: dict[str, object] = {}
    allowed = (
        *allowed,
        *(_CLIENT_OPTIONS if network else ()),
        *_POOL_OPTIONS,
        *_BEHAVIOUR_OPTIONS,
    )
    for name, values in parse_qs(query, keep_blank_values=True).items():
        if name not in allowed:
            tls = (
                f" ({name} is for TLS: use the rediss scheme, as in rediss:// or rediss+cluster://)"
                if name in _SSL_OPTIONS
                else ""
            )
            raise ConfigError(
                f"unknown option {name!r} in {mask_url(url)!r}{tls}: "
                f"allowed are {', '.join(allowed)}"
            )
        out[name] = values[-1]
        convert = _NUMBER_OPTIONS.get(name)
        if convert is not None:
            fraction = convert is float
            _ascii_number(f"option {name}={values[-1]!r}", values[-1], url, fraction=fraction)
            try:
                number = convert(values[-1])
            except ValueError:
                whole = ""
                if convert is int:
                    whole = f", or not a whole one: write {name}=N, N a whole number"
                raise ConfigError(
                    f"option {name}={values[-1]!r} in {mask_url(url)!r} is not a number{whole}"
                ) from None
            if not math.isfinite(number):  # (nan, inf: no timeout a socket takes)
                raise ConfigError(
                    f"option {name}={values[-1]!r} in {mask_url(url)!r} is not a finite "
                    f"number: write {name}=N, N a number such as 10"
                )
            if number < 0 and name not in _POOL_OPTIONS:  # (Settings._check says what it takes)
                raise ConfigError(
                    f"option {name} in {mask_url(url)!r} is negative: write {name}=N, N a "
                    "number from 0"
                )
            out[name] = number
    return out


# How each kind of network URL is written, for the errors about one written otherwise; the
# examples are those of docs/deployment.md.
_FORMS = {
    "redis": "redis://[USER:PASSWORD@]HOST[:PORT][/DB], e.g. redis://10.0.0.5:6379/0",
    "rediss": "rediss://[USER:PASSWORD@]HOST[:PORT][/DB]?ssl_ca_certs=CA.pem",
    "redis+cluster": (
        "redis+cluster://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...] (any nodes of the cluster), "
        "e.g. redis+cluster://10.0.0.5:7000,10.0.0.6:7000"
    ),
    "redis+sentinel": (
        "redis+sentinel://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]/SERVICE[/DB] (the "
        "sentinels, and the name they monitor the master under), e.g. "
        "redis+sentinel://10.0.0.5:26379,10.0.0.6:26379/mymaster"
    ),
}
_FORMS["rediss+cluster"] = _FORMS["redis+cluster"].replace("redis+", "rediss+")
_FORMS["rediss+sentinel"] = _FORMS["redis+sentinel"].replace("redis+", "rediss+")


def _form(url: str) -> str:
    """How a URL of ``url``'s scheme is written (the end of an error about it)."""
    return f"write it as {_FORMS[url.split('://', 1)[0].lower()]}"


# The port a URL that names none means: Sentinel's own default, Redis's for the others.
_DEFAULT_PORT = {"sentinel": 26379}
# A host name, as a resolver takes it (ASCII once IDNA-encoded; labels of letters, digits,
# '-' and '_', which container and compose service names hold), or an IPv4 address.
_HOST_NAME = re.compile(r"[A-Za-z0-9_-]{1,63}(?:\.[A-Za-z0-9_-]{1,63})*\.?")


def _check_host(host: str, bracketed: bool, url: str) -> str:
    """``host``, refused with what to write when no resolver would take it (a space, a '&',
    an empty label) rather than failing inside redis-py at the first connection."""
    if bracketed:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(
                f"[{host}] in {mask_url(url)!r} is not an IPv6 address (only those go in "
                f"brackets): {_form(url)}"
            ) from None
        return host
    try:
        ascii_name = host.encode("idna").decode("ascii")
    except UnicodeError:
        ascii_name = ""
    if not _HOST_NAME.fullmatch(ascii_name):
        raise ConfigError(
            f"{host!r} in {mask_url(url)!r} is not a host name or address (a host name holds "
            f"letters, digits, '-', '_' and dots between non-empty parts): {_form(url)}"
        )
    return host


def _hostports(text: str, url: str, kind: Kind = "standalone") -> tuple[tuple[str, int], ...]:
    nodes = []
    default_port = str(_DEFAULT_PORT.get(kind, 6379))
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        bracketed = part.startswith("[")
        if bracketed:
            host, _, rest = part[1:].partition("]")
            port = rest.lstrip(":") or default_port
        else:
            host, _, port = part.partition(":")
            port = port or default_port
        if not host:
            raise ConfigError(f"a host is missing in {mask_url(url)!r}: {_form(url)}")
        nodes.append((_check_host(host, bracketed, url), _port(port, url)))
    if not nodes:
        raise ConfigError(f"no host:port in {mask_url(url)!r}: {_form(url)}")
    return tuple(nodes)


def _parse_embedded(url: str) -> dict[str, object]:
    base, _, query = url.partition("?")
    options = _query(url, query, (), network=False)
    if base.lower() == "embedded":
        return {"kind": "embedded", **options}
    path = unquote(base.split("://", 1)[1])
    if not path.startswith("/"):
        raise ConfigError(
            f"embedded URL {mask_url(url)!r} needs an absolute home: embedded:///abs/path"
        )
    return {"kind": "embedded", "home": Path(path), **options}


def _parse_standalone(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    auth, hosts = _auth(parts.netloc)
    if not hosts:
        raise ConfigError(f"no host in {mask_url(url)!r}: use redis://host:port")
    ((host, port),) = _hostports(hosts, url) if "," not in hosts else _one_host(url)
    out: dict[str, object] = {"kind": "standalone", "host": host, "port": port, **auth}
    db = parts.path.strip("/")
    if db:
        out["db"] = _db(db, url)
    tls = parts.scheme.lower() == "rediss"
    options = _query(url, parts.query, _SSL_OPTIONS if tls else ())
    out.update({"ssl": tls, **options})
    return out


def _one_host(url: str) -> tuple[tuple[str, int]]:
    raise ConfigError(
        f"{mask_url(url)!r} names several hosts: use redis+cluster:// or redis+sentinel:// for that"
    )


def _parse_unix(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    auth, host = _auth(parts.netloc)
    # redis-py drops a unix URL's host as it reads it: unix://tmp/r.sock would reach
    # /r.sock, and its error name a path never typed. 'localhost' (a file URL's own name
    # for this machine) is the one host that means what it says.
    if host and host.lower() != "localhost":
        raise ConfigError(_unix_host_refused(url, host))
    if not parts.path:
        raise ConfigError(f"no socket path in {mask_url(url)!r}: use unix:///path/to/redis.sock")
    options = _query(url, parts.query, ("db",), network=False)
    out: dict[str, object] = {"kind": "unix", "path": unquote(parts.path), **auth, **options}
    if "db" in options:
        out["db"] = _db(str(options["db"]), url)
    return out


def _unix_host_refused(url: str, host: str) -> str:
    """What a unix URL that names a host (``unix://tmp/r.sock``: two slashes, not three) is
    told: the URL with that host folded back into the socket's path."""
    if ":" in host:
        # (USER:PASSWORD with its '@' forgotten reads as a host: neither it nor the URL is
        # shown, as either may hold the password)
        return (
            "the unix URL names a host with a ':', which a unix URL does not take: a login "
            "goes before an '@' (unix://USER:PASSWORD@/path/to/redis.sock), the socket's "
            "path starts at the third '/', and a server reached over TCP is "
            "redis://HOST:PORT"
        )
    rest = url.split("://", 1)[1]
    end = _authority_end(rest)
    userinfo, at, _ = rest[:end].rpartition("@")
    meant = mask_url(f"unix://{userinfo}{at}/{host}{rest[end:]}")
    return (
        f"{mask_url(url)!r} names the host {host!r}, which a unix URL does not take: its "
        f"socket's path starts at the third '/', as in unix:///path/to/redis.sock; write it "
        f"as {meant}"
    )


def _parse_cluster(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    auth, hosts = _auth(parts.netloc)
    if parts.path.strip("/"):
        raise ConfigError(
            f"a cluster URL has no database: drop {parts.path!r} from {mask_url(url)!r}: "
            f"{_form(url)}"
        )
    tls = parts.scheme.lower().startswith("rediss")
    options = _query(url, parts.query, _SSL_OPTIONS if tls else ())
    return {
        "kind": "cluster",
        "nodes": _hostports(hosts, url, "cluster"),
        "ssl": tls,
        "retries": _default_retries("cluster"),
        **auth,
        **options,
    }


def _parse_sentinel(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    auth, hosts = _auth(parts.netloc)
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if not segments:
        raise ConfigError(f"no service name in {mask_url(url)!r}: {_form(url)}")
    if len(segments) > 2:
        raise ConfigError(f"too many path parts in {mask_url(url)!r}: {_form(url)}")
    tls = parts.scheme.lower().startswith("rediss")
    options = _query(url, parts.query, _SSL_OPTIONS if tls else ())
    out: dict[str, object] = {
        "kind": "sentinel",
        "nodes": _hostports(hosts, url, "sentinel"),
        "service_name": segments[0],
        "ssl": tls,
        "retries": _default_retries("sentinel"),
        **auth,
        **options,
    }
    if len(segments) == 2:
        out["db"] = _db(segments[1], url)
    return out


# What a Sentinel calls a master: "the valid charset is A-z 0-9 and the three characters
# '.-_'" (redis.conf's sentinel.conf).
_SERVICE_NAME = re.compile(r"[A-Za-z0-9._-]+")


def check_sentinel_service(settings: Settings, *, given: str | None = None) -> None:
    """Refuse the service name of a Sentinel URL's ``settings`` when no Sentinel names a
    master so (a '&' or '=': options written without their '?'; a space, a ':'), before a
    client asks the sentinels for it and gets "no master found". (Checked when the URL is
    read, as a name missing is, and again when a client is made: Settings built without a
    URL carry any name, and render it back.) ``given``: the URL as the user wrote it, which
    the error then shows (masked) rather than the one the settings render."""
    name = settings.service_name or ""
    if settings.kind != "sentinel" or _SERVICE_NAME.fullmatch(name):
        return
    options = " (options come after a '?', as in /mymaster?retries=30)" if "=" in name else ""
    # (options written without their '?' may hold a password: shown masked, as by .url)
    shown = mask_options(name, _VALUE_DELIMITER)
    url = settings.url if given is None else mask_url(given)
    raise ConfigError(
        f"{shown!r} in {url!r} cannot be a Sentinel service name, which holds only "
        f"letters, digits, '.', '-' and '_'{options}: {_form(url)}"
    )


# The schemes of the URLs that use TLS (and so take the ssl_ options).
_TLS_SCHEMES = ("rediss", "rediss+cluster", "rediss+sentinel")
_PARSERS: dict[str, Callable[[str], dict[str, object]]] = {
    "embedded": _parse_embedded,
    "redis": _parse_standalone,
    "rediss": _parse_standalone,
    "unix": _parse_unix,
    "redis+cluster": _parse_cluster,
    "rediss+cluster": _parse_cluster,
    "redis+sentinel": _parse_sentinel,
    "rediss+sentinel": _parse_sentinel,
}
