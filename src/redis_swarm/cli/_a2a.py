"""``swarm a2a``: serve the swarm as an Agent2Agent server (the face: parse, check, build,
serve)."""

from __future__ import annotations

from urllib.parse import urlsplit

import click

from .._errors import ConfigError, PermissionDenied, ValidationError
from .._net import announced_host, every_interface, http_url, listen, loopback_only
from .._validate import check_queues
from ._app import App, main, pass_app, usage_failure
from ._common import Seconds, listen_options

# A task and webhook id no task has: what the access check reads and claims (nothing).
_PROBE_ID = "a2a-access-check"


def _queues(queues: tuple[str, ...]) -> tuple[str, ...]:
    """The queues to expose, as the core names them: a bad one would be on the card, and
    every message sent to it refused."""
    try:
        return check_queues(queues, what="--queue")
    except ValidationError as exc:
        raise click.BadParameter(str(exc), param_hint="--queue") from None


def _card_url(url: str | None) -> str | None:
    """--url as clients will use it: http(s), with a host."""
    if url is None:
        return None
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 (raises on a port that is no number)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(
            f"{url!r} is not an http(s) URL with a host (and a port from 1 to 65535, if "
            "any): give the URL clients reach this server at, e.g. "
            "https://agents.example.com/swarm/",
            param_hint="--url",
        )
    return url.strip()


def _check_access(app: App) -> None:
    """Reach Redis before serving, and check that its user may do what an A2A server does:
    a wrong password, an unreachable server or a wrong CA then fails here, at once, instead
    of after the card was announced; so does a worker's user, which may not keep webhooks.
    The checks read and claim a webhook no task has: nothing changes."""
    from ..a2a_server._words import needs_role

    swarm = app.swarm
    swarm.ping()
    try:
        swarm.webhooks(_PROBE_ID)  # (a worker may not even read them)
        swarm.claim_webhook_event(_PROBE_ID, _PROBE_ID, "0-1")  # (nor run their scripts)
    except PermissionDenied as exc:
        raise PermissionDenied(f"{exc}; {needs_role(app.swarm_name)}") from None


def _descriptions(pairs: tuple[str, ...], queues: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        queue, sep, text = pair.partition("=")
        if not sep or not text.strip():
            raise click.BadParameter(f"{pair!r}: use QUEUE=DESCRIPTION", param_hint="--describe")
        if queue not in queues:
            raise click.BadParameter(
                f"{queue!r} is not an exposed queue (--queue): {', '.join(queues)}",
                param_hint="--describe",
            )
        out[queue] = text.strip()
    return out


@main.command(short_help="Serve the swarm as an A2A (Agent2Agent) server (Ctrl-C stops).")
@click.option(
    "--queue",
    "queues",
    multiple=True,
    required=True,
    help="A queue to expose as a skill (repeat for more; the first is the default skill).",
)
@click.option(
    "--describe",
    "describe",
    multiple=True,
    metavar="QUEUE=TEXT",
    help="The skill description of a queue, shown on the agent card (repeatable).",
)
@listen_options(
    port=8766,
    token_env="SWARM_A2A_TOKEN",
    token_help="Require this bearer token (the card declares it); mandatory off loopback",
)
@click.option(
    "--url",
    "public_url",
    help="The URL clients reach this server at, written on the card "
    "(default: http://HOST:PORT/; set it behind a proxy).",
)
@click.option("--name", help="The agent's name on the card (default: redis-swarm SWARM).")
@click.option(
    "--wait",
    "wait_s",
    default=30.0,
    show_default=True,
    type=Seconds(most=3600),
    help="Seconds a blocking SendMessage waits for the task to settle before answering.",
)
@pass_app
def a2a(
    app: App,
    queues: tuple[str, ...],
    describe: tuple[str, ...],
    host: str,
    port: int,
    token: str | None,
    public_url: str | None,
    name: str | None,
    wait_s: float,
) -> None:
    """Serve the swarm as an A2A 1.0 server: each message becomes a task of a queue (a
    skill), and its finding the task's artifact; JSON-RPC and HTTP+JSON, streaming and push
    notifications. The agent card is at /.well-known/agent-card.json (see docs/a2a.md)."""
    from .._extras import needs_extra

    try:
        from .._stopping import Stopping
        from .._web import require_token_off_loopback, serve
        from ..a2a_server import create_app
        from ..a2a_server._logs import one_line_client_errors
    except ImportError as exc:  # the A2A part is an extra
        raise ConfigError(needs_extra("swarm a2a", exc.name, "a2a")) from None
    from .._client import AsyncSwarm  # (here: redis-py, which --help does without)

    try:  # (a bad --token is a bad option, exit 2, as swarm mcp's and the dashboard's are)
        require_token_off_loopback(
            host, token, what="an A2A server takes work for the swarm", env="SWARM_A2A_TOKEN"
        )
    except ConfigError as exc:
        usage_failure(exc)
    queues = _queues(queues)
    public_url = _card_url(public_url)
    descriptions = _descriptions(describe, queues)
    # Reach Redis before serving, as `swarm mcp` does: a server that cannot work says so and
    # exits, rather than announcing its card and failing every request.
    _check_access(app)
    one_line_client_errors()
    # Listening before the card's URL is announced: --port 0 names the port picked, and the
    # port stays this server's.
    with listen(host, port) as listening:
        # (a wildcard host is no address a client can open: the card names this machine)
        base_url = public_url or http_url(announced_host(host)[0], listening.port)
        web = create_app(
            AsyncSwarm(app.settings),
            queues=queues,
            base_url=base_url,
            descriptions=descriptions,
            name=name,
            token=token,
            host=host,
            wait_s=wait_s,
            private_webhooks=loopback_only(host),
            close_swarm=True,
            stopping=Stopping(),
        )
        card = base_url.rstrip("/") + "/.well-known/agent-card.json"
        app.err.print(
            f"A2A server of swarm [bold]{app.swarm_name}[/]: card at {card}  "
            f"({every_interface(host)}Ctrl-C to stop)"
        )
        serve(web, listening)
