"""What every role class shares: connecting from the seed's keywords, a URL or the
environment; the seed's agent names and ``queue:X`` names; its time stamps; ``close()`` and
``with``; a heartbeat that brings a swept agent back."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import inspect
import ipaddress
import secrets
import sys
import unicodedata
import warnings
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypedDict, TypeVar
from urllib.parse import quote

from .._client import Swarm
from .._codec import iso
from .._config import DEFAULT_SWARM, Settings
from .._env import ENV_NAME, ENV_URL, env_value, settings_from_env
from .._errors import (
    AlreadyCompleted,
    ConfigError,
    Conflict,
    ConnectionFailed,
    NotFound,
    SwarmError,
    ValidationError,
    closed,
)
from .._models import Agent, Task
from .._validate import check_swarm_name

# (The roles' modules take it from here. Their annotations are not evaluated as they run:
# on 3.10 it is mypy's, and a name to import.)
if TYPE_CHECKING:
    from .._context_records import Compression

if sys.version_info >= (3, 11):
    from typing import Unpack as Unpack
elif TYPE_CHECKING:
    from typing_extensions import Unpack as Unpack
else:
    Unpack = None

_QUEUE_PREFIX = "queue:"

# The part of an agent name taken from a label (a specialization): short enough that the
# longest prefix ("coordinator"), the label and the random suffix stay within the bound of
# an agent name (tests/test_seed_lifecycle.py registers the longest label to check it).
_LABEL_CHARS = 40
# The characters ``check_name`` allows in a name that are not letters or digits.
_NAME_MARKS = "._-"

R = TypeVar("R", bound="_Role")


# The keywords that reach the server, for mypy and editors to check a call's (PEP 692:
# ``**connect: Unpack[Connect]``); ``_Role.__init__`` is their one definition (types,
# defaults, order), from which each role's signature is spelt out (``_Role.__init_subclass__``)
# and against which tests/test_seed_signatures.py holds these three.
class ConnectV1(TypedDict, total=False):
    """What V1's ``RedisSwarmCoordinator`` takes by name (its ``redis_db`` is positional)."""

    redis_password: str | None
    redis_username: str | None
    redis_ssl: bool
    url: str | None
    swarm: str | Swarm | None


class Connect(ConnectV1, total=False):
    """What a role taking ``redis_host, redis_port`` positionally takes by name."""

    redis_db: int


class ConnectByName(Connect, total=False):
    """What a role taking no connection argument positionally (``MemoryShard``) takes."""

    redis_host: str | None
    redis_port: int | None


class PublishOptions(TypedDict, total=False):
    """What a role's publish of a context takes after its content and source:
    ``Swarm.publish_context``'s keywords (media_type, compression, repair, allow_empty),
    passed on as given. Their types here, their defaults and rules the core's alone: one left
    out is not passed (tests/test_seed_walk5_fixes.py holds the two to the same names)."""

    media_type: str
    compression: Compression
    repair: bool
    allow_empty: bool


def _connect(
    *,
    url: str | None,
    swarm: str | None,
    redis_host: str | None,
    redis_port: int | None,
    redis_db: int = 0,
    redis_password: str | None = None,
    redis_ssl: bool = False,
    redis_username: str | None = None,
) -> Swarm:
    """A Swarm from the seed's keyword arguments, a URL, or the environment. A value given
    is used or refused, never replaced by a default (``swarm=""`` is no swarm name, not the
    default swarm; ``redis_port=0`` no port, not 6379), nor dropped: every keyword is
    checked whatever else is given, and the password, user name, database and TLS given
    without ``redis_host``/``redis_port`` apply on top of the URL (``url=`` or the
    environment's), or are refused where they cannot (``_on_top``)."""
    if swarm is not None:
        check_swarm_name(swarm)
    host = None if redis_host is None else _url_host(redis_host)
    port = None if redis_port is None else _port(redis_port)
    given = _login(redis_password, redis_username, redis_db, redis_ssl)
    if host is not None or port is not None:
        if url is not None:
            raise ConfigError(
                "url= and redis_host=/redis_port= both name the server: give it once, as "
                "url='redis://HOST:PORT/DB' or as redis_host=, redis_port="
            )
        name = swarm if swarm is not None else env_value(ENV_NAME) or DEFAULT_SWARM
        return Swarm(Settings.from_url(_seed_url(host, port, given), swarm=name))
    if url is None:
        settings = settings_from_env(swarm=swarm)
        said = f"{ENV_URL}={settings.url}" if env_value(ENV_URL) else f"{ENV_URL} unset"
        where = f"the environment's URL ({said})"
    else:
        name = swarm if swarm is not None else env_value(ENV_NAME) or DEFAULT_SWARM
        settings = Settings.from_url(url, swarm=name)
        where = f"url={settings.url!r}"
    return Swarm(_on_top(settings, given, where))


# What the seed's keywords say of a login beyond the server: each one given (its default is
# no word: ``redis_db=0`` and ``redis_ssl=False`` leave a URL's database and TLS as it says).
_Login = dict[str, object]


def _login(password: object, username: object, db: object, ssl: object) -> _Login:
    """The seed's login keywords, each checked, as the ``Settings`` fields they set: only
    those given (not their defaults); a password or a user name given sets both (the one
    left out as None: the default user, no password), since a login is the pair."""
    for keyword, value in (("redis_password", password), ("redis_username", username)):
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{keyword} must be a string (or None), not {type(value).__name__}")
    if not isinstance(ssl, bool):
        raise ConfigError(
            f"redis_ssl must be True or False, not {ssl!r} "
            f"({type(ssl).__name__}): True connects over TLS (rediss://)"
        )
    if isinstance(db, bool) or not isinstance(db, int) or db < 0:
        raise ConfigError(
            f"redis_db must be a database number from 0 (Redis's default), not {db!r}: "
            "e.g. redis_db=1 (or leave it out for 0)"
        )
    given: _Login = {}
    if password is not None or username is not None:
        given.update(password=password, username=username)
    if db:
        given["db"] = db
    if ssl:
        given["ssl"] = True
    return given


def _seed_url(host: str | None, port: int | None, given: _Login) -> str:
    """The URL the seed's keywords name: ``redis://host:port/db``, or ``rediss://`` with
    TLS, and the login, percent-encoded."""
    auth = ""
    if "username" in given:
        username, password = given["username"], given["password"]
        auth = quote(str(username or ""), safe="")
        if password is not None:
            auth += ":" + quote(str(password), safe="")
        auth += "@"
    scheme = "rediss" if given.get("ssl") else "redis"
    where = f"{host or 'localhost'}:{6379 if port is None else port}"
    return f"{scheme}://{auth}{where}/{given.get('db', 0)}"


# The keywords each ``Settings`` field comes from, to name them in a refusal.
_KEYWORDS = {
    "password": "redis_password",
    "username": "redis_username",
    "db": "redis_db",
    "ssl": "redis_ssl",
}


def _on_top(settings: Settings, given: _Login, where: str) -> Settings:
    """``settings`` with the login keywords ``given`` applied: the server is the URL's, the
    login, database and TLS the keywords'. Only on a URL of one server over TCP (the
    seed's keywords name no more), or of a unix socket (a login and a database, no TLS):
    the embedded server (whose login is its own), TLS on a socket, a Cluster's or
    Sentinel's URL are refused, saying to give the server too."""
    if not given:
        return settings
    if settings.kind == "standalone" or (settings.kind == "unix" and "ssl" not in given):
        return settings.replace(**given)  # (a socket has a login and databases, no TLS)
    named = ", ".join(k for field, k in _KEYWORDS.items() if given.get(field) is not None)
    server = {
        "embedded": "the embedded server, whose login is its own",
        "unix": "a unix socket, which takes no TLS",
        "cluster": "a Redis Cluster",
        "sentinel": "servers behind Sentinel",
    }.get(settings.kind, settings.kind)
    raise ConfigError(
        f"{named} given without redis_host: the login keywords apply on top of {where} "
        "only when it names one server over TCP (redis:// or rediss://), and it names "
        f"{server}. Give the server with them (redis_host=..., redis_port=...), or a URL "
        "that holds them (url='rediss://USER:PASSWORD@HOST:PORT/DB', percent-encoded)"
    )


def _port(port: object) -> int:
    """``redis_port`` checked: a TCP port number (1 to 65535)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65_535:
        raise ConfigError(
            f"redis_port must be a port number from 1 to 65535, not {port!r}: e.g. 6379 "
            "(or leave it out for 6379)"
        )
    return port


def _url_host(host: str | None) -> str:
    """``host`` as a URL writes it (an IPv6 address in brackets); a host that holds a port
    (``127.0.0.1:6380``) is refused, before it becomes an error about a URL the user never
    wrote."""
    if host is None:
        return "localhost"
    if not isinstance(host, str) or not host.strip():
        raise ConfigError("redis_host must be a host name or address, e.g. 'localhost'")
    if ":" not in host:
        return host
    try:
        return f"[{ipaddress.IPv6Address(host.strip('[]'))}]"
    except ValueError:
        name, _, port = host.rpartition(":")
        raise ConfigError(
            f"redis_host {host!r} holds a port: pass redis_host={name!r}, redis_port={port}"
        ) from None


def _label_part(label: str) -> str:
    """``label`` in the characters names allow (``[A-Za-z0-9._-]``): accents folded
    (``é`` -> ``e``), spaces and ASCII punctuation as ``_``, any other character (``研``)
    dropped; cut to ``_LABEL_CHARS``. Empty when nothing is left."""
    out: list[str] = []
    for ch in unicodedata.normalize("NFKD", label):
        if ch.isascii() and (ch.isalnum() or ch in _NAME_MARKS):
            out.append(ch)
        elif unicodedata.combining(ch):
            continue  # the accent NFKD split off its letter
        elif ch.isspace() or (ch.isascii() and ch.isprintable()):
            out.append("_")
        # anything else has no ASCII form: left out
    return "".join(out).strip("_")[:_LABEL_CHARS].rstrip("_")


def _agent_name(prefix: str, label: str | None = None) -> str:
    """``memory_research_1a2b3c4d``: the seed's id shape, reduced to characters names allow
    (``memory_1a2b3c4d`` when none of the label's is)."""
    cleaned = _label_part(label or "")
    middle = f"_{cleaned}" if cleaned else ""
    return f"{prefix}{middle}_{secrets.token_hex(4)}"


def _check_text(what: str, value: object) -> str:
    """A free-text argument of a role's constructor, refused (ValidationError) unless a str."""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string, not {type(value).__name__}")
    return value


def _queue(name: object) -> str:
    """The seed named queues ``queue:X``; the queue here is ``X``."""
    if not isinstance(name, str):
        raise ValidationError(
            f"a queue name is a string, 'NAME' or 'queue:NAME', not {type(name).__name__}"
        )
    return name[len(_QUEUE_PREFIX) :] if name.startswith(_QUEUE_PREFIX) else name


def in_callers_words(exc: ValidationError, core: str, caller: str) -> ValidationError:
    """A refusal of the core that names its parameter ``core``, said with the name the
    seed's caller gave the value under (``caller``): the rest of the core's wording (its
    bounds, what to do) is kept, never written again here."""
    said = str(exc)
    if not said.startswith(f"{core} "):
        return exc
    return type(exc)(caller + said[len(core) :])


def _finding_ids(sources: object) -> list[str]:
    """The finding ids a synthesis cites, as a list; a lone string (which ``list()`` would
    split into characters) or a non-iterable is refused."""
    if isinstance(sources, str | bytes) or not isinstance(sources, Iterable):
        raise ValidationError(
            f"sources must be a list of finding ids, not {type(sources).__name__}: e.g. "
            "[f['finding_id'] for f in shard.get_all_findings()], or [one_id] for one"
        )
    return list(sources)


def _spelt_out(init: Any) -> inspect.Signature:
    """The signature of a role's ``__init__`` with its ``**connect`` spelt out: every
    keyword of ``_Role.__init__`` it does not name itself, keyword-only, with its type and
    default (what ``inspect.signature``, ``help()`` and the error of a keyword it does not
    take show)."""
    own = inspect.signature(init)
    params = [p for p in own.parameters.values() if p.kind is not p.VAR_KEYWORD]
    if len(params) == len(own.parameters):
        return own  # (no **connect: nothing to spell out)
    named = {p.name for p in params}
    base = inspect.signature(_Role.__init__).parameters.values()
    params += [
        p.replace(kind=p.KEYWORD_ONLY)
        for p in base
        if p.name not in named and p.name != "self" and p.kind is not p.VAR_KEYWORD
    ]
    return own.replace(parameters=params)


def _unexpected(cls: type, unexpected: Iterable[str]) -> TypeError:
    """The TypeError of keywords ``cls`` does not take: in its name (the class called, not
    the base that finds out), with the keyword meant when one is near, and those it takes."""
    takes: list[str] = []
    for klass in cls.__mro__:  # (a subclass's ``**kwargs`` goes on to its base's keywords)
        if not (isinstance(klass, type) and issubclass(klass, _Role)):
            break
        params = inspect.signature(klass).parameters.values()
        takes += [p.name for p in params if p.kind is not p.VAR_KEYWORD and p.name not in takes]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    names = sorted(unexpected)
    said = ", ".join(map(repr, names))
    what = "an unexpected keyword argument" if len(names) == 1 else "unexpected keyword arguments"
    meant = [m for name in names for m in difflib.get_close_matches(name, takes, n=1)]
    near = f" (did you mean {', '.join(map(repr, meant))}?)" if meant else ""
    return TypeError(
        f"{cls.__name__}() got {what} {said}{near}; it takes {', '.join(takes)} "
        "(docs/seed.md, Connecting)"
    )


def _stamp(ms: int | None) -> str:
    """A time as the seed showed it (ISO-8601; empty when unknown)."""
    return iso(ms) or ""


def _attempt(task: Task) -> int:
    """The seed's ``attempt`` of a claimed task: which of its ``max_attempts`` this claim
    is, counted as the core counts them: a failure (``fail``) uses one, so this is its
    failures plus one; a release (given back unreported) and an abandon (a lease run out:
    the worker vanished, counted against ``max_abandons``) use none. Never past
    ``max_attempts``: the task is dead-lettered when its last one fails. (The record's
    ``attempts`` counts every claim, releases' and abandons' too: the seed's ``claims``.)"""
    return task.failures + 1


def report_sent_said(exc: ConnectionFailed, finding_id: str, call: str) -> ConnectionFailed:
    """``sent_said`` of a report (``call``, the role's method) whose reply was lost: its
    finding may be stored as ``finding_id``, and calling it again reports under that id."""
    return sent_said(
        exc,
        f"the finding may be stored as {finding_id}, the task completed; call {call} again: "
        "it reports under the same finding id (the finding is stored once)",
    )


def sent_said(exc: ConnectionFailed, retry: str) -> ConnectionFailed:
    """``exc``, of a write whose request was sent (``sent``) and whose reply was lost, said
    so: the server may have applied it; ``retry``: how to try again without doing it twice
    ("cannot reach Redis" alone reads as nothing done). Raised in an ``except`` clause, at
    no cost to a write that succeeds."""
    return type(exc)(
        f"{exc}. The request was sent before the connection failed, so the server may have "
        f"applied it: {retry}",
        lease_secrets=exc.lease_secrets,
        sent=True,
        retryable=exc.retryable,
    )


class SupersededFinding(UserWarning):
    """A seed method reported a finding of a task settled meanwhile (completed by another
    worker, or cancelled): the finding is kept, marked superseded, and the method returns its
    id as the seed's did, so this warning is what tells the caller the report did not
    complete the task. ``warnings.simplefilter("error", SupersededFinding)`` makes it an
    exception to catch instead."""


class UncitedSources(UserWarning):
    """``SwarmMemoryShard.synthesize_findings`` was given sources shaped like finding ids
    that are no finding of this swarm, or sources none of which is a finding (the synthesis
    then cites none): kept as plain references (the seed allowed any string), not cited;
    the synthesis's id is returned as the seed's was."""


def _superseded(exc: AlreadyCompleted, method: str) -> str:
    """The id of the finding ``method`` reported too late (``exc``), said in a
    ``SupersededFinding`` warning pointing at the caller's line."""
    warnings.warn(SupersededFinding(f"{method}: {exc}"), stacklevel=3)
    return str(exc.finding_id)


class _Role:
    """Shared construction: the seed's keywords, or ``url=``, or nothing (environment).

    ``close()`` (or leaving ``with``) gives back what the role holds and closes its
    connection (a ``swarm=Swarm(...)`` handle it was given stays open: it is shared, and
    its owner closes it); it does not raise for what the server could not be asked (a warning says
    which task stays leased); any call after it raises ``Conflict``, never reconnects."""

    def __init__(
        self,
        redis_host: str | None = None,
        redis_port: int | None = None,
        *,
        redis_password: str | None = None,
        redis_username: str | None = None,
        redis_db: int = 0,
        redis_ssl: bool = False,
        url: str | None = None,
        swarm: str | Swarm | None = None,
        **unexpected: object,
    ) -> None:
        # (``unexpected``: a keyword the class called takes not, said in its name: Python's
        # own TypeError would name this base, which the caller never called.)
        if unexpected:
            raise _unexpected(type(self), unexpected)
        self._closed = False
        # The parent its agent was registered with, while it is registered without it (that
        # parent was gone when it came back: ``_present`` links it back once it returns).
        self._parent_gone: str | None = None
        # A handle given is shared (a shard and its workers on one connection pool): closing
        # it with the first role closed would refuse every call of the others for good.
        self._owns_swarm = not isinstance(swarm, Swarm)
        if isinstance(swarm, Swarm):
            self._swarm = swarm
        else:
            self._swarm = _connect(
                url=url,
                swarm=swarm,
                redis_host=redis_host,
                redis_port=redis_port,
                redis_db=redis_db,
                redis_password=redis_password,
                redis_ssl=redis_ssl,
                redis_username=redis_username,
            )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and init.__module__.startswith(__package__ + "."):
            init.__signature__ = _spelt_out(init)

    # The attribute naming the agent this role acts as (a worker's is ``worker_id``).
    _id_named: ClassVar[str] = "agent_id"

    def __repr__(self) -> str:
        """The class, the agent it acts as (None: none yet, V1's before ``register_agent``)
        and its swarm, with the server's URL as ``Swarm``'s repr shows it (``Settings.url``:
        its password masked). Never raises, on a role half made or closed."""
        shown = [f"{self._id_named}={getattr(self, self._id_named, None)!r}"]
        swarm: Swarm | None = getattr(self, "_swarm", None)
        if swarm is not None:
            shown += [f"swarm={swarm.name!r}", f"url={swarm.settings.url!r}"]
        if getattr(self, "_closed", False):
            shown.append("closed=True")
        return f"{type(self).__name__}({', '.join(shown)})"

    @property
    def swarm(self) -> Swarm:
        """The core handle every call goes through (refused once the role is closed)."""
        self._ensure_open()
        return self._swarm

    def _ensure_open(self) -> None:
        if self._closed:
            raise closed(type(self).__name__)

    def close(self) -> None:
        """Give back what the role holds (a worker's claimed task), then close the
        connection, unless it was given (``swarm=Swarm(...)``: its owner closes it); closing
        again does nothing. The server gone or refusing does not make it
        raise: a task it could not give back stays leased until its lease runs out, then goes
        back to its queue by itself, and a ``UserWarning`` names it."""
        if self._closed:
            return
        try:
            self._give_back()
        finally:
            self._closed = True
            if self._owns_swarm:
                self._swarm.close()

    def _give_back(self) -> None:
        """What ``close`` returns before closing: nothing here; a worker's task."""

    def _give_back_leases(self, leases: Sequence[tuple[str, str | None]]) -> bool:
        """Release each lease (task id, token) as the role closes: back to its queue at once.
        One lost or settled meanwhile is no longer the role's to give. One the server could
        not be asked to release (gone, refusing) is no reason for ``close()`` to fail (the
        caller is done with it, maybe leaving a ``with`` block on another error): its lease
        runs out and it goes back to its queue by itself, counted as an abandon; one warning
        names each such task. Once the server could not be reached, the tasks after are not
        tried: each would wait out the same outage, retries included. Returns whether the
        server was reached (else ``close()`` asks it nothing more)."""
        kept: list[str] = []
        cause: SwarmError | None = None
        reached = True
        for n, (task_id, token) in enumerate(leases):
            try:
                self.swarm.release(task_id, token)
            except (Conflict, NotFound):
                continue
            except ConnectionFailed as exc:
                kept += [task for task, _ in leases[n:]]
                cause, reached = cause or exc, False
                break
            except SwarmError as exc:
                kept.append(task_id)
                cause = cause or exc
        if cause is not None:
            tasks, its = ("task", "its") if len(kept) == 1 else ("tasks", "each one's")
            warnings.warn(
                f"{type(self).__name__} closed without giving back {tasks} {', '.join(kept)} "
                f"({type(cause).__name__}: {cause}): {its} lease runs out and it goes back to "
                "its queue by itself (counted as an abandon, not a failure)",
                stacklevel=4,  # the line that called close()
            )
        return reached

    def _leave(self, agent_id: str) -> None:
        """Deregister ``agent_id``, an ephemeral worker this object made, as it closes: else
        it would be counted alive until its last heartbeat went stale, a minute after it
        exited. Its findings and tasks name it still. A failure is not the caller's problem
        at close: an agent swept or deregistered meanwhile has nothing left to remove, and
        one the server could not be asked to remove (gone, refused) goes stale and is swept,
        as if this step did not exist. One with direct messages waiting unread is kept, its
        inbox with it (dropping them unread is not close()'s to decide): marked stale, so
        that it is not counted alive, and a warning says so."""
        try:
            if self.swarm.deregister_if_read(agent_id):
                return
        except SwarmError:
            return
        with contextlib.suppress(SwarmError):  # (unmarked, it goes stale a minute later)
            self.swarm.mark_stale(agent_id)
        warnings.warn(
            f"{type(self).__name__} closed leaving agent {agent_id} registered (marked "
            "stale), since messages wait unread in its inbox: read them as it (swarm msg inbox "
            f"{agent_id}), or drop them with it (swarm agents deregister {agent_id}); else "
            "a sweep (swarm agents sweep, cleanup_stale_agents) removes it with them once it "
            "has been silent that long",
            stacklevel=4,  # the line that called close()
        )

    def __enter__(self: R) -> R:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _present(self, profile: Agent) -> Agent:
        """Mark ``profile``'s agent present. When it is not registered any more (swept as
        stale, or deregistered), or was re-made by a claim as a bare implicit worker, it is
        registered again under its id with ``profile``'s role, model, specialization,
        capacity, parent and metadata: a role object that is alive is an agent that is."""
        try:
            seen = self.swarm.heartbeat(profile.id)
        except NotFound:
            seen = None
        parent = profile.parent or self._parent_gone
        if seen is not None and not (seen.implicit and not profile.implicit):
            if seen.parent is None and parent is not None:
                # Registered again without its parent (below), which was gone: linked back
                # once that parent is back (a shard swept with its workers returns at its own
                # heartbeat); until then, one register refused per heartbeat, nothing written.
                with contextlib.suppress(NotFound):
                    linked = self._register(dataclasses.replace(profile, parent=parent))
                    self._parent_gone = None
                    return linked
            return seen
        try:
            return self._register(dataclasses.replace(profile, parent=parent))
        except NotFound:
            if parent is None:
                raise
        self._parent_gone = parent
        # Its parent left or was swept meanwhile (the core refuses a parent no agent is
        # registered as): the agent is alive all the same, so it rejoins without one, said,
        # and is linked back at a heartbeat once the parent is registered again (above).
        warnings.warn(
            f"agent {profile.id} was registered again without its parent {parent}, "
            "which is no longer registered (it left, or was swept as stale): linked back at a "
            "heartbeat once it is registered again",
            UserWarning,
            stacklevel=3,
        )
        return self._register(dataclasses.replace(profile, parent=None))

    def _register(self, profile: Agent) -> Agent:
        return self.swarm.register(
            profile.role,
            name=profile.id,
            model=profile.model,
            specialization=profile.specialization,
            capacity_tokens=profile.capacity_tokens,
            parent=profile.parent,
            metadata=profile.metadata,
        )
