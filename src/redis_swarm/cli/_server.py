"""``swarm up``, ``swarm down``, ``swarm doctor``: the server the swarm lives on.

On Sentinel and on a Cluster, ``swarm doctor`` also shows what the deployment says of itself
(``redis_swarm.topology``: the sentinels named in the URL, or each node of the cluster, asked
on connections of their own), its warnings, and on a failing cluster runs its other checks
with few retries, so that it says what is wrong in seconds.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TypeVar

import click
from click.core import ParameterSource

from .._codec import counted, first_few, iso
from .._config import UNCHECKED_TLS, Settings, unverified_tls
from .._embedded import Binary, EmbeddedServer, find_redis_server, same_file, swarm_command
from .._env import CHECK_SWARM, DOCTOR_TELLS_MORE
from .._errors import (
    WRONG_TYPE_ERROR,
    ConfigError,
    ConnectionFailed,
    PermissionDenied,
    SwarmError,
    TlsNotVerified,
)
from .._models import RECORD_KINDS
from .._printable import printable, shown_name
from ._app import EXIT_ERROR, App, json_option, main, pass_app
from ._doctor import ROWS, corrupt_row, damage_rows, entries_row, repaired_and_left

if TYPE_CHECKING:
    from .._client import Swarm
    from .._models import IndexEntries, RecordDamage
    from .._topology import ClusterView, SentinelView, Topology

T = TypeVar("T")


def _embedded(app: App) -> EmbeddedServer:
    settings = app.settings
    return EmbeddedServer(settings.home, durability=settings.durability)


_EMBEDDED = "embedded"  # (the URL of the embedded server of the home given)


def _home_server(app: App, doing: str) -> None:
    """Make ``app`` name the embedded server of its home where the command line or the URL
    says that is the server ``doing`` (``start``, ``stop``: what ``up`` and ``down`` do, to
    the embedded server alone) means: ``--home`` given on the command line wins over a
    SWARM_URL from the environment (``swarm --home DIR down``, the very command the server's
    start names, with SWARM_URL set to this home's socket or to another server), and a
    ``unix://`` URL naming this home's own socket is that server. A ``--url`` of another
    server given on the command line beside ``--home`` is a conflict, said as which to drop.
    (``doctor`` checks the server of its URL as every command reaches it: a stopped embedded
    server is said to be down, not started.)"""
    settings = app.settings
    if settings.kind == "embedded":
        return
    home = EmbeddedServer(settings.home).socket_path
    if settings.kind == "unix" and os.path.realpath(settings.path or "") == os.path.realpath(home):
        app.url = _EMBEDDED
        return
    root = click.get_current_context().find_root()
    if root.get_parameter_source("home") is not ParameterSource.COMMANDLINE:
        return
    if root.get_parameter_source("url") is not ParameterSource.COMMANDLINE:
        app.url = _EMBEDDED  # (SWARM_URL, from the environment: the explicit --home wins)
        return
    otherwise = ", or drop --home to use the server at --url" if doing == "start" else ""
    raise click.UsageError(
        f"--url {settings.render_url()} names another server than the embedded one in "
        f"--home {settings.home}: drop --url to {doing} the embedded server there{otherwise}"
    )


@main.command(short_help="Start the embedded server (idempotent) and print its URL.")
@json_option
@pass_app
def up(app: App) -> None:
    """Start the embedded server (idempotent), load the swarm's function library on it (run
    it as an admin user: workers may not load it), and print the URL other processes use.
    A URL that names a read-only replica, or a Redis Sentinel's own address (a
    redis://HOST:26379 URL, not redis+sentinel://), is refused."""
    _home_server(app, "start")
    settings = app.settings
    if settings.kind != "embedded":
        latency = app.swarm.ping()
        # (a sentinel's address raises here; a replica's is said as doctor says it)
        replica = app.swarm.server_info().replica_warning
        if replica is not None:
            raise SwarmError(replica)
        data = {"url": settings.url, "started": False, "ping_ms": round(latency, 3)}
        data["functions"] = app.swarm.load_functions()
        app.emit(data, lambda: click.echo(settings.url))
        return
    server = _embedded(app)
    was_running = server.is_running()
    # A person is told on stderr that it started, as by any command that starts it; the
    # JSON says it in its own "started".
    if app.json:
        server.ensure_running(say=None)
    else:
        server.ensure_running()
    data = {
        "url": server.url,
        "started": not was_running,
        "pid": server.pid(),
        "home": str(server.home),
        # False: the server has no Functions (Redis 6.2): scripts run by EVALSHA
        "functions": app.swarm.load_functions(),
    }
    app.emit(data, lambda: click.echo(server.url))


@main.command(short_help="Stop the embedded server cleanly (its data is kept).")
@json_option
@pass_app
def down(app: App) -> None:
    """Stop the embedded server cleanly; its data is kept for the next start."""
    _home_server(app, "stop")
    if app.settings.kind != "embedded":
        raise SwarmError(
            f"'swarm down' stops only the embedded server; {app.settings.url} is not one"
        )
    server = _embedded(app)
    stopped = server.stop()
    # Said where the data stays: a reader of "stopped" alone cannot tell it from deleted.
    # (its home named: in a shell whose SWARM_HOME names another, a bare 'swarm up' would
    # start that other server, as stops_it says of 'swarm down')
    up = swarm_command(server.home, "up", named=True)
    said = (
        f"stopped (its data stays in {printable(server.home)}: '{printable(up)}', or the "
        "next command that needs it, starts it again)"
    )
    app.emit(
        {"stopped": stopped},
        lambda: click.echo(said if stopped else "the embedded server was not running"),
    )


def _persistence(aof_enabled: bool | None, fsync: str | None, save: str | None) -> str:
    """The ``persistence`` row: AOF and its fsync policy, else the RDB snapshots (``save``:
    CONFIG GET save's rules, '' none, None not readable)."""
    if aof_enabled is None:
        return f"unknown ({NOT_VISIBLE})"
    if aof_enabled:
        return f"aof {fsync}" if fsync else FSYNC_UNKNOWN
    if save is None:
        return "no AOF (RDB snapshots unknown: this user may not run CONFIG GET)"
    if not save:
        return "none: no AOF, no RDB snapshots (see the warnings)"
    return f"rdb snapshots only (save {save}): a crash loses the writes since the last one"


def _choice(chosen: Binary, running: str | None) -> str:
    """Which redis-server the embedded default runs, and why (the running one may be older)."""
    text = f"{chosen.path} ({chosen.version}): {chosen.reason}"
    if running and not same_file(running, chosen.path):
        text += f"; the running server is {running}: 'swarm down' then 'swarm up' to switch"
    return text


def _binary(
    settings: Settings, reported: str | None, version: str
) -> tuple[str | None, str | None]:
    """The server's binary as the server says it (INFO ``executable``), and a note when that
    path names no file here. Redis reports its working directory joined to the name it was
    started by: a server started as ``redis-server`` from PATH names a file in the folder it
    was started in, which does not exist. Which file it runs is then unknown: the client's
    PATH may find another redis-server (another version), so none is named, and the note
    says the version the server reports (the version row's)."""
    if not reported or not settings.is_local or os.path.exists(reported):
        return reported, None
    return None, (
        f"the server reports version {version}; which binary it runs is not known: "
        f"Redis reports {reported}, its working directory joined to the name it was "
        "started by, and no such file is on this machine"
    )


# What doctor says where the user may not read something (INFO, CONFIG GET).
NOT_VISIBLE = "not visible to this user: it may not run INFO"
FSYNC_UNKNOWN = "aof, fsync policy unknown (this user may not run CONFIG GET)"


def _tls(settings: Settings) -> tuple[str, str | None]:
    """The TLS row, and a warning when the server is not verified (``unverified_tls``'s
    words, those of the warning every handle gives as it connects)."""
    if not settings.ssl:
        return "off", None
    unchecked = UNCHECKED_TLS.get(settings.ssl_cert_reqs)
    if unchecked is None:
        return "on, certificate and host name verified", None
    return f"on, {unchecked} not verified (ssl_cert_reqs={settings.ssl_cert_reqs})", (
        unverified_tls(settings)
    )


def _no_access(swarm: Swarm, settings: Settings, refusing: tuple[str, ...] = ()) -> str | None:
    """Why this user cannot work on this swarm (None: it can), from a harmless read of the
    swarm's event log (every role reads it): a user made for another swarm gets NOPERM. On a
    cluster with nodes that refuse the user (``refusing``: missing there), the refusal is
    most likely theirs, not the swarm's: it is said as it came."""
    try:
        swarm.last_event_id()
    except PermissionDenied as exc:
        user = settings.shown_user
        if refusing:
            return (
                f"the Redis user {user!r} could not read swarm {settings.swarm!r}, so every "
                f"command on it fails: {exc}"
            )
        return (
            f"the Redis user {user!r} may not read the keys of swarm {settings.swarm!r}, so "
            f"every command on it fails (PermissionDenied): {CHECK_SWARM}, or make a "
            f"user for this one: swarm acl --swarm {settings.swarm} --role ROLE --user NAME"
        )
    except SwarmError as exc:
        # The log's key holds another type: read, so not refused (the streams row names it)
        if WRONG_TYPE_ERROR not in str(exc):
            raise
    return None


def _not_checked(reason: str) -> dict[str, Any]:
    """``corrupt_records`` when it could not be read: the same keys, empty, and why."""
    return {**{kind: [] for kind in RECORD_KINDS}, "checked": False, "reason": reason}


def _shown(value: object, missing: str) -> str:
    """A row's value; None: ``missing`` says why (hidden from this user, not said by the
    server, or not read)."""
    return missing if value is None else str(value)


# --- Sentinel and Cluster: the deployment as it sees itself (redis_swarm.topology)


def _topology_line(view: SentinelView | ClusterView) -> str:
    """The sentinel or cluster row of the human report, in one line."""
    from .._topology import CLUSTER_SLOTS, SentinelView  # (loaded: doctor read the topology)

    if isinstance(view, SentinelView):
        if view.master is None:
            return f"service {view.service}: no sentinel of the URL answered"
        return (
            f"master {view.master} (service {view.service}); "
            f"{_sentinels(view.sentinels)}, quorum {view.quorum}, {view.answering} of "
            f"{view.in_url} in the URL answering; {_replicas(view.replicas, view.replicas_up)}"
            f"{_logins(view.to_dict())}; failover: {view.failover_said}"
        )
    said = view.to_dict()
    shown = said["state"] or "unknown (no node answered)"
    ok_part = f", {view.slots_ok} ok" if view.slots_ok is not None else ""
    return (
        f"{shown}; {view.slots_assigned} of {CLUSTER_SLOTS} slots assigned{ok_part}; "
        f"{counted(view.masters, 'master')}, {_replicas(view.replicas, view.replicas_up)}"
        # (logins not checked said only where the links were: a user that may not read
        # INFO is told once, the links' words say it)
        f"{_links(said) or _logins(said)}; {view.answering} of {view.nodes} nodes answering"
    )


def _links(said: dict[str, Any]) -> str:
    """What the row says after the replicas of their links to their master when they were
    not checked, and why: the JSON's ``replica_links_down`` when it is no list (those down
    are not counted up, and a warning names each)."""
    links = said.get("replica_links_down")
    return f"; replica links {links}" if isinstance(links, str) else ""


def _logins(said: dict[str, Any]) -> str:
    """What the Sentinel or cluster row says after the replicas of whether each logs in to
    its master as a default user that is off there when that was not checked, and why: the
    JSON's ``replica_default_logins`` when it is no list (those found: a warning names
    each)."""
    logins = said.get("replica_default_logins")
    return f"; replica logins {logins}" if isinstance(logins, str) else ""


def _sentinels(count: int | None) -> str:
    """How many sentinels watch the service; None: not known."""
    return "sentinels unknown" if count is None else counted(count, "sentinel")


def _replicas(count: int | None, up: int | None) -> str:
    """How many replicas, and how many of them are up (a bare "0 up" after the masters read
    as no node up); None: not known."""
    if count is None:
        return "replicas unknown"
    if not count:
        return "no replica"
    if count == 1:
        return "1 replica, " + ("not known whether up" if up is None else "up" if up else "down")
    return f"{counted(count, 'replica')}, {'?' if up is None else f'{up:,}'} of them up"


@main.command(short_help="Check the server, its settings and the swarm's records.")
@click.option(
    "--quick",
    is_flag=True,
    help="Skip reading every record of the swarm (corrupt_records: its time grows with the "
    "swarm's history, seconds per 100,000 tasks); the server's checks all run.",
)
@click.option(
    "--recount",
    is_flag=True,
    help="First set each queue's pending, delayed, claimed and dead counters to what its sets "
    "hold (a shard, coordinator or admin user; never a worker), then check.",
)
@click.option(
    "--repair",
    is_flag=True,
    help="First put every index right: re-add each record an index lacks (at its creation "
    "time) and remove the entries of records no longer stored, a queue's sets' included, and "
    "put back in its queue's set a task that set lacks (then recounting the counters, as "
    "--recount) (a shard, coordinator or admin user; never a worker), then check.",
)
@json_option
@pass_app
def doctor(app: App, quick: bool, recount: bool, repair: bool) -> None:
    """Check the server: binary, version, URL, persistence, memory, PING latency, the
    swarm's streams (an event log, broadcasts or inbox an id written by hand has poisoned or
    put ahead of the clock, or a key of another type),
    the status counters (each queue's pending, delayed, claimed and dead counters against its
    sets, which --recount sets them from; any counter below zero),
    and the swarm's records: those stored damaged (records, context versions and chunks,
    message entries, read cursors, indexes short of their records or holding entries of
    records no longer stored, each entry named; tasks their queue's set lacks; completed
    tasks whose finding is no longer stored), which fail it, each kind with its repair
    (--repair puts the indexes and the queues' sets right); and it warns of a server that
    keeps the swarm in memory only (no AOF, no RDB snapshot).
    On Sentinel, the
    master the sentinels name, how many sentinels and replicas they know, and whether they
    can agree a failover; on a Cluster, its state, slots, masters and replicas."""
    try:
        with warnings.catch_warnings():
            # (its TLS row and warnings say it: the warning every handle gives as it
            # connects would say it a second time)
            warnings.simplefilter("ignore", TlsNotVerified)
            _diagnose(app, quick, recount, repair)
    except ConnectionFailed as exc:
        if DOCTOR_TELLS_MORE not in str(exc):  # (a failure the doctor cannot say more of)
            raise
        _unreachable(app, exc)


def _unreachable(app: App, exc: ConnectionFailed) -> None:
    """The report of a server the doctor could not reach, or that refused it before any row
    could be read: ``ok`` false and why, without the hint that names the doctor; exit 1."""
    settings = app.settings
    reason = str(exc)
    for said in (f" ({DOCTOR_TELLS_MORE})", f" {DOCTOR_TELLS_MORE}"):
        reason = reason.replace(said, "")
    from .._net import knock  # (here: `swarm --help` imports this module)

    report: dict[str, Any] = {
        "url": settings.url,
        "swarm": settings.swarm,
        "user": settings.shown_user,
        "kind": settings.kind,
        "ok": False,
        "reached": knock(settings),
        "warnings": [reason],
    }

    def human() -> None:
        from rich.markup import escape  # (here: `swarm --help` imports this module)
        from rich.table import Table

        table = Table(show_header=False, box=None)
        for key, value in report.items():
            if key == "reached":  # (a row per address: what a bare connection met)
                for address, met in value.items():
                    table.add_row(f"[bold]{escape(printable(address))}[/]", escape(printable(met)))
            elif key != "warnings":
                table.add_row(f"[bold]{key}[/]", escape(printable(value)))
        app.out.print(table)
        click.echo(f"error: {printable(reason)}", err=True)  # (as every error: on stderr)

    app.emit(report, human)
    sys.exit(EXIT_ERROR)


def _diagnose(app: App, quick: bool, recount: bool, repair: bool) -> None:
    """The doctor's report, once the server has answered."""
    settings = app.settings
    if settings.kind != "cluster":
        _doctor(app, app.swarm, None, quick, recount, repair)
        return
    # Here: the topology and the shell bring redis-py, which --help does without.
    from .._client import Swarm
    from .._topology import topology

    # First, node by node: a cluster that is failing would hold every check below in the
    # retries of the cluster URL (they ride out a failover: over a minute), then fail it.
    cluster = topology(settings)
    if not cluster.failing:
        _doctor(app, app.swarm, cluster, quick, recount, repair)
        return
    with Swarm(settings.with_timeouts(retries=FAILING_RETRIES)) as brief:  # (shown as given)
        _doctor(app, brief, cluster, quick, recount, repair)


# The doctor's rows its JSON always holds, null where the URL has none (no Sentinel, no
# Cluster; no master with replicas or the setting on): one shape, whatever the server. The
# human table leaves a null one out.
SHAPE_ROWS = ("sentinel", "cluster", "min_replicas_to_write")


# The retries of the checks on a failing cluster: what fails is said in seconds. (With none,
# redis-py gives up connecting at the first startup node that does not answer.)
FAILING_RETRIES = 2


def _doctor(
    app: App,
    swarm: Swarm,
    cluster: Topology | None,
    quick: bool,
    recount: bool = False,
    repair: bool = False,
) -> None:
    """The doctor's checks with ``swarm`` (``cluster``: the cluster's topology, read first;
    ``quick``: the records are not read; ``recount``: the counters are recounted first;
    ``repair``: the indexes are put right first)."""
    settings = app.settings
    user = settings.shown_user
    report: dict[str, Any] = {
        "url": settings.url,
        "swarm": settings.swarm,
        "user": user,
        "kind": settings.kind,
    }
    warnings: list[str] = [] if cluster is None else list(cluster.warnings)  # (read first)
    failing = cluster is not None and cluster.failing
    chosen = find_redis_server() if settings.kind == "embedded" else None
    # First: an unreachable server fails here (a failing cluster: its nodes said why).
    info = _unless_failing(swarm.server_info, failing, warnings, "INFO was not read")
    latency: float | None = None
    try:
        latency = min(swarm.ping() for _ in range(5))
    except ConnectionFailed as exc:  # reachable, yet refuses PING: it cannot write (MISCONF)
        warnings.append(str(exc))
    except SwarmError as exc:
        if not failing:
            raise
        warnings.append(str(exc))
    tls, tls_warning = _tls(settings)
    version = info.version if info else "?"
    binary, binary_note = _binary(settings, info.executable if info else None, version)
    view: SentinelView | ClusterView | None = None
    blocked = False  # the sentinels can agree no failover now
    if settings.kind == "sentinel":
        from .._topology import topology

        found = topology(settings)
        view = found.sentinel
        warnings += found.warnings
        blocked = found.sentinel is not None and found.sentinel.failover_blocked
    elif cluster is not None and cluster.cluster is not None:
        view = cluster.cluster
        if version == "?":  # INFO refused: the cluster client has no node to send HELLO to
            version = ", ".join(sorted(set(view.versions.values()))) or "?"
    report.update(
        ok=not failing,
        version=None if version == "?" else version,
        mode=info.mode if info else "cluster",
    )
    if info is not None and info.replica_row is not None:  # (every write refused there)
        report["role"] = info.replica_row
    report.update(tls=tls, binary=binary)
    report.update(sentinel=None, cluster=None)  # (SHAPE_ROWS: null where there is none)
    if view is not None:
        report[settings.kind] = view.to_dict()
    durability, durable = _durability(swarm, failing)
    if not durable:  # (strict: its reads below would each fail saying so; the row said why)
        swarm = _not_strict(swarm)
    if binary_note is not None:
        report["binary_note"] = binary_note
    report.update(
        persistence=_persistence(info.aof_enabled, info.appendfsync, info.save) if info else None,
        used_memory_bytes=info.used_memory if info else None,
        maxmemory_bytes=info.maxmemory if info else None,
        maxmemory_policy=info.maxmemory_policy if info else None,
    )
    if info is not None and info.memory_row is not None:  # (refusing writes, or close to)
        report["memory"] = info.memory_row
    report.update(
        durability=durability,
        ping_ms=None if latency is None else round(latency, 3),
        server_time=iso(info.server_time_ms) if info else None,
        function_library=info.library.row if info and info.library else None,
    )
    if latency is None or not durable:
        report["ok"] = False
    if info is not None and info.replica_warning is not None:
        warnings.append(info.replica_warning)
        report["ok"] = False
        if info.library is not None:  # (the replica refuses the load)
            report["function_library"] = info.library.row_on_replica
    if info is not None and info.library is not None and info.library.unloadable is not None:
        report["ok"] = False  # (every call of this user fails: the row says what to do)
    if info is not None and info.library is not None and info.library.warning is not None:
        warnings.append(info.library.warning)
    if blocked:  # no failover can be agreed now (the warning is the topology's)
        report["ok"] = False
    if chosen is not None:
        report["pid"] = _embedded(app).pid()
        report["binary_choice"] = _choice(chosen, binary)
    if tls_warning is not None:
        warnings.append(tls_warning)
    if info is not None and info.open_access_warning is not None:
        warnings.append(info.open_access_warning)
    if info is not None and info.persistence_warning is not None:
        warnings.append(info.persistence_warning)
    if info is not None and info.eviction_risk is not None:
        warnings.append(info.eviction_risk)
        report["ok"] = report["ok"] and not info.maxmemory  # (a limit set: records can go now)
    if info is not None and info.memory_refusal is not None:  # (writes refused now)
        warnings.append(info.memory_refusal)
        report["ok"] = False
    if info is not None and info.memory_warning is not None:
        warnings.append(info.memory_warning)
    streams = info.streams if info is not None else None
    # The start of every repair command the report gives (a stream's DEL, a record's HDEL).
    cli = _repair_cli(settings, info is not None and info.info_readable, view)
    if streams is not None:  # (a poisoned event log: the log is lost from then on)
        report["streams"] = streams.row
        warnings += [stream.warning_for(cli) for stream in streams.damaged]
        if streams.fails:
            report["ok"] = False
    report["min_replicas_to_write"] = None  # (SHAPE_ROWS: null where there is none)
    _replica_guard(
        settings,
        info is not None and not failing,
        report,
        warnings,
        info.library.row_refusing_writes if info and info.library else None,
    )
    refusing = cluster.cluster.refusing if cluster is not None and cluster.cluster else ()
    left: list[IndexEntries] = []  # (the records the repair could not re-add)
    if repair:  # (refused to a worker: the error says whose it is)
        done, left = repaired_and_left(swarm.repair_indexes())
        report["indexes_repaired"] = [entries_row(e) for e in done]
        # (entries removed from a queue's sets, or a task added back to one, leave its
        # counters wrong: recounted)
        recount = recount or bool(done)
    if recount:  # (refused to a worker: the error says whose it is)
        report["counters_recounted"] = [asdict(c) for c in swarm.recount_counters()]
    _counters(swarm, report, warnings, failing)
    records, damage = _records(swarm, settings, warnings, failing, quick, refusing)
    report["corrupt_records"] = records
    if report["corrupt_records"].get("denied"):
        del report["corrupt_records"]["denied"]
        report["ok"] = False
    if any(report["corrupt_records"][kind] for kind in RECORD_KINDS):  # (the row says why)
        report["ok"] = False
    if damage is not None:
        damage_rows(report, damage)
    elif left:  # (--quick: no check after the repair names them: the repair does)
        report["index_entries"] = [entries_row(e) for e in left]
        report["ok"] = False
    if warnings:
        report["warnings"] = warnings
    if info is None:
        missing = "not read (see the warnings)"
    elif info.info_readable:
        missing = "unknown (the server does not say)"
    else:
        missing = NOT_VISIBLE

    def human() -> None:
        # (here: `swarm --help` imports this module to list it)
        from rich.markup import escape
        from rich.table import Table

        table = Table(show_header=False, box=None)
        for key, value in report.items():
            if key == "warnings" or (key in SHAPE_ROWS and value is None):
                continue
            if key == "corrupt_records":
                shown = corrupt_row(value, swarm.keys, cli)
            elif key == "counters_recounted":
                shown = _recounted(value)
            elif key in ROWS:
                shown = ROWS[key](value, swarm.keys, cli)
            elif key in ("sentinel", "cluster") and view is not None:
                shown = _topology_line(view)
            else:
                shown = _shown(value, missing)
            # (every row and warning may quote what a worker wrote: a queue, an agent, an
            # id; each control character in it is shown escaped, never sent to the terminal)
            table.add_row(f"[bold]{key}[/]", escape(printable(shown)))
        app.out.print(table)
        for warning in warnings:
            app.out.print(f"[yellow]warning:[/] {escape(printable(warning))}")

    app.emit(report, human)
    if not report["ok"]:
        sys.exit(EXIT_ERROR)


def _repair_cli(
    settings: Settings, info_readable: bool, view: SentinelView | ClusterView | None
) -> str:
    """The start of the redis-cli command of a repair (a stream's DEL, a damaged record's
    HDEL): on the URL's server (behind Sentinel, the master the sentinels name), logged in
    as the one rule says (``_durability.repair_cli``: this user where it may run INFO, else
    an admin or shard user)."""
    from .._durability import repair_cli  # (here: `swarm --help` imports this module)

    master = getattr(view, "master", None) if settings.kind == "sentinel" else None
    return repair_cli(settings, reads_info=info_readable, master=master).cli


def _counters(swarm: Swarm, report: dict[str, Any], warnings: list[str], failing: bool) -> None:
    """The ``counters`` row and its warnings; the report not ok when a counter is wrong. On a
    failing cluster, a read that fails leaves it not read, saying why."""
    check = _unless_failing(swarm.check_counters, failing, warnings, "the counters were not read")
    if check is None:
        report["counters"] = "not read (see the warnings)"
        return
    report["counters"] = check.row
    warnings += check.warnings
    if not check.ok:
        report["ok"] = False


def _recounted(changes: list[dict[str, Any]]) -> str:
    """The ``counters_recounted`` row: each counter the recount set, from what to what."""
    if not changes:
        return "nothing to change: every queue's counters matched its sets"
    shown = [
        f"queue {shown_name(c['queue'])} {c['status']} {_was(c['was'])} -> {c['now']:,}"
        for c in changes
    ]
    return first_few(shown, 10)


def _was(value: int | None) -> str:
    """A counter's value before the recount (None: there was none, or not a number)."""
    return "none" if value is None else f"{value:,}"


def _replica_guard(
    settings: Settings,
    reached: bool,
    report: dict[str, Any],
    warnings: list[str],
    library_refused: str | None,
) -> None:
    """The ``min_replicas_to_write`` row of a master with replicas, with the setting on,
    behind Sentinel, or of each master of a cluster, and its warning: while it is 0, a
    demoted (or cut off) master takes writes its successor never sees; while a master
    refuses every write for want of good replicas, what to do, the report not ok and the
    library row ``library_refused`` (no load offered) (``redis_swarm._replica_guard``). No
    row elsewhere, nor when INFO was not read (nor on a failing cluster: its nodes said
    why)."""
    if not reached:
        return
    # (here: `swarm --help` imports this module)
    from .._replica_guard import cluster_guard, replica_guard

    try:
        if settings.kind == "cluster":
            masters = cluster_guard(settings)
            if masters is None:
                return
            report["min_replicas_to_write"] = masters.row
            warnings += masters.warnings
            refusing = bool(masters.refusing)
        else:
            guard = replica_guard(settings)
            if guard is None:
                return
            report["min_replicas_to_write"] = guard.row
            if guard.warning is not None:
                warnings.append(guard.warning)
            refusing = guard.refusing
    except SwarmError as exc:  # (the server answered the rows above: say it, go on)
        report["min_replicas_to_write"] = f"not read: {exc}"
        return
    if refusing:
        report["ok"] = False
        if library_refused is not None:
            report["function_library"] = library_refused


def _unless_failing(
    read: Callable[[], T], failing: bool, warnings: list[str], what: str
) -> T | None:
    """``read()``; on a failing cluster, None when it fails (``what`` and why, warned)."""
    try:
        return read()
    except SwarmError as exc:
        if not failing:
            raise
        warnings.append(f"{what}: {exc}")
        return None


def _durability(swarm: Swarm, failing: bool) -> tuple[str, bool]:
    """The durability row, and False when ``?durability=strict`` cannot be honoured here
    (the row says why and what to change; the rest of the report is still worth reading)."""
    try:
        return swarm.durability(), True
    except ConfigError as exc:
        return f"failed: {exc}", False
    except SwarmError as exc:  # strict, probed on a failing cluster: say why it is not known
        if not failing:
            raise
        return f"not checked: {exc}", True


def _not_strict(swarm: Swarm) -> Swarm:
    """A handle like ``swarm`` without ``durability=strict``, for the doctor's checks once its
    durability row has said why strict cannot be honoured here (a strict handle's requests
    would each fail so, and the report would end there); closed with the command."""
    from .._client import Swarm  # (here: `swarm --help` imports this module)

    handle = Swarm(swarm.settings.replace(durability="normal"), swarm=swarm.name)
    click.get_current_context().call_on_close(handle.close)
    return handle


# Why ``corrupt_records`` is not checked under --quick.
SKIPPED_BY_QUICK = "skipped (--quick): run swarm doctor without it to read every record"


def _records(
    swarm: Swarm,
    settings: Settings,
    warnings: list[str],
    failing: bool,
    quick: bool,
    refusing: tuple[str, ...] = (),
) -> tuple[dict[str, Any], RecordDamage | None]:
    """``corrupt_records``, after the check that this user may read the swarm at all (its
    warning added; ``denied`` set when it may not), unless ``quick``; and what
    ``record_damage`` says of the indexes and lost findings (None: not read). On a failing
    cluster, a read that fails leaves them not checked, saying why."""
    user = settings.shown_user
    try:
        no_access = _no_access(swarm, settings, refusing)
        if no_access is not None:
            warnings.append(no_access)
            denied = _not_checked(f"{user!r} may not read swarm {settings.swarm!r}")
            return {**denied, "denied": True}, None
        if quick:
            return _not_checked(SKIPPED_BY_QUICK), None
        try:
            damage = swarm.record_damage()
        except PermissionDenied as exc:  # a role without HSCAN: the rest of the check stands
            return _not_checked(str(exc)), None
        return {**damage.found, "checked": True}, damage
    except SwarmError as exc:
        if not failing:
            raise
        return _not_checked(f"the swarm's keys could not be read: {exc}"), None
