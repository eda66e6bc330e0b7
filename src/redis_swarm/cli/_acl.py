"""``swarm acl``: the ACL SETUSER lines that make a Redis user a worker, shard, coordinator or
admin of one swarm; ``--apply`` runs them on the configured server (every node of a cluster,
the master and replicas behind a Sentinel)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import click
import redis

from .._acl import ROLES, AclUser, acl_user
from .._client import Swarm
from .._config import Settings
from .._connect import sync_client
from .._embedded import EmbeddedServer, find_redis_server
from .._errors import ConfigError, SwarmError
from .._translate import translate
from ._app import App, json_option, main, pass_app

T = TypeVar("T")

# What stands for the user's password in the URL shown to give the agents.
PASSWORD_PLACEHOLDER = "<password>"


@main.command(short_help="Print or --apply the ACL rules of a user of one role.")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the user may do.")
@click.option(
    "--swarm",
    "swarm_option",
    default=None,
    help="The swarm the user belongs to (default: the global --swarm / SWARM_NAME).",
)
@click.option("--user", "user", required=True, help="The Redis user name to create or update.")
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
    "--redis-version",
    "redis_version",
    default=None,
    metavar="X.Y",
    help="Print the rules for this Redis version (default: ask the server of --url / "
    "SWARM_URL; for the embedded default, the version of the binary it runs).",
)
@json_option
@pass_app
def acl(
    app: App,
    role: str,
    swarm_option: str | None,
    user: str,
    password: str | None,
    password_stdin: bool,
    apply_: bool,
    redis_version: str | None,
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
    follow the server's version (asked with --apply or a --url, else --redis-version):
    before Redis 7.0 a worker's writes cannot be limited per key, and a warning says so.

    The password is sent to Redis as its SHA-256 only. Agents then connect with the URL in
    use (--url / SWARM_URL: its scheme, hosts and TLS options) with USER:PASSWORD in it.
    """
    if password_stdin:
        if password is not None:
            raise ConfigError("give --password or --password-stdin, not both")
        password = sys.stdin.readline().rstrip("\r\n")
    if redis_version is not None:
        version = parse_version(redis_version)
    elif apply_ or app.settings.kind != "embedded":
        version = server_version(app.settings)
    else:  # do not start the embedded server only to print a line
        version = parse_version(find_redis_server().version)
    # An empty --swarm is refused (as the global one is), not taken for "the default".
    swarm = app.swarm_name if swarm_option is None else swarm_option
    spec = acl_user(role, swarm, user, password, version)
    url = agent_url(app.settings, app.url, spec.user)
    applied: list[dict[str, str]] = []
    if apply_:
        applied = apply_user(app.settings, spec)
    data: dict[str, Any] = {
        "user": spec.user,
        "role": spec.role,
        "swarm": spec.swarm,
        "redis_version": f"{version[0]}.{version[1]}",
        "rules": list(spec.rules),
        "command": spec.line,
        "applied": applied,
        "warning": spec.warning,
        "agent_url": url,
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
        click.echo(f"# agents connect with: {url}")
        click.echo(spec.line)
        for node in applied:
            click.echo(f"# applied on {node['node']}: {node['persisted']}")

    app.emit(data, human)


def agent_url(settings: Settings, url: str, user: str) -> str:
    """The URL the agents of ``user`` connect with: ``url`` (the one in use, parsed as
    ``settings``) with its scheme, hosts, database and options (TLS ones included), and
    ``user`` with a placeholder for the password in place of its own user and password;
    for the embedded server, its unix socket."""
    if settings.kind == "embedded":
        url = EmbeddedServer(settings.home).url
    parts = urlsplit(url.strip())
    hosts = parts.netloc.rpartition("@")[2]  # (as the URL parser splits a password off)
    return urlunsplit(parts._replace(netloc=f"{user}:{PASSWORD_PLACEHOLDER}@{hosts}"))


def parse_version(text: str) -> tuple[int, int]:
    """``7.2`` or ``7.2.4`` as (7, 2)."""
    parts = text.strip().split(".")
    if len(parts) < 2 or not all(part.isdigit() for part in parts[:3]):
        raise click.BadParameter(
            f"{text!r} is not a Redis version: give it as MAJOR.MINOR, such as 7.2",
            param_hint="--redis-version",
        )
    return int(parts[0]), int(parts[1])


def server_version(settings: Settings) -> tuple[int, int]:
    """The oldest Redis version among the servers that must hold the user."""
    return min(parse_version(text) for text in _on_every_node(settings, _version_text).values())


def _on_every_node(settings: Settings, fn: Callable[[Any], T]) -> dict[str, T]:
    """``fn(client)`` on every server that must hold the user, by node name; redis-py errors
    arrive translated (one line saying what to do)."""
    done: dict[str, T] = {}
    try:
        for name, target in _targets(settings):
            client: Any = sync_client(target)
            try:
                done[name] = fn(client)
            finally:
                client.close()
    except SwarmError:
        raise
    except (redis.RedisError, OSError) as exc:
        raise translate(exc, settings.url) from None
    return done


def _version_text(client: Any) -> str:
    """INFO server's redis_version; HELLO's version for a user that may not read INFO."""
    try:
        return str(client.execute_command("INFO", "server")["redis_version"])
    except redis.exceptions.NoPermissionError:
        reply = client.execute_command("HELLO")
    if isinstance(reply, list):
        reply = dict(zip(reply[::2], reply[1::2], strict=False))
    version = reply.get(b"version", reply.get("version", b""))
    return version.decode() if isinstance(version, bytes) else str(version)


def _targets(settings: Settings) -> list[tuple[str, Settings]]:
    """Every server that must hold the user (ACLs are per node), as direct settings."""
    if settings.kind not in ("cluster", "sentinel"):
        return [(settings.url, settings)]
    client: Any = sync_client(settings)
    try:
        if settings.kind == "cluster":
            # Every node the cluster knows, replicas included, as CLUSTER NODES lists them.
            addresses = _cluster_nodes(client)
        else:
            addresses = [client.connection_pool.get_master_address(), *_replicas(settings)]
    finally:
        client.close()
    return [(f"{host}:{port}", _direct(settings, host, port)) for host, port in addresses]


def _cluster_nodes(client: Any) -> list[tuple[str, int]]:
    """host, port of every healthy node in CLUSTER NODES (redis-py parses it to a dict)."""
    reply = client.execute_command("CLUSTER NODES", target_nodes=client.get_default_node())
    nodes = []
    for address, node in dict(reply).items():
        flags = set(str(node.get("flags", "")).split(","))
        if {"fail", "noaddr", "handshake"} & flags:
            continue
        host, _, port = str(address).split("@", 1)[0].rpartition(":")
        nodes.append((host.strip("[]"), int(port)))
    return nodes


def _replicas(settings: Settings) -> list[tuple[str, int]]:
    from redis.sentinel import Sentinel

    assert settings.service_name is not None
    # redis-py types Sentinel from 8.2 on; before, its calls were untyped (unused-ignore keeps
    # the ignore silent where it is not needed).
    sentinel = Sentinel(  # type: ignore[no-untyped-call, unused-ignore]
        list(settings.nodes),
        sentinel_kwargs={"socket_timeout": settings.connect_timeout},
        socket_timeout=settings.connect_timeout,
    )
    try:
        found: Sequence[Any] = sentinel.discover_slaves(settings.service_name)  # type: ignore[no-untyped-call, unused-ignore]
        replicas = [(str(host), int(port)) for host, port in found]
    finally:
        for node in sentinel.sentinels:
            node.close()
    return replicas


def _direct(settings: Settings, host: str, port: int) -> Settings:
    return settings.replace(kind="standalone", host=host, port=port, nodes=())


def apply_user(settings: Settings, spec: AclUser) -> list[dict[str, str]]:
    """Run the ACL SETUSER on every node; persist it where the server allows. Returns, per
    node, how it was persisted."""

    def apply(client: Any) -> str:
        client.execute_command(*spec.command)
        return _persist(client)

    done = _on_every_node(settings, apply)
    # The user runs the swarm's scripts as the functions of its library: load it (or
    # replace an older one) now, as 'swarm up' does, since a worker may not load it.
    with Swarm(settings) as swarm:
        swarm.load_functions()
    return [{"node": name, "persisted": persisted} for name, persisted in done.items()]


def _persist(client: Any) -> str:
    """ACL SAVE (aclfile), else CONFIG REWRITE (redis.conf), else say it is memory only."""
    try:
        client.execute_command("ACL", "SAVE")
    except redis.ResponseError:
        pass
    else:
        return "saved to the aclfile"
    try:
        client.execute_command("CONFIG", "REWRITE")
    except redis.ResponseError:
        return (
            "in memory only (the server has no aclfile or config file): "
            "add the line to its aclfile or redis.conf, or it is lost at restart"
        )
    return "saved to redis.conf (CONFIG REWRITE)"
