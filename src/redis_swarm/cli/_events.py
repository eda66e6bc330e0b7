"""``swarm events``: the swarm's event stream (every state change), listed or followed."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import click

from .._models import EventType, dumps, iso
from ._app import App, json_option, main, pass_app

TYPES = [t.value for t in EventType]


def _line(event: Any) -> str:
    fields = " ".join(f"{k}={v}" for k, v in event.fields.items())
    kind = getattr(event.type, "value", event.type)
    return f"{iso(event.at)}  {event.id}  {kind:<20} {fields}".rstrip()


@main.command()
@click.option("--since", help="Only events after this event id.")
@click.option(
    "--type", "types", multiple=True, type=click.Choice(TYPES), help="Only this type; repeatable."
)
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events as they happen.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(0),
              help="With --follow: stop after this many seconds.")  # fmt: skip
@click.option("--count", type=click.IntRange(1), help="With --follow: stop after this many events.")
@json_option
@pass_app
def events(
    app: App,
    since: str | None,
    types: tuple[str, ...],
    limit: int,
    follow: bool,
    timeout_s: float | None,
    count: int | None,
) -> None:
    """List the swarm's events, or --follow them (JSON lines with --json)."""
    wanted = [EventType(t) for t in types] or None
    if not follow:
        items = app.swarm.events(since=since, types=wanted, limit=limit)

        def human() -> None:
            for event in items:
                click.echo(_line(event))

        app.emit({"items": items}, human)
        return
    _follow(app, since, wanted, timeout_s, count)


def _follow(
    app: App, since: str | None, types: list[EventType] | None, timeout_s: float | None,
    count: int | None,
) -> None:  # fmt: skip
    """Stream events until --timeout, --count or Ctrl-C.

    The blocking iterator runs in a thread, so that a timeout ends the command even when
    nothing happens.
    """
    inbox: queue.Queue[Any] = queue.Queue(maxsize=10_000)
    stop = threading.Event()
    block = min(5.0, max(timeout_s or 5.0, 0.1))

    def pump() -> None:
        try:
            for event in app.swarm.follow_events(since=since, types=types, block_s=block):
                inbox.put(event)
                if stop.is_set():
                    return
        except BaseException as exc:  # handed to the main thread, which reports it
            inbox.put(exc)

    threading.Thread(target=pump, daemon=True, name="swarm-events").start()
    deadline = time.monotonic() + timeout_s if timeout_s is not None else None
    seen = 0
    try:
        while count is None or seen < count:
            wait = 0.5 if deadline is None else deadline - time.monotonic()
            if wait <= 0:
                break
            try:
                item = inbox.get(timeout=min(wait, 0.5))
            except queue.Empty:
                continue
            if isinstance(item, BaseException):
                raise item
            click.echo(dumps(item) if app.json else _line(item))
            seen += 1
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
