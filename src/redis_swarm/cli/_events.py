"""``swarm events``: the swarm's event stream (every state change), listed or followed."""

from __future__ import annotations

from typing import Any

import click

from .._codec import counted, dumps_shown, iso
from .._errors import ConnectionFailed, ValidationError
from .._models import EventsTrimmed, EventType, type_filter
from .._printable import printable
from .._validate import MAX_EVENTS
from ._app import App, json_option, main, pass_app
from ._common import Instant, Seconds

TYPES = [t.value for t in EventType]


def _line(event: Any) -> str:
    fields = " ".join(f"{k}={v}" for k, v in event.fields.items())
    kind = getattr(event.type, "value", event.type)
    # One line per event, whatever its fields hold (any writer of the stream may add one: a
    # line break in a field would print what reads as another event).
    line = printable(f"{iso(event.at)}  {event.id}  {kind:<20} {fields}".rstrip())
    return line.replace("\n", "\\n")


def _types(types: tuple[str, ...]) -> list[str] | None:
    """The --type values, checked now by the core's rule (a mistyped type is a usage error,
    not one found after connecting)."""
    try:
        type_filter(types or None)
    except ValidationError as exc:
        raise click.BadParameter(str(exc), param_hint="--type") from None
    return list(types) or None


@main.command(short_help="List or --follow the event stream.")
@click.option(
    "--since",
    type=Instant(event_ids=True),
    help="After this event id (1700000000000-0), or from this time on: "
    f"{Instant.FORMS}. Default: the oldest kept (listing), only new events (--follow).",
)
@click.option(
    "--type",
    "types",
    multiple=True,
    metavar="TYPE",
    shell_complete=lambda _c, _p, inc: [t for t in TYPES if t.startswith(inc)],
    help="Only this type (task.completed), or area (task, task.*); repeatable.",
)
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_EVENTS),
    default=100,
    show_default=True,
    help="The first N events (after --since when given); past them, stderr says how to read on.",
)
@click.option(
    "--last",
    type=click.IntRange(1, MAX_EVENTS),
    metavar="N",
    help="The newest N events instead (after --since when given), still oldest first; "
    "with --follow, shown before the new ones (as tail -n N -f).",
)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events as they happen.")
@click.option(
    "--timeout",
    "timeout_s",
    type=Seconds(),
    help="With --follow: stop after this many seconds.",
)
@click.option("--count", type=click.IntRange(1), help="With --follow: stop after this many events.")
@json_option
@pass_app
def events(
    app: App,
    since: str | int | None,
    types: tuple[str, ...],
    limit: int,
    last: int | None,
    follow: bool,
    timeout_s: float | None,
    count: int | None,
) -> None:
    """List the swarm's events, oldest first, or --follow them (JSON lines with --json)."""
    wanted = _types(types)
    source = click.get_current_context().get_parameter_source("limit")
    if last is not None and source is click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("--limit takes the first events and --last the newest: pick one")
    _need_follow(follow, timeout_s, count)
    if since is not None:  # a read from --since starts at the oldest kept: say what is gone
        trimmed = _trimmed(app, since)
        if trimmed is not None:
            click.echo(trimmed.note(), err=True)
    if last is not None:
        items = app.swarm.events(since=since, types=wanted, limit=last, newest=True)
    elif not follow:
        items = app.swarm.events(since=since, types=wanted, limit=limit)
    else:
        items = []
    if not follow:

        def human() -> None:
            for event in items:
                click.echo(_line(event))
            if not items:
                click.echo(printable(_none_listed(app, wanted, since)), err=True)
            elif last is None and len(items) == limit:
                _more_hint(app, items[-1].id, wanted, limit)

        app.emit({"items": items}, human)
        return
    for event in items:  # (--last with --follow: what just happened, then what happens)
        click.echo(dumps_shown(event) if app.json else _line(event))
    start = items[-1].id if items else since
    # "only new events" made an id now, so that an outage before the first one names it too
    _follow(app, app.swarm.last_event_id() if start is None else start, wanted, timeout_s, count)


def _need_follow(follow: bool, timeout_s: float | None, count: int | None) -> None:
    """--timeout and --count end a follow: without --follow they would be ignored."""
    given = [
        name for name, value in (("--timeout", timeout_s), ("--count", count)) if value is not None
    ]
    if given and not follow:
        verb, pronoun = ("need", "they end") if len(given) > 1 else ("needs", "it ends")
        raise click.UsageError(
            f"{' and '.join(given)} {verb} --follow ({pronoun} a follow; a listing ends by "
            "itself, at --limit or --last)"
        )


def _trimmed(app: App, since: str | int) -> EventsTrimmed | None:
    """What ``since`` missed of the capped stream; the first call given --since, so it is
    where the core refuses one (in the future: nothing to list, a silent follow) as a usage
    error."""
    try:
        return app.swarm.events_trimmed(since)
    except ValidationError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None


def _none_listed(app: App, types: list[str] | None, since: str | int | None) -> str:
    """What a listing that found no event says on stderr (rather than nothing at all, after
    a scan of the whole log): none of ``types`` (or none at all) after ``since``, and how far
    back the capped log goes (its oldest event kept)."""
    what = f"no {' or '.join(types)} event" if types else "no event"
    after = ""
    if since is not None:
        after = f" after {since}" if isinstance(since, str) else f" from {iso(since)} on"
    oldest = app.swarm.events(limit=1)  # (the oldest kept: one entry, whatever its type)
    if not oldest:
        return f"{what}{after}: the event log is empty (this swarm has recorded nothing yet)"
    kept = app.swarm.limits.events_maxlen
    return (
        f"{what}{after} is in the event log: it goes back to {iso(oldest[0].at)} (event "
        f"{oldest[0].id}), keeping the newest {kept:,} events; --follow waits for new ones"
    )


def _more_hint(app: App, last_id: str, types: list[str] | None, limit: int) -> None:
    """A listing cut at --limit says how to read on, when there is more to read (one event
    more is looked up: a listing that ends exactly at the newest event says nothing)."""
    if not app.swarm.events(since=last_id, types=types, limit=1):
        return
    click.echo(
        f"(the first {counted(limit, 'event')}; more follow: --since {last_id} lists the next "
        "ones, --last N the newest N)",
        err=True,
    )


def _follow(
    app: App,
    since: str | int | None,
    types: list[str] | None,
    timeout_s: float | None,
    count: int | None,
) -> None:
    """Print events as they come until --timeout (however quiet the stream), --count or
    Ctrl-C."""
    seen = 0
    printed: str | None = None
    try:
        for event in app.swarm.follow_events(since, types, timeout_s=timeout_s):
            click.echo(dumps_shown(event) if app.json else _line(event))
            printed = event.id
            seen += 1
            if count is not None and seen >= count:
                return
    except KeyboardInterrupt:
        return
    except ConnectionFailed as exc:  # an outage ends the follow: say where to pick it up
        raise _resumable(exc, printed, since, types) from exc


def _resumable(
    exc: ConnectionFailed, printed: str | None, since: str | int | None, types: list[str] | None
) -> ConnectionFailed:
    """``exc``, its message followed by the command that resumes the follow where it ended:
    after the last event printed, or from where it started when it printed none."""
    resume = printed if printed is not None else since
    if resume is None:
        return exc
    done = f"the last event printed was {printed}" if printed else "no event was printed"
    command = " ".join(
        ["swarm events --follow --since", str(resume), *(f"--type {t}" for t in types or ())]
    )
    return type(exc)(f"{exc}; {done}: once the server is back, '{command}' resumes there")
