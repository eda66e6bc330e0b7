"""``swarm acl``: the ACL SETUSER lines that make a Redis user a worker, shard, coordinator or
admin of one swarm; ``--apply`` runs them on the configured server (every node of a cluster,
the master and replicas behind a Sentinel)."""

from __future__ import annotations

import copy
import sys
from collections import defaultdict
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

import click

from .._config import UNCHECKED_TLS, Settings, handed_url, unverified_tls
from .._embedded import EmbeddedServer
from .._errors import ConfigError, ConnectionFailed, PartlyApplied, ValidationError
from .._models import ACL_ROLES
from .._validate import check_swarm_name
from ._app import App, json_option, main, pass_app, usage_failure

if TYPE_CHECKING:
    from .. import AppliedRole

__all__ = [
    "PASSWORD_PLACEHOLDER",
    "acl",
    "agent_url",
    "parse_version",
]

# What stands for the user's password in the URL shown to give the agents.
PASSWORD_PLACEHOLDER = "<password>"


# The option of a URL that turns off the verification of its server (``unverified_tls``).
_CERT_REQS = "ssl_cert_reqs"


def _password_from_stdin(user: str) -> str:
    """--password-stdin's password: typed at a terminal, read without echo (its prompt on
    stderr, so that stdout stays the rules), twice: a typo unseen would set another password
    than the one meant (typed to keep it, it changes it: the agents that have the old one are
    refused at their next connection, and an admin may lock itself out), so two that differ
    are refused, nothing done; piped, the first line, as it is."""
    if sys.stdin.isatty():
        import getpass  # (here: only a terminal needs it)

        typed = getpass.getpass(f"{user}'s password (not shown): ", stream=sys.stderr)
        again = getpass.getpass(f"{user}'s password again (not shown): ", stream=sys.stderr)
        if again != typed:
            raise ValidationError(
                f"the two passwords typed for {user} differ: nothing was done. Run the "
                "command again and type the same one twice (a typo would set another password "
                f"than the one meant: typed to keep it, the agents of {user} would be refused "
                "at their next connection)"
            )
        return typed
    return sys.stdin.readline().rstrip("\r\n")


@main.command(short_help="Print or --apply the ACL rules of a user of one role; --revoke one.")
@click.option("--role", type=click.Choice(ACL_ROLES), default=None, help="What the user may do.")
@click.option(
    "--swarm",
    "swarm_option",
    default=None,
    help="The swarm the user belongs to (default: the global --swarm / SWARM_NAME).",
)
@click.option("--user", "user", default=None, help="The Redis user name to create or update.")
@click.option(
    "--password",
    default=None,
    help="Its password (>= 16 characters); default: a strong generated one, printed once.",
)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input (keeps it out of ps).",
)
@click.option(
    "--apply",
    "apply_",
    is_flag=True,
    help="Run the lines on the server of --url / SWARM_URL (needs an admin user there).",
)
@click.option(
    "--demote-self",
    is_flag=True,
    help="Let --role below admin apply to the user --url connects as (it loses the rights to "
    "manage users: make another admin first).",
)
@click.option(
    "--kill-connections",
    is_flag=True,
    help="With --apply: then close the user's open connections on every server it was set "
    "on (normal and pub/sub ones; replication links and sentinels spared): a password is "
    "checked at login only, so a rotated, leaked one stays logged in until then. Every "
    "process of the user must log in again.",
)
@click.option(
    "--redis-version",
    "redis_version",
    default=None,
    metavar="X.Y",
    help="Print the rules for this Redis version (default: ask the server of --url / "
    "SWARM_URL; for the embedded default, the version of the binary it runs). With --apply "
    "the servers' own version is used, and another one given is refused.",
)
@click.option(
    "--agents-unverified-tls",
    "agents_unverified_tls",
    is_flag=True,
    help="Hand the agents --url's ssl_cert_reqs=optional or none too (left out of the agents' "
    "URL by default, so that they verify their server's certificate and host name).",
)
@click.option(
    "--revoke",
    "revoke",
    default=None,
    metavar="USER",
    help="Instead: delete USER on every server of --url / SWARM_URL (as --apply reaches "
    "them), saved (ACL SAVE), its connections closed (needs an admin user there; not the "
    "user --url connects as, nor 'default').",
)
@json_option
@pass_app
def acl(
    app: App,
    role: str | None,
    swarm_option: str | None,
    user: str | None,
    password: str | None,
    password_stdin: bool,
    apply_: bool,
    demote_self: bool,
    kill_connections: bool,
    redis_version: str | None,
    agents_unverified_tls: bool,
    revoke: str | None,
) -> None:
    """Print (or --apply) the ACL SETUSER lines for a user of one role in one swarm.

    \b
    worker       claim, renew, report, ask (peer assist), read contexts, send and read
                 messages; cannot publish contexts, post a pass's tasks, delete keys, run
                 admin commands or touch another swarm
    shard        everything inside its swarm, nothing outside
    coordinator  the same as shard
    admin        everything

    Each role but admin is an allowlist of the commands its operations use. The rules
    follow the server's version (--redis-version, else asked of --url / SWARM_URL; with
    --apply always the servers', a --redis-version they do not run refused): before Redis
    7.0 a worker's writes cannot be limited per key, and a warning says so.

    The password is sent to Redis as its SHA-256 only. Agents then connect with the URL in
    use (--url / SWARM_URL: its scheme, hosts and TLS options) with USER:PASSWORD in it.
    --user may be the user of --url itself: as an admin, that rotates its password (use the
    new one from then on), on every server or none (not on the embedded server, whose
    default user the home reaches it as); any other role is refused without --demote-self.
    A rotation that failed half way is finished with the URL as it is and the new password
    given (--password-stdin): a server that refuses the URL's password is tried with it.
    With --apply, the replication links (masteruser) and sentinels (auth-user) logged in as
    the user are named, with what to update before their next reconnection; and whether the
    user's password changed (the agents that have the old one are refused at their next
    connection) or was kept. Typed at a terminal, the password is asked twice.

    The agents' URL leaves out an ssl_cert_reqs=optional or none of --url (which turns off
    the check of the server's host name, or of its certificate too), so that the agents
    verify their server: --agents-unverified-tls hands it to them.

    --revoke USER (alone, with --url / SWARM_URL of an admin): delete USER on every server
    --apply would reach, saved there (a deletion, unlike ACL SETUSER USER off, also closes
    its open connections), each server reported; one left out still holds the user: run
    it again once that server is back (a replica of a plain URL's server, which that URL
    does not reach: through the sentinels' URL, as its warning says).
    """
    if revoke is not None:
        _revoke(app, revoke, given=_given_with_revoke(locals()))
        return
    if role is None or user is None:
        missing = "--role" if role is None else "--user"
        raise click.UsageError(f"Missing option '{missing}' (or give --revoke USER alone).")
    # (every check of the options before the password is asked: a typed one is not wasted)
    if password_stdin and password is not None:
        raise ConfigError("give --password or --password-stdin, not both")
    version = None if redis_version is None else parse_version(redis_version)
    if kill_connections and not apply_:
        raise ConfigError("--kill-connections closes connections on the servers: add --apply")
    # An empty --swarm is refused (as the global one is: a bad option, exit 2), not taken
    # for "the default".
    swarm = app.swarm_name if swarm_option is None else swarm_option
    try:
        check_swarm_name(swarm)
    except ValidationError as exc:
        usage_failure(exc)
    from .._acl_apply import apply_role, refuse_early  # (here: --help does without redis-py)

    if password_stdin:
        from .._acl import check_acl_user  # (the rules the apply checks, with no password)

        check_acl_user(role, swarm, user, version)
        refuse_early(app.settings, role, user, dry_run=not apply_, demote_self=demote_self)
        password = _password_from_stdin(user)

    try:
        made = apply_role(
            app.settings,
            role,
            user,
            password,
            swarm=swarm,
            version=version,
            dry_run=not apply_,
            demote_self=demote_self,
            kill_connections=kill_connections,
        )
    except PartlyApplied as exc:
        # Some servers hold the user, with a password that may be shown nowhere else: show
        # what was made, then the error.
        _render(app, exc.made, applied=True, unverified=agents_unverified_tls)
        raise
    except ConnectionFailed as exc:
        if apply_ or version is not None:
            raise
        # Only the rules were asked for, and the server only for its version: say that
        # they are printed without one (docs/security.md, "Users per role").
        unreached = copy.copy(exc)
        unreached.args = (f"{exc}; {_WITHOUT_A_SERVER}",)
        raise unreached from exc
    _render(app, made, applied=apply_, unverified=agents_unverified_tls)


# What a print of the rules (no --apply) that could not ask the server its version adds.
_WITHOUT_A_SERVER = (
    "or print the rules without a server: add --redis-version X.Y, the version of the "
    "servers the user is for (e.g. --redis-version 7.2)"
)


# The options of an apply, which --revoke takes none of: what each is when not given.
_APPLY_OPTIONS = {
    "role": None,
    "swarm_option": None,
    "user": None,
    "password": None,
    "password_stdin": False,
    "apply_": False,
    "demote_self": False,
    "kill_connections": False,
    "redis_version": None,
    "agents_unverified_tls": False,
}


def _given_with_revoke(given: dict[str, Any]) -> list[str]:
    """The options of an apply given with --revoke (their names as typed)."""
    return [
        "--" + name.removesuffix("_option").removesuffix("_").replace("_", "-")
        for name, unset in _APPLY_OPTIONS.items()
        if given[name] != unset
    ]


def _revoke(app: App, user: str, *, given: list[str]) -> None:
    """``swarm acl --revoke USER``: ``revoke_user``, rendered."""
    if given:
        raise click.UsageError(f"--revoke USER goes alone: leave out {', '.join(given)}")
    from .._acl_revoke import revoke_user  # (here: --help does without redis-py)

    done = revoke_user(app.settings, user)
    data: dict[str, Any] = {
        "revoked": done.user,
        "deleted": _applied_list(done.deleted),
        "absent": list(done.absent),
        "closed": [{"node": node, "connections": n} for node, n in done.closed.items()],
        "cut": [{"node": node, "reason": why} for node, why in done.cut.items()],
        "skipped": [{"node": node, "reason": why} for node, why in done.skipped.items()],
    }

    def human() -> None:
        for node, how in done.deleted.items():
            click.echo(f"# user {user!r} deleted on {node}: {how}")
        for node in done.absent:
            click.echo(f"# no user {user!r} on {node}")
        for node, count in done.closed.items():
            click.echo(f"# closed {count} connection(s) of user {user!r} on {node}")
        for node, why in done.cut.items():
            click.echo(f"warning: on {node}: {why}", err=True)
        kind = app.settings.kind
        noun = "node" if kind == "cluster" else "replica"
        for node, why in done.skipped.items():
            # (not revoked there: the user keeps its rights, and after a failover to that
            # server, the master's; a plain URL's replicas are up: the reason says how)
            click.echo(
                f"warning: not revoked on {noun} {node}: {why}; user {user!r} is still there "
                f"(it logs in there, and keeps its rights after a failover to it){_AGAIN[kind]}",
                err=True,
            )

    app.emit(data, human)


# What a warning of a server left out (by an apply or a revoke) ends with, by the URL's kind:
# behind a cluster or a Sentinel, one is left out because it is down (or its link is): run
# the command again once it is back. A plain URL's replicas are up, not reached: their
# reason says how to include them (``_unreached_replicas``), and no "once it is back" fits.
_AGAIN: defaultdict[str, str] = defaultdict(
    str,
    cluster=": run this command again once the node is up in the cluster",
    sentinel=": run this command again once the replica is back",
)


def _applied_list(persisted: dict[str, str] | Any) -> list[dict[str, str]]:
    return [{"node": node, "persisted": how} for node, how in persisted.items()]


def _render(app: App, made: AppliedRole, *, applied: bool, unverified: bool = False) -> None:
    """``made`` as ``swarm acl`` prints it; ``applied``: it was run on the servers;
    ``unverified``: the agents' URL keeps --url's ssl_cert_reqs (``agent_url``)."""
    from .._acl_apply import (  # (here: --help does without redis-py)
        PASSWORD_CHANGED,
        password_change_said,
    )

    spec, version = made.user, made.version
    url = agent_url(app.settings, app.url, spec.user, unverified=unverified)
    tls_said = _agents_tls(app.settings, unverified)
    password_said = password_change_said(made)
    nodes = made.applied
    skipped = [{"node": node, "reason": why} for node, why in made.skipped.items()]
    data: dict[str, Any] = {
        "user": spec.user,
        "role": spec.role,
        "swarm": spec.swarm,
        "redis_version": f"{version[0]}.{version[1]}",
        "rules": list(spec.rules),
        "command": spec.line,
        "applied": nodes,
        "url_user": made.url_user,
        "skipped": skipped,
        "closed": [{"node": node, "connections": n} for node, n in made.closed.items()],
        "spared": [{"node": node, "reason": why} for node, why in made.spared.items()],
        "warning": spec.warning,
        "agent_url": url,
        "agent_url_warning": tls_said,
        "password_change": made.password_change,
        "password_note": password_said,
    }
    if spec.generated:
        data["password"] = spec.password

    def human() -> None:
        scope = "every swarm" if spec.role == "admin" else f"swarm {spec.swarm!r}"
        for_version = f"for Redis {version[0]}.{version[1]}"
        click.echo(f"# user {spec.user!r}: {spec.role} of {scope}, {for_version}")
        if spec.warning:
            click.echo(f"warning: {spec.warning}", err=True)
        if spec.generated:
            click.echo(f"# password (generated, shown once; store it now): {spec.password}")
        if applied and made.url_user:
            new = "the one above" if spec.generated else "the one given"
            click.echo(
                f"# user {spec.user!r} is the one --url connects as: its password there is now "
                f"{new}; put it in SWARM_URL from now on"
            )
            if spec.role != "admin":
                click.echo(
                    f"warning: user {spec.user!r} of --url is now a {spec.role}: it may no "
                    "longer manage users; use another admin's URL for that",
                    err=True,
                )
        if tls_said is not None:
            click.echo(f"warning: {tls_said}", err=True)
        click.echo(f"# agents connect with: {url}")
        if password_said is not None and made.password_change != PASSWORD_CHANGED:
            click.echo(f"# {password_said}")
        elif password_said is not None:  # (a change the agents pay for: said on stderr)
            click.echo(f"warning: {password_said}", err=True)
        click.echo(spec.line)
        for node in nodes:
            click.echo(f"# applied on {node['node']}: {node['persisted']}")
        for where, count in made.closed.items():
            click.echo(f"# closed {count} connection(s) of user {spec.user!r} on {where}")
        for where, why in made.spared.items():  # (with --kill-connections or not)
            click.echo(f"warning: on {where}: {why}", err=True)
        # Behind a Sentinel only replicas are skipped (down, or not answering); on a cluster,
        # nodes without hash slots (replicas, a master a failover replaced, a node joining);
        # with a plain URL, the replicas of its server, which it does not reach (the reason
        # says how to include them). One that refuses the URL's user fails the apply instead.
        kind = app.settings.kind
        noun = "node" if kind == "cluster" else "replica"
        again = _AGAIN[kind]
        for node in skipped:
            # (a server skipped keeps the user as it was: missing, or with its old password,
            # which, leaked, still logs in there and keeps its rights after a failover to it)
            click.echo(
                f"warning: not applied on {noun} {node['node']}: {node['reason']}; user "
                f"{spec.user!r} is there as it was (missing, or with its old rules and "
                f"password: a leaked password still logs in there, and a failover to it keeps "
                f"that or locks the user's agents out){again}",
                err=True,
            )

    app.emit(data, human)


def agent_url(settings: Settings, url: str, user: str, *, unverified: bool = False) -> str:
    """The URL the agents of ``user`` connect with: ``url`` (the one in use, parsed as
    ``settings``) with its scheme, hosts, database and options (TLS ones included), and
    ``user`` with a placeholder for the password in place of its own user and password;
    for the embedded server, its unix socket. An ``ssl_cert_reqs`` that turns verification
    off (``unverified_tls``) is left out unless ``unverified``: an admin may connect so for
    its own reasons (a diagnosis, an address its certificate lacks), but agents handed it
    would send their password to whoever can stand in the middle, silently."""
    if settings.kind == "embedded":
        url = EmbeddedServer(settings.home).url
    parts = urlsplit(url.strip())
    hosts = parts.netloc.rpartition("@")[2]  # (as the URL parser splits a password off)
    if unverified_tls(settings) is not None and not unverified:
        kept = [
            pair
            for pair in parts.query.split("&")
            if unquote_plus(pair.partition("=")[0]) != _CERT_REQS
        ]
        parts = parts._replace(query="&".join(kept))
    return handed_url(urlunsplit(parts._replace(netloc=f"{user}:{PASSWORD_PLACEHOLDER}@{hosts}")))


def _agents_tls(settings: Settings, unverified: bool) -> str | None:
    """What ``swarm acl`` says of an ``ssl_cert_reqs`` of --url that turns verification off:
    left out of the agents' URL (and why, and how to keep it), or handed to them as asked;
    None when --url verifies its server. (Its connection's own ``TlsNotVerified`` says what
    the admin's password risks.)"""
    if unverified_tls(settings) is None:
        return None
    option = f"{_CERT_REQS}={settings.ssl_cert_reqs}"
    unchecked = UNCHECKED_TLS[settings.ssl_cert_reqs]
    if unverified:
        return (
            f"the agents' URL keeps --url's {option} (--agents-unverified-tls): the agents do "
            f"not check {unchecked}, and send their password to whoever can stand in the "
            "middle; each says so as it connects"
        )
    return (
        f"the agents' URL leaves out --url's {option}, which turns off the check of "
        f"{unchecked}, so that the agents verify their server: should they be refused its "
        "certificate, fix it (or connect by a name it lists) rather than hand them the "
        "option; --agents-unverified-tls hands it to them"
    )


def parse_version(text: str) -> tuple[int, int]:
    """``7.2`` or ``7.2.4`` as (7, 2), for --redis-version."""
    from .._acl import parse_version as core_parse_version

    try:
        return core_parse_version(text)
    except ValidationError as exc:
        raise click.BadParameter(str(exc), param_hint="--redis-version") from None
