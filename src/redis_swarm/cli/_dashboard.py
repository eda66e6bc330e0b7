"""``swarm dashboard`` (the live web page) and ``swarm watch`` (the same view in a terminal)."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import click

from .._codec import dumps, dumps_shown, now_ms
from .._errors import ConfigError, ConnectionFailed
from .._net import announced_host, every_interface, http_url, listen
from .._printable import OWNERS_SHOWN, printable
from ._app import App, json_option, main, pass_app, usage_failure
from ._common import Seconds, listen_options

if TYPE_CHECKING:
    from rich.live import Live

    from .._client import AsyncSwarm
    from ..dashboard import Snapshot

# swarm watch: redraw at most this often when events pour in, and by default at least this
# often when nothing happens (agents go stale with time, not with an event: --interval).
_MIN_REDRAW_S = 0.25
_IDLE_REDRAW_S = 5.0
# The longest --interval: agents turn stale after a minute without a heartbeat, so a view
# re-read less than hourly would show them alive long after.
_MOST_IDLE_REDRAW_S = 3600.0
# Redis lost while following: the first try again after this long, each next one twice as
# late, up to _RETRY_MOST_S (each try also rides out the client's own retries, about 5 s with
# a redis:// URL's defaults, before it counts as failed): a server back is seen within
# seconds, one down for hours costs a try every few seconds.
_RETRY_FIRST_S = 1.0
_RETRY_MOST_S = 8.0
# The variable that gives the dashboard its token (kept out of ps, unlike --token).
_TOKEN_ENV = "SWARM_DASHBOARD_TOKEN"


@main.command(short_help="Serve the live, read-only web dashboard (Ctrl-C stops).")
@listen_options(
    port=8765,
    token_env=_TOKEN_ENV,
    token_help="Require this token (Authorization: Bearer, or ?token=); mandatory off loopback",
)
@pass_app
def dashboard(app: App, host: str, port: int, token: str | None) -> None:
    """Serve the live, read-only web dashboard of the swarm (Ctrl-C to stop)."""
    # (here, not at the top: Starlette, uvicorn and redis-py, which --help does without)
    from .._client import AsyncSwarm
    from .._stopping import Stopping
    from .._web import require_token_off_loopback, serve
    from ..dashboard.app import create_app

    try:  # (a bad --token is a bad option, exit 2, as swarm mcp's and swarm a2a's are)
        require_token_off_loopback(
            host, token, what="the dashboard shows everything agents report", env=_TOKEN_ENV
        )
    except ConfigError as exc:
        usage_failure(exc)
    # Reach Redis before serving, as `swarm a2a` and `swarm mcp` do: a wrong URL, password
    # or CA, or a user that may not read the swarm, then fails here, at once, instead of
    # after the address was announced, with every request answered 503.
    app.swarm.ping()
    app.swarm.status()
    # Listening before the URL is announced: --port 0 names the port picked, and the port
    # stays this server's.
    with listen(host, port) as listening:
        swarm = AsyncSwarm(app.settings)
        web = create_app(swarm, token=token, host=host, close_swarm=True, stopping=Stopping())
        url = http_url(announced_host(host)[0], listening.port)
        url += f"?token={token}" if token else ""
        where = every_interface(host)
        app.err.print(
            f"dashboard of swarm [bold]{app.swarm_name}[/] at {url}  ({where}Ctrl-C to stop)"
        )
        serve(web, listening)


@main.command(short_help="Show the swarm live in the terminal.")
@click.option("--once", is_flag=True, help="Print one snapshot and exit.")
@click.option(
    "--findings",
    "findings_n",
    default=8,
    show_default=True,
    type=click.IntRange(1, 500),
    help="How many of the newest findings to show.",
)
@click.option(
    "--interval",
    "idle_s",
    type=Seconds(above_zero=True, most=_MOST_IDLE_REDRAW_S),
    default=_IDLE_REDRAW_S,
    show_default=True,
    help="With no event, re-read the swarm this often (agents turn stale with time).",
)
@click.option("--all", "all_", is_flag=True,
              help="List every settled queue and pass, every stale agent and every context "
              "owner, not only the last few.")  # fmt: skip
@json_option
@pass_app
def watch(app: App, once: bool, findings_n: int, idle_s: float, all_: bool) -> None:
    """Show agents, queues, passes, findings and contexts live in the terminal.

    Redraws on every change in the event stream. Lists every queue and pass with open work
    and the last few settled ones, every live agent and the few stale ones seen last, the
    context owners that published last; --all lists them all. With --json, prints one
    snapshot per change as a JSON line (with --once: one snapshot; it always holds them
    all). Into a pipe or a file, prints a plain snapshot
    at the start and after each change, as --once draws it. Losing Redis while it follows
    says so once and tries again until Redis is back (--once fails at once instead); a TLS
    failure no retry fixes (a certificate that does not verify) ends it with the error.
    """
    import asyncio  # here, not at the top: `swarm --help` imports this module to list it

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a live watch ends
        asyncio.run(_watch(app, once=once, findings_n=findings_n, idle_s=idle_s, all_=all_))


async def _watch(app: App, *, once: bool, findings_n: int, idle_s: float, all_: bool) -> None:
    # Here, as what the view draws with: the shell and the snapshot bring redis-py, which
    # --help does without.
    from rich.live import Live

    from .._client import AsyncSwarm
    from ..dashboard import snapshot

    # Drawn for people, only the owners that published last are: only their versions are
    # read (a call an owner, and 2,000 shards were 2,000 calls on every change).
    owners = None if all_ or app.json else OWNERS_SHOWN

    async with AsyncSwarm(app.settings) as swarm:

        def read() -> Awaitable[Snapshot]:
            return snapshot(swarm, findings=findings_n, owners=owners)

        snap = await read()
        # Off a terminal rich's Live cannot redraw in place (it would print only the last
        # frame, at exit): print a snapshot per change instead, as --json does.
        if once or app.json or not app.out.is_terminal:
            _print(app, snap, findings_n, all_)
            if once:
                return
            shown = snap

            def print_next(s: Snapshot) -> None:
                nonlocal shown
                if not app.json:  # one blank line between plain snapshots
                    app.out.print()
                _print(app, s, findings_n, all_)
                shown = s

            def print_if_stale(s: Snapshot) -> None:
                if _liveness(s) != _liveness(shown):
                    print_next(s)

            say = _sayer(app, None)
            await _follow(swarm, snap, print_next, read, idle_s, idle=print_if_stale, say=say)
            return
        with Live(
            _draw(app, snap, findings_n, all_), console=app.out, auto_refresh=False, screen=False
        ) as live:

            def show(s: Snapshot) -> None:
                live.update(_draw(app, s, findings_n, all_), refresh=True)

            await _follow(swarm, snap, show, read, idle_s, idle=show, say=_sayer(app, live))


async def _follow(
    swarm: AsyncSwarm,
    snap: Snapshot,
    show: Callable[[Snapshot], None],
    read_snapshot: Callable[[], Awaitable[Snapshot]],
    idle_s: float,
    *,
    idle: Callable[[Snapshot], None],
    say: Callable[[str, dict[str, Any]], None],
) -> None:
    """Follow the swarm (``_follow_events``) until Ctrl-C. A lost Redis is said once
    (``say``) and tried again until it answers; then the view goes on from a snapshot read
    anew (``show``), following the events after the newest one it reflects: none missed,
    none taken twice. An error no retry fixes (``ConnectionFailed.retryable`` False: a
    certificate refused, the URL's TLS files) ends the watch with it, as any command's:
    it says what to fix."""
    read = snap  # the last snapshot read: Redis answered at its ``at``

    def reading(view: Callable[[Snapshot], None]) -> Callable[[Snapshot], None]:
        def take(s: Snapshot) -> None:
            nonlocal read
            read = s
            view(s)

        return take

    while True:
        try:
            await _follow_events(
                swarm, read, reading(show), read_snapshot, idle_s, idle=reading(idle)
            )
        except ConnectionFailed as exc:
            if not exc.retryable:
                raise
            read = await _reconnect(exc, read.at, read_snapshot, say)
            show(read)


async def _reconnect(
    lost: ConnectionFailed,
    since: int,
    read: Callable[[], Awaitable[Snapshot]],
    say: Callable[[str, dict[str, Any]], None],
) -> Snapshot:
    """Read the snapshot again (``read``) until Redis answers, waiting longer after each
    failure (up to _RETRY_MOST_S); say that it is lost (once, however long it lasts) and
    when it is back.
    ``since``: when it last answered (the view's last read; a failure is only noticed once
    the client's own retries gave up, seconds later)."""
    import asyncio

    from .._client import raise_if_cancelled

    say(
        f"Redis unreachable since {_clock(since)}, retrying (last error: {lost})",
        {"error": type(lost).__name__, "message": str(lost), "unreachable_since": since,
         "retrying": True},
    )  # fmt: skip
    wait_s = _RETRY_FIRST_S
    while True:
        await asyncio.sleep(wait_s)
        raise_if_cancelled()  # (Ctrl-C ends the retries: see EventFeed.next)
        try:
            snap = await read()
        except ConnectionFailed as exc:
            if not exc.retryable:
                raise
            wait_s = min(wait_s * 2, _RETRY_MOST_S)
            continue
        finally:
            raise_if_cancelled()
        back = now_ms()
        say(
            f"reconnected to Redis at {_clock(back)} (unreachable since {_clock(since)}: "
            f"{(back - since) / 1000:.0f} s)",
            {"reconnected": True, "unreachable_since": since, "at": back},
        )
        return snap


def _clock(ms: int) -> str:
    """A time of today as the operator's clock shows it (HH:MM:SS, local time)."""
    return time.strftime("%H:%M:%S", time.localtime(ms / 1000))


def _sayer(app: App, live: Live | None) -> Callable[[str, dict[str, Any]], None]:
    """How watch says a lost and a regained Redis, never among the snapshots: above the live
    view in a terminal (as ``swarm run`` prints its lines), else on stderr, as a JSON line
    with --json (as the CLI's error lines are)."""

    def say(text: str, data: dict[str, Any]) -> None:
        if app.json:
            click.echo(dumps(data), err=True)
        elif live is not None:
            from rich.text import Text

            live.console.print(Text(printable(text)))
        else:
            click.echo(printable(text), err=True)

    return say


async def _follow_events(
    swarm: AsyncSwarm,
    snap: Snapshot,
    show: Callable[[Snapshot], None],
    read: Callable[[], Awaitable[Snapshot]],
    idle_s: float,
    *,
    idle: Callable[[Snapshot], None],
) -> None:
    """Re-read the snapshot (``read``) after each burst of events and ``show`` it; with no event for
    ``idle_s``, re-read it for ``idle`` (agents go stale with time, not with an event).
    Follows the events after the newest one ``snap`` reflects."""
    import asyncio

    from ..dashboard._feed import EventFeed

    async with EventFeed(swarm, since=snap.last_event_id) as feed:
        while True:
            event = await feed.next(idle_s)
            feed.drain()
            started = time.monotonic()
            (show if event is not None else idle)(await read())
            # A burst of events costs one read per _MIN_REDRAW_S, not one per event.
            await asyncio.sleep(max(0.0, _MIN_REDRAW_S - (time.monotonic() - started)))


def _liveness(snap: Snapshot) -> tuple[tuple[str, bool | None], ...]:
    """What an idle swarm can change: which agents are alive (a snapshot per change is
    printed, not one every few seconds with only the ages moved on)."""
    return tuple((a.id, a.alive) for a in snap.agents)


def _draw(app: App, snap: Snapshot, findings_n: int, all_: bool) -> Any:
    from ..dashboard._terminal import render

    width = app.out.width or shutil.get_terminal_size().columns
    if all_:  # every settled queue and pass, every stale agent, every context owner
        return render(snap, width=width, findings=findings_n, settled=None, stale=None, owners=None)
    return render(snap, width=width, findings=findings_n)


def _print(app: App, snap: Snapshot, findings_n: int, all_: bool) -> None:
    if app.json:
        click.echo(dumps_shown(snap.to_dict()))
    else:
        app.out.print(_draw(app, snap, findings_n, all_))
