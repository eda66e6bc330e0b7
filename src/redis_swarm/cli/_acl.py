"""``swarm acl``: the ACL SETUSER lines that make a Redis user a worker, shard, coordinator or
admin of one swarm; ``--apply`` runs them on the configured server (every node of a cluster,
the master and replicas behind a Sentinel)."""

from __future__ import annotations

import sys
from typing import Any

import click
import redis

from .._acl import ROLES, AclUser, acl_user
from .._client import Swarm
from .._config import Settings
from .._connect import sync_client
from .._errors import ConfigError, SwarmError
from .._translate import translate
from ._app import App, json_option, main, pass_app


@main.command()
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
) -> None:
    """Print (or --apply) the ACL SETUSER lines for a user of one role in one swarm.

    \b
    worker       claim, renew, report, read contexts and its inbox; cannot publish contexts,
                 delete keys, run admin commands or touch another swarm
    shard        everything inside its swarm, nothing outside
    coordinator  the same as shard
    admin        everything

    The password is sent to Redis as its SHA-256 only. Agents then connect with
    redis://USER:PASSWORD@HOST:PORT (rediss:// over the internet).
    """
    if password_stdin:
        if password is not None:
            raise ConfigError("give --password or --password-stdin, not both")
        password = sys.stdin.readline().rstrip("\r\n")
    spec = acl_user(role, swarm_option or app.swarm_name, user, password)
    applied: list[dict[str, str]] = []
    if apply_:
        applied = apply_user(app.settings, spec)
    data: dict[str, Any] = {
        "user": spec.user,
        "role": spec.role,
        "swarm": spec.swarm,
        "rules": list(spec.rules),
        "command": spec.line,
        "applied": applied,
    }
    if spec.generated:
        data["password"] = spec.password

    def human() -> None:
        scope = "every swarm" if spec.role == "admin" else f"swarm {spec.swarm!r}"
        click.echo(f"# user {spec.user!r}: {spec.role} of {scope}")
        if spec.generated:
            click.echo(f"# password (generated, shown once; store it now): {spec.password}")
            click.echo(f"# agents connect with: redis://{spec.user}:<password>@HOST:PORT")
        click.echo(spec.line)
        for node in applied:
            click.echo(f"# applied on {node['node']}: {node['persisted']}")

    app.emit(data, human)


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
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(settings.nodes),
        sentinel_kwargs={"socket_timeout": settings.connect_timeout},
        socket_timeout=settings.connect_timeout,
    )
    try:
        replicas: list[tuple[str, int]] = sentinel.discover_slaves(settings.service_name)  # type: ignore[no-untyped-call]
    finally:
        for node in sentinel.sentinels:
            node.close()
    return replicas


def _direct(settings: Settings, host: str, port: int) -> Settings:
    return settings.replace(kind="standalone", host=host, port=port, nodes=())


def apply_user(settings: Settings, spec: AclUser) -> list[dict[str, str]]:
    """Run the ACL SETUSER on every node; persist it where the server allows. Returns, per
    node, how it was persisted."""
    done: list[dict[str, str]] = []
    try:
        for name, target in _targets(settings):
            client: Any = sync_client(target)
            try:
                client.execute_command(*spec.command)
                done.append({"node": name, "persisted": _persist(client)})
            finally:
                client.close()
    except SwarmError:
        raise
    except (redis.RedisError, OSError) as exc:
        raise translate(exc, settings.url) from None
    # The user runs the swarm's scripts as the functions of its library: load it (or
    # replace an older one) now, as 'swarm up' does, since a worker may not load it.
    with Swarm(settings) as swarm:
        swarm.load_functions()
    return done


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
