"""``swarm status`` and ``swarm agents ...``: who is in the swarm, and how the work stands."""

from __future__ import annotations

import contextlib
from typing import Any

import click

from .._codec import counted, dumps
from .._errors import NotFound
from .._models import (
    BEAT_EVERY_S,
    STALE_AFTER_S,
    Agent,
    EventType,
    PassCosts,
    TaskStatus,
    unknown_pass,
)
from .._printable import (
    OWNERS_SHOWN,
    SETTLED_SHOWN,
    bounded_owners,
    bounded_passes,
    bounded_queues,
    not_shown,
    printable,
    short_version,
)
from .._usage import Money, unpriced_note
from .._validate import MAX_CAPACITY_TOKENS, MAX_EVENTS
from ._app import App, json_option, main, pass_app
from ._common import (
    ALL_PAGE,
    Seconds,
    StreamedTable,
    add_row,
    agent_option_default,
    ago,
    complete_agents,
    kv_table,
    make_table,
    parse_json,
    print_table,
    short,
    when,
)

STATUSES = tuple(s.value for s in TaskStatus)
# What a retired pass's cost line says when no record of a run is left (its runs were
# recorded: retiring it removed them, as the note under it says).
RETIRED_RUNS = "no record of an agent run left: the pass was retired"
# What status says with no queue to list: none was posted to, or every task was retired
# (``swarm retire``), which leaves no queue either (the core's status() lists none at zero).
NO_TASKS = "no tasks: none posted yet, or every one retired"
# What there is not to do with a pass retired whole (``unknown_pass``'s ``doing``): count it.
_GONE = "nothing of them left to count"
# The most of an agent's model or specialization a row of `swarm agents` shows.
_LABEL_CHARS = 40
_STALE_AFTER_HELP = "Seconds without a heartbeat before an agent counts as stale."
# The columns of `swarm agents`, a row an agent (``_agent_row``).
_AGENT_COLUMNS = (
    "id", "role", "alive", "last seen", "registered", "task", "specialization", "model", "parent",
)  # fmt: skip


@main.command(short_help="The swarm at a glance: queues, passes, agents, contexts.")
@click.option(
    "--pass", "pass_name", help="Also count the tasks of this pass, and what its runs cost."
)
@click.option("--stale-after", type=Seconds(), default=STALE_AFTER_S, show_default=True,
              help=_STALE_AFTER_HELP)  # fmt: skip
@click.option("--all", "all_", is_flag=True,
              help="List every settled queue and pass and every context owner, not only "
              "the last few.")  # fmt: skip
@json_option
@pass_app
def status(app: App, pass_name: str | None, stale_after: float, all_: bool) -> None:
    """The swarm at a glance: tasks per queue and status, passes, agents, contexts.

    Lists every queue and pass with open work (pending, delayed, claimed) and the last few
    settled ones, in natural order (day-2 before day-10), and the context owners that
    published last; --all lists them all. --json always holds them all.
    """
    swarm = app.swarm
    st = swarm.status(stale_after_s=stale_after)
    report: dict[str, Any] = {**st.to_dict(), "url": swarm.settings.url}
    # "roles": a deprecated alias of by_role, what this command printed before (docs/cli.md).
    report["agents"]["roles"] = st.agents.by_role
    costs: PassCosts | None = None
    unknown: str | None = None  # what the core says of a pass no task was ever posted to
    if pass_name is not None:
        report["pass"] = {"name": pass_name, "counts": swarm.pass_stats(pass_name)}
        try:
            costs = swarm.pass_costs(pass_name)
        except NotFound as missing:  # (a misspelt pass reads as an empty one): noted below
            unknown = str(missing)
        # (what the total never covers and what it leaves out, as swarm_status says them)
        report["pass"]["costs"] = None if costs is None else costs.shown()

    def human() -> None:
        # A year of daily runs is a thousand settled passes: drawn whole, they took seconds
        # and buried today's (bounded; the "(all)" row still counts every queue).
        most = None if all_ else SETTLED_SHOWN
        queue_rows, hidden_queues = bounded_queues(st.queues, most)
        pass_rows, hidden_passes = bounded_passes(st.passes, most)
        # A shard an owner: thousands of shards were thousands of rows (as MCP's swarm_status).
        owner_rows, hidden_owners = bounded_owners(st.contexts, None if all_ else OWNERS_SHOWN)
        click.echo(f"swarm {st.swarm} on {swarm.settings.url}")
        table = make_table("queue", *STATUSES, title="tasks")
        for queue, counts in queue_rows:
            add_row(table, queue, *(counts.get(s, 0) for s in STATUSES))
        if len(st.queues) > 1:
            add_row(table, "(all)", *(st.totals[s] for s in STATUSES))
        if st.queues:
            print_table(app, table)
        else:
            click.echo(NO_TASKS)
        if pass_rows:
            ptable = make_table("pass", *STATUSES, "settled", title="passes")
            for progress in pass_rows:
                add_row(
                    ptable, short(progress.name, 40), *(progress.counts[s] for s in STATUSES),
                    f"{progress.settled}/{progress.total}",
                )  # fmt: skip
            print_table(app, ptable)
        if pass_name is not None:
            counts = report["pass"]["counts"]
            # (JSON quotes a name as the notes do; printable: it may hold control characters)
            named = printable(dumps(pass_name))
            click.echo(f"pass {named}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
            # A note, not an error: the status was shown (swarm task wait refuses it).
            if unknown is not None:
                click.echo(printable(unknown), err=True)
            elif costs is not None and costs.retired is not None and not any(counts.values()):
                # (its zeros are no misspelling: it was retired, and when is said)
                click.echo(
                    unknown_pass(pass_name, [], retired=costs.retired, doing=_GONE), err=True
                )
            if costs is not None:
                click.echo("\n".join(_pass_cost_lines(costs)))
        by_role = printable(", ".join(f"{n} {r}" for r, n in sorted(st.agents.by_role.items())))
        click.echo(
            f"agents: {st.agents.alive} alive ({by_role or 'none'}), {st.agents.stale} stale"
        )
        if owner_rows:
            ctable = make_table(
                "owner", "version", "tokens", "source", "published", title="contexts"
            )
            for ci in owner_rows:
                version = short_version(ci.version)
                tokens = f"{ci.tokens_est:,}"  # (as `context list` says it)
                add_row(ctable, ci.owner, version, tokens, ci.source, ago(ci.created_at))
            print_table(app, ctable)
        # (under every list: what each left out, and the --all that lists it)
        hidden = not_shown(hidden_queues, hidden_passes, "swarm status", owners=hidden_owners)
        if hidden:
            click.echo(hidden)

    app.emit(report, human)


def _pass_cost_lines(costs: PassCosts) -> list[str]:
    """What every agent run behind a pass cost (``Swarm.pass_costs``), as ``swarm status
    --pass`` shows it: in all, with how many of its runs reported no cost and what it
    covers, then per model, the failed runs' part of it, a pipeline's planning and
    synthesis parts, its runs no other record holds and what was kept of its retired
    bookkeeping (every cost as every view shows it: ``Money``), then what they never count
    and what these sums leave out."""
    total = costs.total
    if costs.runs == 0:
        # (a retired pass's runs were recorded: their records went with it, as its note says)
        none = "no agent run recorded yet" if costs.retired is None else RETIRED_RUNS
        lines = [f"pass cost: {none} ({costs.COVERS})"]
    else:
        shown = {model: printable(model) for model in costs.by_model}
        parts = [figures["cost_usd"] for figures in costs.by_model.values()]
        money = Money()
        note = unpriced_note(costs.runs, costs.runs_without_cost)
        lines = [f"pass cost: {money.line(total, parts)}{note} ({costs.COVERS})"]
        width = max(map(len, shown.values()), default=0)
        for model, figures in costs.by_model.items():
            # (a model's line summing runs that reported no cost says so, as the total does)
            of_model = costs.model_runs.get(model, {})
            said = unpriced_note(of_model.get("runs", 0), of_model.get("runs_without_cost", 0))
            lines.append(f"  {shown[model].ljust(width)}  {money.line(figures)}{said}")
        if any(value is not None for value in costs.failed.values()):
            lines.append(f"  of it, failed and refused runs: {money.line(costs.failed)}")
        # (what a demanding reader asks next: how much of it was planning and synthesis)
        for part, figures, runs in (
            ("planning", costs.planning, costs.planning_runs),
            ("synthesis", costs.synthesis, costs.synthesis_runs),
            ("runs no other record holds", costs.unrecorded, costs.unrecorded_runs),
            (  # (of planning and synthesis: their records went, their cost was kept)
                "kept as its pipeline's bookkeeping was retired (swarm pipeline retire)",
                costs.retired_bookkeeping, costs.retired_bookkeeping_runs,
            ),
        ):  # fmt: skip
            if runs:
                lines.append(f"  of it, {part}: {money.line(figures)} ({counted(runs, 'run')})")
    lines.append(f"  not counted: {costs.NOT_COUNTED}")
    return lines + [f"  note: {caveat}" for caveat in costs.caveats()]


@main.group(invoke_without_command=True, short_help="List, register and heartbeat agents.")
@click.option("--role", help="Only agents of this role.")
@click.option("--alive", "only_alive", is_flag=True, help="Only live agents (not with --stale).")
@click.option("--stale", "only_stale", is_flag=True, help="Only stale agents (not with --alive).")
@click.option("--stale-after", type=Seconds(), default=STALE_AFTER_S, show_default=True,
              help=_STALE_AFTER_HELP)  # fmt: skip
@json_option
@click.pass_context
def agents(
    ctx: click.Context, role: str | None, only_alive: bool, only_stale: bool, stale_after: float
) -> None:
    """List the agents (or register, heartbeat, deregister, sweep them)."""
    if only_alive and only_stale:
        raise click.UsageError("--alive and --stale are alternatives: give one, or neither")
    if ctx.invoked_subcommand is not None:
        return
    alive = True if only_alive else False if only_stale else None
    app = ctx.ensure_object(App)
    items = app.swarm.agents(alive=alive, role=role, stale_after_s=stale_after)

    def human() -> None:
        if not items and role is not None:  # (roles are any name: a typo matched nothing)
            click.echo(printable(_no_agent_of(app, role, alive)), err=True)
            return
        if not items:
            state = "live " if alive else "stale " if alive is False else ""
            click.echo(f"no {state}agent is registered", err=True)
            return
        # Printed page by page as the rows are made (StreamedTable): 2,000 agents drawn as
        # one rich table took 3 s before its first line.
        table = StreamedTable(app, *_AGENT_COLUMNS)
        for start in range(0, len(items), ALL_PAGE):
            table.page([_agent_row(a) for a in items[start : start + ALL_PAGE]])

    app.emit({"items": items}, human)


def _agent_row(a: Agent) -> tuple[Any, ...]:
    """An agent's cells under ``_AGENT_COLUMNS``."""
    return (
        a.id,
        a.role,
        "yes" if a.alive else "stale",
        when(a.last_seen),
        when(a.registered_at),
        a.current_task,
        # free text up to 200 characters: cut, so that the other columns keep room
        a.specialization and short(a.specialization, _LABEL_CHARS),
        a.model and short(a.model, _LABEL_CHARS),
        a.parent,
    )


def _no_agent_of(app: App, role: str, alive: bool | None) -> str:
    """Why ``agents --role ROLE`` listed nothing: the roles the agents registered now have
    (a role is any name, defined by whoever registers: none is known beforehand)."""
    roles = sorted({a.role for a in app.swarm.agents()})
    if role in roles and alive is not None:  # (some, left out by --alive or --stale)
        return f"no {'live' if alive else 'stale'} agent has role {role!r}"
    known = f"the agents registered have: {', '.join(roles)}" if roles else "no agent is registered"
    return f"no agent has role {role!r} ({known})"


# The fields of an Agent that are times (epoch ms): shown as every time the CLI shows.
_TIMES = ("registered_at", "last_seen")


def _render_agent(app: App, a: Any, headline: str) -> None:
    click.echo(printable(headline))
    pairs = [
        (k, when(v) if k in _TIMES else v)
        for k, v in a.to_dict().items()
        if v not in (None, {}, "")
    ]
    print_table(app, kv_table(pairs))


@agents.command()
@click.argument("name", required=False)
@click.option("--role", required=True, help="coordinator, shard, worker, or any name.")
@click.option("--model", help="The model the agent runs on (shown by swarm agents).")
@click.option("--specialization", help="What the agent is for (shown by swarm agents).")
@click.option("--capacity-tokens", type=click.IntRange(1, MAX_CAPACITY_TOKENS))
@click.option(
    "--parent", shell_complete=complete_agents, help="The registered agent that started it."
)
@click.option("--metadata", help="A JSON object: inline, @FILE, or - (stdin).")
@json_option
@pass_app
def register(
    app: App,
    name: str | None,
    role: str,
    model: str | None,
    specialization: str | None,
    capacity_tokens: int | None,
    parent: str | None,
    metadata: str | None,
) -> None:
    """Join the swarm as NAME (default: a generated id) with a role."""
    meta = None
    if metadata is not None:
        thing = "the agent's metadata as a JSON object"
        meta = parse_json(metadata, app, what="--metadata", thing=thing)
        if not isinstance(meta, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--metadata")
    a = app.swarm.register(
        role,
        name=name,
        model=model,
        specialization=specialization,
        capacity_tokens=capacity_tokens,
        parent=parent,
        metadata=meta,
    )
    app.emit(a, lambda: _render_agent(app, a, f"registered {a.id} as {a.role}"))


@agents.command()
@click.argument("agent_id", required=False, shell_complete=complete_agents)
@click.option(
    "--task", "current_task", help='The id of the task you are working on ("" clears it).'
)
@json_option
@pass_app
def heartbeat(app: App, agent_id: str | None, current_task: str | None) -> None:
    """Say AGENT_ID (default: SWARM_AGENT) is alive."""
    agent_id = agent_id or agent_option_default()
    if not agent_id:
        raise click.UsageError("name the agent (or set SWARM_AGENT)")
    a = app.swarm.heartbeat(agent_id, current_task=current_task)
    app.emit(a, lambda: click.echo(f"{a.id} alive"))


@agents.command()
@click.argument("agent_id", shell_complete=complete_agents)
@json_option
@pass_app
def deregister(app: App, agent_id: str) -> None:
    """Remove AGENT_ID from the swarm (its tasks and findings stay), with its inbox: the
    unread messages dropped with it are counted."""
    # (one with none unread is removed by the first call, which drops nothing)
    unread = 0 if app.swarm.deregister_if_read(agent_id) else _deregister_counting(app, agent_id)

    def human() -> None:
        if unread is None:
            click.echo(f"deregistered {agent_id} (its unread messages dropped with it)")
        else:
            click.echo(f"deregistered {_dropped((agent_id, unread))}")

    # (unread: the direct messages dropped with its inbox; null: not known, as the event
    # that counts them was trimmed before it was read)
    app.emit({"deregistered": agent_id, "unread": unread}, human)


def _deregister_counting(app: App, agent_id: str) -> int | None:
    """Deregister ``agent_id``, whose inbox holds unread messages: how many were dropped, as
    its ``agent.left`` event counts them (the core's own count, messages sent meanwhile
    included); None when that event cannot be found."""
    start = app.swarm.last_event_id()
    app.swarm.deregister(agent_id)
    left = app.swarm.events(since=start, types=[EventType.AGENT_LEFT], limit=MAX_EVENTS)
    for event in left:
        if event.fields.get("agent") == agent_id:
            with contextlib.suppress(KeyError, ValueError):
                return int(event.fields["unread"])
    return None


@agents.command()
@click.option("--stale-after", type=Seconds(), default=300.0, show_default=True,
              help="Seconds without a heartbeat after which an agent is removed.")  # fmt: skip
@json_option
@pass_app
def sweep(app: App, stale_after: float) -> None:
    """Remove agents silent for longer than --stale-after seconds (one holding a lease not
    yet expired is kept), with their unread messages."""
    if stale_after < BEAT_EVERY_S:  # below it, a sweep removes agents that are running
        raise click.BadParameter(
            f"{stale_after:g} s is shorter than the {BEAT_EVERY_S:g} s a live agent may be "
            f"silent between two signs of life: give at least {BEAT_EVERY_S:g} (the default, "
            "300, leaves only agents gone for minutes)",
            param_hint="--stale-after",
        )
    removed = app.swarm.sweep(stale_after)

    def human() -> None:
        if not removed:
            click.echo(
                f"removed none: no agent silent for more than {stale_after:g} s (one "
                "holding a lease not yet expired is kept)"
            )
        else:
            click.echo(
                f"removed {len(removed)}: {short(', '.join(map(_dropped, removed.items())), 200)}"
            )

    # (unread: the direct messages dropped with each inbox, by agent)
    app.emit({"items": list(removed), "unread": removed}, human)


def _dropped(swept: tuple[str, int]) -> str:
    """A swept agent, with the unread messages dropped with its inbox."""
    agent, unread = swept
    if not unread:
        return agent
    return f"{agent} ({unread} unread {'message' if unread == 1 else 'messages'} dropped)"
