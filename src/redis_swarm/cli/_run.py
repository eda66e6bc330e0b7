"""``swarm run``: the ephemeral worker pool (one agent process per claimed task)."""

from __future__ import annotations

import queue
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from .._codec import counted
from .._errors import NotFound, SwarmError, TaskDeadLettered
from .._hints import said_of
from .._models import OPEN_STATUSES
from .._printable import printable
from .._usage import LABEL_CHARS, unpriced_note, usage_line
from .._validate import (
    DEFAULT_POLL_S,
    DEFAULT_TIMEOUT_S,
    MAX_NAME,
    MAX_POLL_S,
    begins_like_option,
    check_label,
    check_name,
    check_queues,
    option_like,
)
from ._app import App, json_option, main, pass_app
from ._common import Seconds, complete_queues, never_posted, nothing_to_claim, signals
from ._tasks import LEASE_SECONDS

if TYPE_CHECKING:
    # The runner and rich are imported when the pool runs: `swarm --help` imports this module.
    from rich.live import Live

    from .._runner import Runner, TaskOutcome


@main.command(short_help="Run an agent command once per task: a worker pool.")
@click.option(
    "--queue",
    "queues",
    multiple=True,
    required=True,
    shell_complete=complete_queues,
    help="A queue to claim from; repeatable (claims take the best task of all).",
)
@click.option(
    "--exec",
    "command",
    required=True,
    metavar="CMD",
    help="The agent command (a shell command line), run once per task with the prompt on "
    "stdin, or in {prompt} / {prompt_file} (written bare, not inside quotes).",
)
@click.option("--concurrency", "-c", type=click.IntRange(1, 512), default=1, show_default=True)
@click.option("--max-tasks", type=click.IntRange(1), help="Stop after claiming this many.")
@click.option(
    "--idle-exit",
    "idle_exit_s",
    type=Seconds(),
    help="Stop after this many seconds with nothing to claim (default: run until Ctrl-C).",
)
@click.option(
    "--until-done",
    is_flag=True,
    help="Stop when every task of the queues is settled (none pending, delayed or claimed).",
)
@click.option(
    "--lease",
    "lease_s",
    type=LEASE_SECONDS,
    help="Lease seconds asked at claim and renewed while the agent runs (default: the task's).",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=Seconds(above_zero=True),
    help="Kill an agent running longer than this many seconds (default: "
    f"{DEFAULT_TIMEOUT_S:g}, whatever the "
    "task's lease_s, which is renewed while the agent runs).",
)
@click.option("--worker", help="Worker name prefix (default: run-HOST-PID); slot N is PREFIX-N.")
@click.option("--model", help="The model the agent uses, recorded on its findings.")
@click.option(
    "--summary-limit",
    type=click.IntRange(100, 2000),
    default=2000,
    show_default=True,
    help="Longest summary taken from an answer that is not JSON.",
)
@click.option(
    "--grace",
    "grace_s",
    type=Seconds(),
    default=5.0,
    show_default=True,
    help="Seconds between SIGTERM and SIGKILL when an agent is stopped.",
)
@click.option(
    "--poll",
    "poll_s",
    type=Seconds(above_zero=True, most=MAX_POLL_S),
    default=DEFAULT_POLL_S,
    show_default=True,
    help="The longest an idle slot's claim waits before it looks again: for Ctrl-C, "
    "--idle-exit and, with --until-done, a task settled by another process.",
)
@json_option
@pass_app
def run(
    app: App,
    queues: tuple[str, ...],
    command: str,
    concurrency: int,
    max_tasks: int | None,
    idle_exit_s: float | None,
    until_done: bool,
    lease_s: float | None,
    timeout_s: float | None,
    worker: str | None,
    model: str | None,
    summary_limit: int,
    grace_s: float,
    poll_s: float,
) -> None:
    """Run an agent command once per claimed task, CONCURRENCY at a time.

    Each process gets the task's prompt (the task, its data, how to read the shard's context,
    the finding format) and SWARM_URL, SWARM_NAME, SWARM_TASK_ID, SWARM_TASK_TOKEN in its
    environment. The lease is renewed while it runs; at --timeout, or if the task is
    cancelled, it is killed with everything it started. Its finding (the block between the
    tags its prompt names, else the last JSON block of its output, else its text) is
    reported; a non-zero exit fails the task, which is retried. A command whose program the
    shell would not find is refused before any claim; exit code 127 or 126 (the shell could
    not run it) gives the task back, not counted as a failure, and stops the run.

    Ctrl-C once: claim nothing more, let running agents finish. Twice: kill them and release
    their tasks. Exit 3 when nothing was claimed; exit 1 when a signal (Ctrl-C, SIGTERM,
    SIGHUP) stopped the run with work left: tasks it released, or, with --until-done, tasks
    of the queues still open.
    """
    from .._runner import OutcomeStatus, Runner, RunOptions

    _check_run_names(queues, worker, model, slots=concurrency)
    refuse_option_like_slots(app, worker, slots=concurrency)
    options = RunOptions(
        queues=tuple(queues),
        command=command,
        concurrency=concurrency,
        max_tasks=max_tasks,
        idle_exit_s=idle_exit_s,
        until_done=until_done,
        lease_s=lease_s,
        timeout_s=DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s,
        worker=worker,
        model=model,
        summary_limit=summary_limit,
        grace_s=grace_s,
        poll_s=poll_s,
    )
    lines: queue.Queue[TaskOutcome | str | TaskDeadLettered] = queue.Queue()
    runner = Runner(
        app.swarm, options, on_outcome=lines.put, on_progress=lines.put, on_warning=lines.put
    )
    if not until_done and not app.json:
        unknown = never_posted(app, queues)
        if unknown is not None:  # (a task may yet be posted to it: the pool waits for one)
            click.echo(printable(f"note: {unknown}; waiting all the same"), err=True)
    started = time.monotonic()
    stopped_by = drive_pool(app, runner, lines)
    counts = finish_pool(app, runner, stopped_by, time.monotonic() - started)
    if counts["claimed"] == 0:
        nothing_to_claim(app, queues)  # (exit 3; a queue never posted to named)
    failed = [o for o in runner.outcomes if o.status is OutcomeStatus.FAILED]
    if failed and counts["completed"] == 0:
        # A script's `swarm run && ...` must not go on as if the work were done. (An outcome
        # is a run: a task failed three times is one task, three runs.)
        tasks, runs = len({o.task_id for o in failed}), len(failed)
        said = counted(tasks, "task") + (f", {counted(runs, 'run')}" if runs != tasks else "")
        raise SwarmError(
            f"every task this run's agents worked on failed ({said}); the last: "
            f"{failed[-1].detail}. Fix the agent command (--exec) or its --timeout: the "
            "tasks are retried by the next run (those out of attempts are dead: swarm task "
            "requeue)"
        )


def finish_pool(
    app: App, runner: Runner, stopped_by: str | None, duration_s: float
) -> dict[str, int]:
    """The end of ``swarm run`` and ``swarm serve`` alike, one rule for both: a crash raised,
    the last line (``pool_summary``), then the run's error, if any: what stopped it on its
    own (``fatal``), else what a signal (``stopped_by``) left undone (``_work_left``: exit
    1, said as interrupted, never ``done``). The outcomes counted."""
    if runner.crash is not None:
        raise runner.crash
    left = _work_left(app, runner, stopped_by)
    counts = pool_summary(app, runner, duration_s, interrupted=left)
    if runner.fatal:
        raise SwarmError(runner.fatal)
    if left is not None:  # `swarm run ... && next` must not go on as if the work were done
        raise SwarmError(left)
    gone = runner.gone
    if gone and runner.options.until_done:  # (settled, the queues say: not by this work)
        from .._runner import GONE_WHY

        raise SwarmError(
            f"{len(gone)} task(s) this run worked on are gone from the server ({GONE_WHY}), "
            f"the first {gone[0]}: their runs' work was not stored. Post it again if it is "
            "still wanted (swarm status shows what the queues hold)"
        )
    return counts


def _work_left(app: App, runner: Runner, stopped_by: str | None) -> str | None:
    """What a run a signal stopped (``stopped_by``: its name; None: no signal did) left
    undone, said as its error: the tasks it stopped and released, and, with --until-done,
    the tasks of its queues still open (a drain finishes the running ones, and may leave
    pending ones). None when it left nothing: a run without --until-done is stopped so when
    idle, as a service is."""
    if stopped_by is None:
        return None
    released = runner.counts()["released"]
    still_open: int | None = 0
    if runner.options.until_done:
        try:  # (given up within seconds in an outage: a SIGTERM's grace is short)
            stats = runner.unless_stopped(app.swarm.queue_stats)
        except SwarmError:
            still_open = None  # not known: not said to be done either
        else:
            still_open = sum(
                stats.get(q, {}).get(status, 0)
                for q in runner.options.queues
                for status in OPEN_STATUSES
            )
    if not released and still_open == 0:
        return None
    parts = []
    unreleased = runner.unreleased  # (Redis out at the stop: not waited for)
    if released > unreleased:
        given = released - unreleased
        parts.append(f"{given} running task(s) stopped and given back to their queue")
    if unreleased:
        parts.append(
            f"{unreleased} running task(s) stopped whose release Redis did not take: back in "
            "their queue when their lease runs out"
        )
    queues = ", ".join(runner.options.queues)
    if still_open is None:
        parts.append(f"the open tasks of {queues} could not be counted")
    elif still_open:
        parts.append(f"{still_open} task(s) of {queues} still open (pending, delayed or claimed)")
    return (
        f"interrupted by {stopped_by} with work left: {'; '.join(parts)}; run it again to "
        "finish them (swarm status shows them)"
    )


def _check_run_names(
    queues: tuple[str, ...], worker: str | None, model: str | None, *, slots: int
) -> None:
    """Refuse, before a pool claims anything, the names its claims and findings would be
    refused with: the queues, the worker prefix (slot N claims as PREFIX-N, ``slots`` of
    them) and the model its findings record."""
    check_queues(queues, what="swarm run")
    if worker is not None:
        check_name("worker", worker, max_len=MAX_NAME - len(f"-{slots}"))
    if model is not None:
        check_label("model", model, max_chars=LABEL_CHARS)


def refuse_option_like_slots(app: App, worker: str | None, *, slots: int) -> None:
    """Refuse, before a pool claims anything, a worker prefix that ``begins_like_option``
    unless each of its ``slots`` names (``slot_name``: PREFIX-N) is an agent registered
    already: the core refuses such a name to a new agent at its claim, which would stop the
    pool at its first (exit 1), and lets one registered under it before the rule claim on.
    Said in the core's words (``option_like``), as a bad option (exit 2). ``swarm run`` and
    ``swarm serve`` both check their ``--worker`` with this."""
    if worker is None or not begins_like_option(worker):
        return
    from .._runner import slot_name

    for index in range(1, slots + 1):
        name = slot_name(worker, index)
        try:
            app.swarm.get_agent(name)
        except NotFound:
            raise option_like("worker", name) from None


def pool_imports() -> None:
    """What ``drive_pool`` imports, imported now: for a command to call before it says it is
    ready (``swarm serve``'s "serving ..."). A Ctrl-C that lands inside an import is lost
    (Python ignores an exception raised in importlib's module-lock callback, and the pool
    would go on): none may be left for after the line a user or a script stops it on."""
    from rich.live import Live  # noqa: F401
    from rich.text import Text  # noqa: F401


def drive_pool(
    app: App,
    runner: Runner,
    lines: queue.Queue[TaskOutcome | str] | queue.Queue[TaskOutcome | str | TaskDeadLettered],
    label: str = "swarm run",
) -> str | None:
    """Run the pool, printing each outcome and progress line (a report waiting for Redis)
    as it comes and, on a terminal, a live line. The name of the first signal that stopped
    it (SIGINT: Ctrl-C, SIGTERM, SIGHUP), None when none did."""
    from rich.text import Text

    live_console = app.err if app.err.is_terminal and not app.json else None

    def status_line() -> Text:
        c = runner.counts()
        state = " · draining (Ctrl-C again to stop now)" if runner.draining else ""
        return Text(
            f"{label} {','.join(runner.options.queues)}: running {c['running']} · "
            f"done {c['completed']} · failed {c['failed']} · released {c['released']} · "
            f"lost {c['lost']}{state}"
        )

    stopped_by: list[str] = []
    with _signals(app, runner, stopped_by), _live(live_console, status_line) as live:

        def tick() -> None:
            while True:
                try:
                    outcome = lines.get_nowait()
                except queue.Empty:
                    break
                if isinstance(outcome, str):  # progress: on stderr, --json or not
                    _print_progress(outcome, live)
                elif isinstance(outcome, TaskDeadLettered):  # (as swarm task claim says it)
                    _print_on_stderr(printable(outcome.line()), live)
                elif not app.json:
                    _print_outcome(app, outcome, live)
            if live is not None:
                live.update(status_line())

        runner.run(tick)
    return stopped_by[0] if stopped_by else None


def pool_summary(
    app: App, runner: Runner, duration_s: float, *, interrupted: str | None = None
) -> dict[str, int]:
    """The last line of ``swarm run`` and ``swarm serve`` (their JSON with ``--json``): the
    outcomes counted, and what the agent runs cost (``usage``: the figures every total
    sums, ``summed_figures``, with the runs and how many reported no cost). ``interrupted``:
    what a signal left undone (``_work_left``), said next as the error."""
    counts = runner.counts()
    usage = runner.spent()
    dead, gone = runner.dead, runner.gone
    summary: dict[str, Any] = {
        **{k: v for k, v in counts.items() if k != "running"},
        "dead": dead,
        "gone": gone,
        "duration_s": round(duration_s, 3),
        "usage": usage,
        "tasks": [o.to_dict() for o in runner.outcomes],
        "errors": runner.errors,
    }
    if runner.fatal:
        summary["fatal"] = runner.fatal
    if interrupted is not None:
        summary["interrupted"] = interrupted

    def human() -> None:
        from .._runner import REQUEUE_DEAD

        ran, unpriced = usage["runs"], usage["runs_without_cost"]
        cost = usage_line(usage) + unpriced_note(ran, unpriced, when_none=True)
        # (no run: not "cost unknown", nothing ran to cost anything)
        runs = f"agent runs: {cost}" if ran else "no agent ran"
        # The tasks this run's failures dead-lettered (not retried: a requeue runs them), and
        # those lost as gone from the server.
        hint = said_of(REQUEUE_DEAD, dead[0]) if len(dead) == 1 else REQUEUE_DEAD
        died = f", {len(dead)} of their tasks dead now {hint}" if dead else ""
        vanished = f" ({len(gone)} gone from the server)" if gone else ""
        # A run stopped by a fatal error or a signal with work left (printed next) does not
        # read as one that ended well.
        ended = "done"
        if runner.fatal:
            ended = "stopped (the error below)"
        elif interrupted is not None:
            ended = "interrupted (the error below)"
        click.echo(
            f"{ended}: claimed {counts['claimed']}, completed {counts['completed']}, "
            f"failed {counts['failed']}{died}, released {counts['released']}, "
            f"lost {counts['lost']}{vanished} in {duration_s:.1f}s; {runs}"
        )

    app.emit(summary, human)
    return counts


def _print_outcome(app: App, o: TaskOutcome, live: Live | None) -> None:
    from rich.text import Text

    from .._runner import OutcomeStatus

    marks = {
        OutcomeStatus.COMPLETED: "✓",
        OutcomeStatus.FAILED: "✗",
        OutcomeStatus.RELEASED: "↩",
        OutcomeStatus.LOST: "!",
    }
    finding = f" → {o.finding_id}" if o.finding_id else ""
    line = printable(
        f"{marks[o.status]} {o.status.value:<9} {o.task_id} "
        f"({o.worker}, {o.duration_s:.1f}s){finding}: {o.detail}"
    )
    if live is not None:
        live.console.print(Text(line))
    else:
        click.echo(line)


def _print_progress(line: str, live: Live | None) -> None:
    _print_on_stderr(printable(f"… {line}"), live)


def _print_on_stderr(text: str, live: Live | None) -> None:
    from rich.text import Text

    if live is not None:
        live.console.print(Text(text))
    else:
        click.echo(text, err=True)


@contextmanager
def _live(console: Any, render: Any) -> Iterator[Live | None]:
    if console is None:
        yield None
        return
    from rich.live import Live

    with Live(render(), console=console, refresh_per_second=8, transient=True) as live:
        yield live


@contextmanager
def _signals(app: App, runner: Runner, stopped_by: list[str]) -> Iterator[None]:
    """Ctrl-C: drain, then abort; SIGTERM (and SIGHUP): abort. The name of each signal that
    came is added to ``stopped_by``. Restored afterwards."""

    def on_sigint(signum: int, _frame: Any) -> None:
        stopped_by.append(signal.Signals(signum).name)
        if runner.draining:
            runner.abort()
            click.echo("stopping: killing the running agents and releasing their tasks", err=True)
        else:
            runner.drain()
            running = runner.counts()["running"]
            if running:
                said = f"finishing {running} running task(s); Ctrl-C again to stop them now"
            else:  # (nothing to finish or to stop: the pool ends, claiming nothing more)
                said = "stopping: no task is running, and none more will be claimed"
            click.echo(said, err=True)

    def on_sigterm(signum: int, _frame: Any) -> None:
        stopped_by.append(signal.Signals(signum).name)
        runner.abort()

    with signals(on_sigint, on_sigterm):
        yield
