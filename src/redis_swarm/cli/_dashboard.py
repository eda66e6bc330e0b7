"""``swarm dashboard`` (the live web page) and ``swarm watch`` (the same view in a terminal)."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from .._codec import dumps
from .._errors import ConfigError
from .._net import http_url, listen
from ._app import App, json_option, main, pass_app
from ._common import Seconds, listen_options

if TYPE_CHECKING:
    from .._client import AsyncSwarm
    from ..dashboard import Snapshot

# swarm watch: redraw at most this often when events pour in, and by default at least this
# often when nothing happens (agents go stale with time, not with an event: --interval).
_MIN_REDRAW_S = 0.25
_IDLE_REDRAW_S = 5.0
# The longest --interval: agents turn stale after a minute without a heartbeat, so a view
# re-read less than hourly would show them alive long after.
_MOST_IDLE_REDRAW_S = 3600.0


@main.command(short_help="Serve the live, read-only web dashboard (Ctrl-C stops).")
@listen_options(
    port=8765,
    token_env="SWARM_DASHBOARD_TOKEN",
    token_help="Require this token (Authorization: Bearer, or ?token=); mandatory off loopback",
)
@pass_app
def dashboard(app: App, host: str, port: int, token: str | None) -> None:
    """Serve the live, read-only web dashboard of the swarm (Ctrl-C to stop)."""
    try:
        from .._stopping import Stopping
        from .._web import require_token_off_loopback, serve
        from ..dashboard.app import create_app
    except ImportError as exc:  # the web part is an extra
        raise ConfigError(
            f"the dashboard needs {exc.name}: pip install 'redis-swarm[dashboard]'"
        ) from None
    from .._client import AsyncSwarm  # (here: redis-py, which --help does without)

    require_token_off_loopback(
        host,
        token,
        what="the dashboard shows everything agents report",
        env="SWARM_DASHBOARD_TOKEN",
    )
    # Reach Redis before serving, as `swarm a2a` and `swarm mcp` do: a wrong URL, password
    # or CA, or a user that may not read the swarm, then fails here, at once, instead of
    # after the address was announced, with every request answered 503.
    app.swarm.ping()
    app.swarm.status()
    # Listening before the URL is announced: --port 0 names the port picked, and the port
    # stays this server's.
    with listen(host, port) as listening:
        swarm = AsyncSwarm(app.settings)
        web = create_app(swarm, token=token, close_swarm=True, stopping=Stopping())
        url = http_url(host, listening.port) + (f"?token={token}" if token else "")
        app.err.print(f"dashboard of swarm [bold]{app.swarm_name}[/] at {url}  (Ctrl-C to stop)")
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
              help="List every settled queue and pass and every stale agent, not only the "
              "last few.")  # fmt: skip
@json_option
@pass_app
def watch(app: App, once: bool, findings_n: int, idle_s: float, all_: bool) -> None:
    """Show agents, queues, passes, findings and contexts live in the terminal.

    Redraws on every change in the event stream. Lists every queue and pass with open work
    and the last few settled ones, every live agent and the few stale ones seen last; --all
    lists them all. With --json, prints one snapshot per change as a JSON line (with --once:
    one snapshot; it always holds them all). Into a pipe or a file, prints a plain snapshot
    at the start and after each change, as --once draws it.
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

    async with AsyncSwarm(app.settings) as swarm:
        snap = await snapshot(swarm, findings=findings_n)
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

            await _follow(swarm, snap, print_next, findings_n, idle_s, idle=print_if_stale)
            return
        with Live(
            _draw(app, snap, findings_n, all_), console=app.out, auto_refresh=False, screen=False
        ) as live:

            def show(s: Snapshot) -> None:
                live.update(_draw(app, s, findings_n, all_), refresh=True)

            await _follow(swarm, snap, show, findings_n, idle_s, idle=show)


async def _follow(
    swarm: AsyncSwarm,
    snap: Snapshot,
    show: Callable[[Snapshot], None],
    findings_n: int,
    idle_s: float,
    *,
    idle: Callable[[Snapshot], None],
) -> None:
    """Re-read the snapshot after each burst of events and ``show`` it; with no event for
    ``idle_s``, re-read it for ``idle`` (agents go stale with time, not with an event)."""
    import asyncio

    from ..dashboard import snapshot
    from ..dashboard._feed import EventFeed

    async with EventFeed(swarm, since=snap.last_event_id) as feed:
        while True:
            event = await feed.next(idle_s)
            feed.drain()
            started = time.monotonic()
            (show if event is not None else idle)(await snapshot(swarm, findings=findings_n))
            # A burst of events costs one read per _MIN_REDRAW_S, not one per event.
            await asyncio.sleep(max(0.0, _MIN_REDRAW_S - (time.monotonic() - started)))


def _liveness(snap: Snapshot) -> tuple[tuple[str, bool | None], ...]:
    """What an idle swarm can change: which agents are alive (a snapshot per change is
    printed, not one every few seconds with only the ages moved on)."""
    return tuple((a.id, a.alive) for a in snap.agents)


def _draw(app: App, snap: Snapshot, findings_n: int, all_: bool) -> Any:
    from ..dashboard._terminal import render

    width = app.out.width or shutil.get_terminal_size().columns
    if all_:  # every settled queue and pass, every stale agent
        return render(snap, width=width, findings=findings_n, settled=None, stale=None)
    return render(snap, width=width, findings=findings_n)


def _print(app: App, snap: Snapshot, findings_n: int, all_: bool) -> None:
    if app.json:
        click.echo(dumps(snap.to_dict()))
    else:
        app.out.print(_draw(app, snap, findings_n, all_))
