"""One claimed task's work, from its prompt to what became of it: the agent's finding
reported (leasing the slot's next task), or the task failed so that its queue retries it, or
given back when the agent was interrupted or could not be run at all."""

from __future__ import annotations

from .._context_records import ContextInfo
from .._errors import (
    AlreadyCompleted,
    ConnectionFailed,
    LeaseLost,
    NotFound,
    SwarmError,
    ValidationError,
)
from .._finding_text import (
    finding_refused,
    finding_tags,
    found_as,
    new_mark,
    parse_finding,
    set_aside_note,
)
from .._models import COST_UNTOLD, Task, TaskStatus, answer_fields, failed_runs_of, stored_error
from .._printable import printable
from .._prompts import answered_targets, render_task_prompt, repeats_finding_example
from .._usage import Usage, usage_line
from .agent_runs import AgentRuns
from .child import ERROR_TAIL, ChildResult
from .claiming import Claiming
from .outcomes import (
    Ending,
    OutcomeStatus,
    TaskOutcome,
    dead_now,
    exited_first,
    lease_unknown,
    not_started,
    overtaken_note,
    swarm_refused,
    task_gone,
)
from .output import AgentOutput, cost_note, quote_tail, read_output
from .request_watch import (
    READ_FAILURE,
    READ_FINDING,
    READ_TASK,
    TAKE_COST,
    TAKE_FAILURE,
    TAKE_RELEASE,
)

__all__ = [
    "TaskWork",
    "cli_failure",
    "empty_answer",
    "failure_taken",
    "run_failure",
    "stdout_said",
]


def run_failure(result: ChildResult, output: AgentOutput) -> str | None:
    """Why an agent run that was killed or exited non-zero failed, with what its CLI said of
    it (its error, cut as ``read_output`` cuts it, or else what the run cost) and, when its
    stderr is empty, the end of what it printed as text (``stdout_said``); None when it
    exited 0."""
    if result.killed:
        why = f"{result.killed}: killed"
    elif result.returncode != 0:
        why = f"exit code {result.returncode}"
    else:
        return None
    if output.error is not None:  # (it names the cost, when the CLI said it)
        return f"{why}; {output.error}{stdout_said(result, output)}"
    return why + cost_note(output.usage) + stdout_said(result, output)


def cli_failure(result: ChildResult, output: AgentOutput) -> str | None:
    """Why a run that exited 0 failed by its CLI's own word (Claude's ``is_error``, Codex's
    ``turn.failed`` or ``error`` event, Gemini's ``error``): that error, the usage figures
    kept as unknown (``AgentOutput.warning``) and, as ``run_failure`` quotes it, the end of
    what it printed as text (``stdout_said``); None when the CLI did not say it failed.
    ``swarm run`` and ``swarm serve`` both say it with this."""
    if output.error is None:
        return None
    noted = f"; {output.warning}" if output.warning else ""
    return output.error + noted + stdout_said(result, output)


def stdout_said(result: ChildResult, output: AgentOutput) -> str:
    """The end of what a failed run printed as text on stdout (``"; stdout: ..."``), when its
    stderr holds no text: a CLI may say there why it failed (Claude Code's ``Not logged in ·
    Please run /login``), and an error naming only an exit code leaves the user guessing. ""
    when its stderr has text (``TaskWork._fail`` quotes that) or it printed none."""
    if result.stderr.tail_text(ERROR_TAIL).strip():
        return ""
    said = quote_tail(output.text)
    return f"; stdout: {said}" if said else ""


def empty_answer(output: AgentOutput) -> str:
    """Why an agent run that exited 0 with no answer failed: an empty result object (Claude's
    ``"result": ""``, as after ``error_max_turns``) says what the run cost, printed text
    nothing."""
    if not output.machine:
        return "the agent printed nothing (exit code 0)"
    how = f"{output.ended}, " if output.ended else ""
    return f"the CLI returned an empty result ({how}exit code 0){cost_note(output.usage)}"


def failure_taken(held: Task, task: Task, reason: str) -> bool:
    """Whether ``task``, read after a failure of ``held`` with ``reason`` was refused for a
    lease gone, shows that failure taken all the same (a try of it whose reply was lost, or
    that a paused server ran when it woke up: each try is a new request, so the next one is
    refused): the last failure the task records is of ``held``'s attempt
    (``failed_attempt``; another worker's, after ``held``'s lease ran out, would read as this
    one; a task recorded before it: no claim since ``held``'s), a failed run more than
    ``held`` had (``failed_runs_of``: a requeue meanwhile sets ``failures`` back), its error
    ``reason`` as the core stores it (``stored_error``). A failure of another attempt since
    reads as not taken: counted twice, never lost. The one rule of it, for the pool's
    failures (``TaskWork._fail``) and the pipeline's own agents' alike."""
    last = task.failed_attempt
    return (
        (last == held.attempts if last is not None else task.attempts == held.attempts)
        and failed_runs_of(task) > failed_runs_of(held)
        and task.last_error == stored_error(reason)
    )


class TaskWork(Claiming, AgentRuns):
    """What the pool does with one claimed task (``Server`` answers a question instead)."""

    def _work(self, task: Task, worker: str, started: float) -> TaskOutcome:
        context = self._context(task)
        mark = new_mark()
        prompt = render_task_prompt(
            task,
            settings=self.swarm.settings,
            context=context,
            summary_limit=self.options.summary_limit,
            finding_tags=finding_tags(mark),
            answered=answered_targets(self.swarm, task, self.options.queues),
        )
        lost: list[str] = []  # why the pool stopped the agent, if it did
        try:
            result = self._run_agent(task, worker, context, prompt, lost)
        except OSError as exc:  # the agent could not be started: this task's failure
            return self._fail(
                task,
                Ending(task.id, worker, started, None),
                not_started(exc, prompt, self.options.shell),
                "",
            )
        # Read whatever the run ended with: a CLI prints what the run cost even when it
        # fails, and every outcome carries it (the pool's summary adds it up); an output too
        # long to keep whole fails the run, its cost read from the end kept (``read_output``).
        output = read_output(result.stdout, command=self.options.command)
        late = exited_first(lost, result)  # (its run reported all the same)
        end = Ending(task.id, worker, started, result, output.usage, output.warnings, late)
        if result.killed == "interrupted":
            return self._interrupted(task, end, "interrupted: the task went back to its queue")
        if lost and result.killed:
            return end(OutcomeStatus.LOST, f"stopped the agent: {lost[-1]}")
        cannot_run = self._cannot_run(task, end, result)
        if cannot_run is not None:
            return cannot_run
        stderr_tail = result.stderr.tail_text(ERROR_TAIL).strip()
        failure = run_failure(result, output)
        if failure is not None:
            return self._fail(task, end, failure, stderr_tail, output.usage)
        try:
            return self._report(task, worker, context, mark, end, output, stderr_tail)
        except SwarmError as exc:  # lost, but paid for: the outcome keeps what the run cost
            return end(OutcomeStatus.LOST, swarm_refused(exc, task.id))

    def _cannot_run(self, task: Task, end: Ending, result: ChildResult) -> TaskOutcome | None:
        """When the shell could not run the agent command at all (exit code 127: not found;
        126: not executable), give the task back, not counted as a failure, and stop the
        pool: every task would fail the same way, in seconds (a typo in --exec once
        dead-lettered a whole queue). None when it could."""
        what = result.cannot_run
        if what is None:
            return None
        # (its last line: split on "\n" alone, as every quote of an agent's output is; of a
        # line a progress bar redrew, what follows its last "\r", as a terminal shows it)
        said = result.stderr.tail_text(ERROR_TAIL).strip().split("\n")[-1].rpartition("\r")[2]
        said = printable(said.strip()[:160])  # (its control characters shown, not obeyed)
        shell_said = f" ({said})" if said else ""
        code = f"exit code {result.returncode}, the shell's {what!r}{shell_said}"
        self._halt(
            f"the agent command could not be run: {code}. Install its program (or make it "
            f"executable, or add its folder to PATH), or fix the agent command "
            f"({self.options.exec_named}), then run again: its tasks went back to their queue, "
            "not counted as failures"
        )  # before the release: a refused release must stop the pool all the same
        self._release(task)
        return end(OutcomeStatus.RELEASED, f"{code}: back to its queue, not a failure")

    def _report(
        self,
        task: Task,
        worker: str,
        context: ContextInfo | None,
        mark: str,
        end: Ending,
        output: AgentOutput,
        stderr_tail: str,
    ) -> TaskOutcome:
        """Store the finding of an agent that exited 0. From here to the stored finding every
        read and write rides out an outage as the report does: the agent's work is done and
        must not be lost to a restart."""
        current = self._persist(lambda: self.swarm.get_task(task.id), task, READ_TASK)
        if self._reported_itself(task, worker, current):
            said = "the agent reported it itself" + self._self_reported_usage(output.usage)
            return end(OutcomeStatus.COMPLETED, said, current.finding_id)
        gave_back = self._gave_back_itself(task, current)
        if gave_back is not None:  # its own fail or release stands: its output is not a finding
            status, said = gave_back
            if status is OutcomeStatus.FAILED:
                return end(status, said + self._self_failed_usage(output.usage, task, current))
            return end(status, said + self._self_reported_usage(output.usage))
        noted = f"; {output.warning}" if output.warning else ""  # (the task's own line says it)
        failure = cli_failure(end.result, output) if end.result is not None else None
        if failure is not None:  # the CLI says the run failed: a failed attempt
            return self._fail(task, end, failure, stderr_tail, output.usage)
        aside: list[str] = []  # the fields of the record the agent's finding gave
        parsed = parse_finding(
            output.answer, summary_limit=self.options.summary_limit, mark=mark, set_aside=aside
        )
        if output.cut is not None and (parsed is None or parsed[1] == "text"):
            # Text whose middle was dropped: a finding found in the end kept (between the
            # run's tags, fenced, an object) is whole, the text itself is not (``cut``).
            return self._fail(task, end, output.cut + noted, stderr_tail, output.usage)
        if parsed is None:
            return self._fail(task, end, empty_answer(output) + noted, stderr_tail, output.usage)
        finding, how = parsed
        if (echoed := repeats_finding_example(finding)) is not None:  # (its prompt, printed)
            return self._fail(task, end, echoed + noted, stderr_tail, output.usage)
        finding.update(answer_fields(task))  # a question (peer assist): its answer
        finding_id = self.swarm.new_finding_id()  # the same on every retry: stored once
        context_version = context.version if context is not None else None
        model = self.options.model or output.model
        try:
            stored = self._report_leasing_next(
                task,
                worker,
                lambda more: self.swarm.report(
                    task.id, self._token(task), finding, worker=worker, model=model,
                    context_version=context_version, finding_id=finding_id, usage=output.usage,
                    **more,
                ),
            )  # fmt: skip
        except AlreadyCompleted as exc:
            return end(OutcomeStatus.LOST, f"completed elsewhere first: {exc}", exc.finding_id)
        except LeaseLost:
            # A report with a token is refused only for a token the task never issued; the
            # pool's came from its claim: the server lost that claim (``lease_unknown``).
            if self._token(task) is None:
                raise
            return end(OutcomeStatus.LOST, lease_unknown(task.id))
        except ValidationError as exc:
            return self._fail(task, end, finding_refused(exc), "", output.usage)
        aside_said = f"; {set_aside_note(aside)}" if aside else ""
        said = found_as(how) + noted + aside_said + overtaken_note(stored)
        return end(OutcomeStatus.COMPLETED, said, stored.id)

    def _reported_itself(self, task: Task, worker: str, current: Task) -> bool:
        """Whether ``current`` (``task`` read after its agent exited 0) was completed by this
        run's agent: the finding that completed it was reported under a lease of this slot's
        run (the attempt its claim took, or a newer lease handed to it: ``_lease``), or with
        no lease as the slot's worker. Another worker's finding (its late report, its lease
        long run out) is not this run's: its agent's output is then reported, and the core
        keeps it superseded (``AlreadyCompleted``), never dropped."""
        finding_id = current.finding_id
        if current.status is not TaskStatus.COMPLETED or not finding_id:
            return False
        try:
            finding = self._persist(lambda: self.swarm.get_finding(finding_id), task, READ_FINDING)
        except NotFound:  # (collected meanwhile: not known to be this run's)
            return False
        if finding.attempt is None:
            return finding.worker == worker
        return finding.attempt in (task.attempts, self._lease(task).attempts)

    def _gave_back_itself(self, task: Task, current: Task) -> tuple[OutcomeStatus, str] | None:
        """What this run's agent did when ``current`` (``task`` read after its agent exited 0,
        the read ``_reported_itself`` made) shows that it failed or released its own task
        (``swarm task fail`` or ``release`` with the run's token): the outcome and its
        words. Its task is then back in its queue (pending, delayed) or dead, still at this
        run's attempt (that of the claim, or of a newer lease handed to it: ``_lease``),
        by a failure of that attempt or by a release, not an abandon: a lease that ran out
        (an outage) is no act of the agent's, and its finding is reported all the same.
        None when it did neither: its output is the finding."""
        if current.status not in (TaskStatus.PENDING, TaskStatus.DELAYED, TaskStatus.DEAD):
            return None
        held = self._lease(task)
        attempts = (task.attempts, held.attempts)
        if current.attempts not in attempts:
            return None
        if current.failed_attempt in attempts and current.failures > held.failures:
            said = f"the agent failed its task itself: {printable(current.last_error or '')}"
            if current.status is TaskStatus.DEAD:
                return OutcomeStatus.FAILED, f"{said}; {dead_now(task.id)}"
            return OutcomeStatus.FAILED, f"{said}; its queue retries it"
        if current.status is not TaskStatus.DEAD and current.abandons == held.abandons:
            return OutcomeStatus.RELEASED, "the agent released its task itself: back to its queue"
        return None

    def _interrupted(self, task: Task, end: Ending, said: str) -> TaskOutcome:
        """Give back ``task``, whose agent the pool killed when it was stopped (``said``: the
        outcome's words then). A stop waits for no outage (``_outage.until_stopped``): a
        release Redis did not take in time is given up, and the task goes back to its queue
        when its lease runs out, which the outcome says."""
        try:
            self._release(task)
        except ConnectionFailed as exc:
            with self._lock:
                self._counts.unreleased += 1
            return end(
                OutcomeStatus.RELEASED,
                f"interrupted, its release not taken: {exc}; it goes back to its queue when "
                "its lease runs out",
            )
        return end(OutcomeStatus.RELEASED, said)

    def _release(self, task: Task) -> None:
        """Give ``task`` back to its queue (riding out an outage)."""
        self._persist(lambda: self.swarm.release(task.id, self._token(task)), task, TAKE_RELEASE)

    @staticmethod
    def _self_reported_usage(usage: Usage | None) -> str:
        """What the outcome's line says of the run of an agent that reported its task itself
        ("" when its CLI said nothing of its cost). Not stored: only the worker that wrote
        the finding may write it (workers may not rewrite findings, docs/security.md); the
        run's summary counts it, and an agent that must have its cost kept passes it with
        its report (``--usage``, MCP ``report_finding``'s ``usage``)."""
        if usage is None:
            return ""
        spent = usage_line(usage)  # (its cached tokens too, as every view says a usage)
        return f"; its run cost {spent}, counted in this run's total, not on its finding"

    def _self_failed_usage(self, usage: Usage | None, task: Task, current: Task) -> str:
        """What the outcome's line says of the run of an agent that failed its task itself
        (``current``, as the read after its exit shows it; ``""`` when its CLI said nothing
        of its cost): counted in the run's total, and in its task's ``failed_usage``: given
        by the agent's own fail (``swarm task fail --usage``), as its task's ``failed_cost``
        then says, else added now to that failure (``add_failed_usage``, under the lease whose
        attempt failed, once however often it is sent), under ``--model`` when its CLI names
        none, as ``_fail`` keeps it. The agent's failure stands as it was: no second one."""
        if usage is None:
            return ""
        spent = usage_line(usage)
        held = self._lease(task)
        failed = held if current.failed_attempt == held.attempts else task
        if current.failed_attempt == failed.attempts and current.failed_cost != COST_UNTOLD:
            return f"; its run cost {spent}, counted in this run's total"
        cost = usage.of_model(self.options.model)
        try:
            self._persist(
                lambda: self.swarm.add_failed_usage(task.id, failed.token, cost), task, TAKE_COST
            )
        except SwarmError as exc:
            return (
                f"; its run cost {spent}, counted in this run's total, not in its task's "
                f"failed cost (failed_usage): {exc}"
            )
        return (
            f"; its run cost {spent}, counted in this run's total and in its task's failed cost "
            "(failed_usage)"
        )

    def _fail(
        self,
        task: Task,
        end: Ending,
        reason: str,
        stderr_tail: str,
        usage: Usage | None = None,
    ) -> TaskOutcome:
        """Fail the task, its error ``reason`` and the end of the agent's stderr (``quote_tail``:
        the same text on the outcome's line as in the task's last error); ``usage``, what the
        failed run cost when its CLI said, is kept on the task (its ``failed_usage``), under
        the model the pool was told its agent uses (``--model``) when its CLI names none
        (Codex): a task records no model, so its ``failed_usage`` must, or the cost per model
        says "unknown". A run the pool did not kill counts towards ``_failed_alike``.

        A failure refused for a lease gone after a try whose reply was lost is read back: the
        task showing it taken (``failure_taken``), the outcome is FAILED, its cost recorded
        in the task's ``failed_usage`` (not LOST: a pipeline would count it twice)."""
        if usage is not None:
            usage = usage.of_model(self.options.model)
        said = quote_tail(stderr_tail)
        error = reason + (f"; stderr: {said}" if said else "")
        unanswered: list[Task] = []  # the lease of the first try whose reply was lost

        def fail() -> Task:
            held = self._lease(task)  # (a lease adopted meanwhile: its token, see _token)
            try:
                return self.swarm.fail(task.id, held.token, error, retry=True, usage=usage)
            except ConnectionFailed as exc:
                if exc.sent and not unanswered:
                    unanswered.append(held)
                raise

        failed: Task | None
        try:
            failed = self._persist(fail, task, TAKE_FAILURE)
        except LeaseLost as exc:
            # Each try is a request of its own (its own op id): one whose reply was lost may
            # have been taken, and the next one is refused for the lease that took with it.
            failed = self._failure_taken(unanswered[0], error) if unanswered else None
            if failed is None:
                return end(OutcomeStatus.LOST, f"{reason}; and the failure was refused: {exc}")
        except NotFound:
            return end(OutcomeStatus.LOST, f"{reason}; and {task_gone(task.id)}")
        except SwarmError as exc:
            return end(OutcomeStatus.LOST, f"{reason}; and the failure was refused: {exc}")
        if end.result is None or not end.result.killed:  # (a timeout is the task's size)
            self._failed_alike(task.id, error)
        if failed.status is TaskStatus.DEAD:  # its last attempt: the queue retries it no more
            return end(OutcomeStatus.FAILED, f"{error}; {dead_now(task.id)}")
        return end(OutcomeStatus.FAILED, error)

    def _failure_taken(self, held: Task, error: str) -> Task | None:
        """The task of lease ``held``, read again (riding out an outage), when it shows its
        failure with ``error`` taken (``failure_taken``); None when it does not, or cannot
        be read."""
        try:
            task = self._persist(lambda: self.swarm.get_task(held.id), held, READ_FAILURE)
        except SwarmError:
            return None
        return task if failure_taken(held, task, error) else None
