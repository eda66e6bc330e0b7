"""``swarm findings`` and ``swarm synth ...``: what workers reported, and what shards made of it."""

from __future__ import annotations

import shlex
from typing import Any

import click

from .._codec import counted, iso
from .._errors import NotFound
from .._hints import LIST_PASSES
from .._printable import printable
from .._usage import usage_line
from .._validate import check_label
from ._app import App, json_option, main, pass_app
from ._common import (
    Instant,
    add_row,
    agent_option_default,
    agent_required,
    all_pages,
    complete_agents,
    complete_queues,
    kv_table,
    listing,
    make_table,
    nothing_matched,
    paging_options,
    print_table,
    read_text,
    short,
    stream_all,
    when,
)


def render_finding(app: App, f: Any) -> None:
    pairs: list[tuple[str, Any]] = [
        ("id", f.id),
        ("task", f.task_id),
        ("queue", f.queue),
        ("pass", f.pass_name),
        ("shard", f.shard),
        ("worker", f.worker),
        ("model", f.model),
        ("cost", None if f.usage is None else usage_line(f.usage)),
        ("context version", f.context_version),
        ("confidence", f.confidence),
        ("created", when(f.created_at)),
    ]
    if f.superseded:
        pairs.append(("superseded", "yes: reported after the task was completed"))
    pairs.append(("summary", f.summary))
    if f.details:
        pairs.append(("details", f.details))
    if f.sources:
        pairs.append(("sources", list(f.sources)))
    if f.extra:
        pairs.append(("extra", f.extra))
    print_table(app, kv_table(pairs))


@main.command(short_help="List findings, or show one.")
@click.argument("finding_id", required=False)
@click.option("--shard", shell_complete=complete_agents, help="Findings of this shard's tasks.")
@click.option("--queue", shell_complete=complete_queues, help="Findings of this queue's tasks.")
@click.option("--pass", "pass_name", help="Findings of this pass's tasks.")
@click.option("--since", type=Instant(), help=f"Only findings from this time on: {Instant.FORMS}.")
@paging_options
@json_option
@pass_app
def findings(
    app: App,
    finding_id: str | None,
    shard: str | None,
    queue: str | None,
    pass_name: str | None,
    since: int | None,
    limit: int,
    cursor: str | None,
    all_: bool,
) -> None:
    """List findings (oldest first), or show FINDING_ID."""
    if finding_id is not None:
        f = app.swarm.get_finding(finding_id)
        app.emit(f, lambda: render_finding(app, f))
        return

    def fetch(cur: str | None, size: int) -> Any:
        return app.swarm.findings(
            shard=shard, queue=queue, pass_name=pass_name, since=since, cursor=cur, limit=size
        )

    if all_ and not app.json:  # every page printed as it comes: 20,000 rows start at once
        if not stream_all(app, fetch, _COLUMNS, _row):
            unknown = _unknown_pass(app, pass_name) if pass_name else None
            filters = [("--shard", shard), ("--queue", queue), ("--pass", pass_name)]
            filters.append(("--since", None if since is None else iso(since)))
            said = (
                f"note: {unknown}" if unknown is not None else nothing_matched("finding", filters)
            )
            click.echo(printable(said), err=True)
        return
    found = listing(fetch, limit, cursor, all_)
    unknown = _unknown_pass(app, pass_name) if pass_name and not found.items else None

    def human() -> None:
        table = make_table(*_COLUMNS)
        for f in found.items:
            add_row(table, *_row(f))
        print_table(app, table)
        found.footer()
        if unknown is not None:  # a note, as swarm status --pass says it: the listing stands
            click.echo(printable(f"note: {unknown}"), err=True)

    listed = found.to_json()
    app.emit({**listed, "notes": [unknown]} if unknown is not None else listed, human)


_COLUMNS = ("id", "task", "worker", "model", "cost", "conf", "summary")


def _row(f: Any) -> tuple[Any, ...]:
    """The cells of finding ``f`` under ``_COLUMNS``."""
    mark = " (superseded)" if f.superseded else ""
    cost = None if f.usage is None else usage_line(f.usage)
    return (f.id, f.task_id, f.worker, f.model, cost, f.confidence, short(f.summary, 80) + mark)


def _unknown_pass(app: App, pass_name: str) -> str | None:
    """Why pass ``pass_name`` has no finding when no task was ever posted to it (misspelt)
    or it was retired, in the core's words (``findings`` refuses such a pass when asked to),
    naming the passes there are; None when it has tasks (their findings are yet to come, or
    filtered out)."""
    try:
        app.swarm.findings(pass_name=pass_name, limit=1, refuse_unknown_pass=True)
    except NotFound as exc:
        return str(exc)
    return None


@main.group()
def synth() -> None:
    """Syntheses: what a shard made of a pass's findings."""


@synth.command("create")
@click.option(
    "--shard",
    default=agent_option_default,
    callback=agent_required("the shard whose pass it synthesises"),
    shell_complete=complete_agents,
    help="The shard whose pass it synthesises (default: SWARM_AGENT).",
)
@click.option("--pass", "pass_name", required=True, help="The pass it synthesises.")
@click.option("--text", "text", required=True, help="The synthesis: text, @file or - (stdin).")
@click.option("--finding", "finding_ids", multiple=True, help="A finding it cites; repeatable.")
@click.option(
    "--all-findings", is_flag=True, help="Cite every finding of the pass (of this shard)."
)
@click.option(
    "--across-passes",
    is_flag=True,
    help="It spans passes (a final report of several): it may cite other passes' findings.",
)
@click.option(
    "--cites-none",
    is_flag=True,
    help="It rests on no finding (a pass that found nothing): stored citing none.",
)
@json_option
@pass_app
def synth_create(
    app: App,
    shard: str,
    pass_name: str,
    text: str,
    finding_ids: tuple[str, ...],
    all_findings: bool,
    across_passes: bool,
    cites_none: bool,
) -> None:
    """Store a synthesis of a pass, citing the findings it rests on."""
    if not finding_ids and not all_findings and not cites_none:
        raise click.UsageError(
            "cite the findings it rests on: --finding ID (repeatable) or --all-findings "
            "(or --cites-none, for a pass that found nothing)"
        )
    sources = list(finding_ids)
    if all_findings:
        found = [
            f.id
            for f in all_pages(
                lambda cur: app.swarm.findings(
                    shard=shard, pass_name=pass_name, cursor=cur, limit=500
                ),
                None,
            )
            if not f.superseded
        ]
        if not found and not cites_none:
            # (a name no pass is posted under since the rules: said so, not "no finding";
            # with --cites-none the core says whether a pass was posted under it before)
            check_label("pass name", pass_name, new=True)
        if not found and not cites_none:
            # A synthesis of nothing is almost always a mistyped pass or shard.
            raise NotFound(
                f"pass {pass_name!r} has no finding for shard {shard!r} (superseded ones "
                "aside), so --all-findings would cite nothing and nothing was stored: check "
                f"the names (the passes: {LIST_PASSES}; swarm findings --pass "
                f"{shlex.quote(pass_name)} --json lists the pass's findings with their "
                "shards), or cite findings with --finding ID (--cites-none: a pass that "
                "found nothing)"
            )
        sources += [fid for fid in found if fid not in sources]
    body = read_text(text, app, what="--text", thing="the synthesis")
    # (--cites-none with --all-findings: cite them all, or none when there are none)
    s = app.swarm.synthesize(
        shard,
        pass_name,
        body,
        sources,
        across_passes=across_passes,
        cites_none=cites_none and not sources,
    )
    cited = counted(len(s.sources), "finding")
    app.emit(s, lambda: click.echo(f"stored {s.id} citing {cited}"))


@synth.command("list")
@click.option("--shard", shell_complete=complete_agents, help="Syntheses by this shard.")
@click.option("--pass", "pass_name", help="Syntheses of this pass.")
@paging_options
@json_option
@pass_app
def synth_list(
    app: App, shard: str | None, pass_name: str | None, limit: int, cursor: str | None, all_: bool
) -> None:
    """List syntheses, oldest first."""

    def fetch(cur: str | None, size: int) -> Any:
        return app.swarm.syntheses(shard=shard, pass_name=pass_name, cursor=cur, limit=size)

    if all_ and not app.json:  # every page printed as it comes, as findings --all
        if not stream_all(app, fetch, _SYNTH_COLUMNS, _synth_row):
            filters = [("--shard", shard), ("--pass", pass_name)]
            click.echo(printable(nothing_matched("synthesis", filters)), err=True)
        return
    found = listing(fetch, limit, cursor, all_)

    def human() -> None:
        table = make_table(*_SYNTH_COLUMNS)
        for s in found.items:
            add_row(table, *_synth_row(s))
        print_table(app, table)
        found.footer()

    app.emit(found.to_json(), human)


_SYNTH_COLUMNS = ("id", "shard", "pass", "sources", "text")


def _synth_row(s: Any) -> tuple[Any, ...]:
    """The cells of synthesis ``s`` under ``_SYNTH_COLUMNS``."""
    return (s.id, s.shard, short(s.pass_name, 30), len(s.sources), short(s.text, 70))


@synth.command("show")
@click.argument("synthesis_id")
@json_option
@pass_app
def synth_show(app: App, synthesis_id: str) -> None:
    """Show one synthesis in full."""
    s = app.swarm.get_synthesis(synthesis_id)

    def human() -> None:
        print_table(
            app,
            kv_table(
                [
                    ("id", s.id),
                    ("shard", s.shard),
                    ("pass", s.pass_name),
                    ("model", s.model),
                    ("created", when(s.created_at)),
                    ("cost", None if s.usage is None else usage_line(s.usage)),
                    ("sources", list(s.sources)),
                ]
            ),
        )
        click.echo()
        click.echo(printable(s.text))

    app.emit(s, human)


@synth.command("request")
@click.argument("shard", shell_complete=complete_agents)
@click.option("--pass", "pass_name", required=True, help="The pass to synthesise.")
@click.option("--instructions", required=True, help="What you want: text, @file or -.")
@click.option("--from", "sender", default=agent_option_default, help="Default: SWARM_AGENT.")
@json_option
@pass_app
def synth_request(
    app: App, shard: str, pass_name: str, instructions: str, sender: str | None
) -> None:
    """Ask SHARD for a synthesis of a pass (a message in its inbox)."""
    m = app.swarm.request_synthesis(
        shard,
        pass_name,
        read_text(instructions, app, what="--instructions", thing="the instructions"),
        sender=sender,
    )
    app.emit(m, lambda: click.echo(f"asked {shard} for a synthesis of {pass_name!r} ({m.id})"))
