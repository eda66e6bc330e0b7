"""The answering loop behind ``swarm serve OWNER``: the pool of ``swarm run``, claiming from
the owner's ask queue, giving the agent a question prompt, and reporting its whole output
as the answer.

With ``session``, each slot keeps one agent conversation across questions: the command's
``{session}`` is filled with the session id the previous answer reported (Claude Code's
``--output-format json`` has ``session_id``; ``claude -p --resume {session}``), so the
context read in the first question stays in the conversation (and its prompt cache). With no
session known, ``{session}`` and the option before it are left out (a new conversation
starts); a run that fails with a session is run again at once in a new one. A new context
version also starts a new conversation. Each slot records its conversation on its agent
(role ``answerer``, metadata ``session``), so a restarted server resumes it: the record the
slot joined with at the server's start, revised (one ``agent.joined`` per start, not one per
conversation).
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._context_records import ContextInfo
from .._errors import (
    AlreadyCompleted,
    NotFound,
    SwarmError,
    ValidationError,
)
from .._keys import ask_queue, askable
from .._models import Agent, Task
from .._prompts import render_question_prompt
from .._usage import LABEL_CHARS
from .._validate import DEFAULT_POLL_S, DEFAULT_TIMEOUT_S, check_name
from .child import ERROR_TAIL
from .options import RunOptions
from .outcomes import (
    Ending,
    OutcomeStatus,
    TaskOutcome,
    exited_first,
    not_started,
    overtaken_note,
)
from .output import AgentOutput, read_output
from .pool import Runner
from .request_watch import READ_ASKERS_TASK, READ_CONTEXT, READ_SESSION
from .task_work import cli_failure, empty_answer, run_failure

if TYPE_CHECKING:
    from .._client import Swarm

__all__ = ["SESSION", "ServeOptions", "Server", "session_command"]

SESSION = "{session}"
SESSION_ENV = "SWARM_SESSION"
ANSWERER = "answerer"  # the role of a slot's agent record
SESSION_META = "session"  # the agent metadata key of a slot's conversation (for a restart)
# The option or subcommand that takes the session (Claude's ``--resume {session}``, also
# ``--resume={session}``; Codex's ``resume {session}``), or the placeholder alone: what is
# left out when no session is known.
_SESSION_WORDS = re.compile(r"(?:\s+(?:-{1,2}[A-Za-z][\w-]*|resume)(?:\s+|=))?\{session\}")
_SESSION_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{LABEL_CHARS}}}")


def session_command(command: str, session: str | None) -> tuple[str, dict[str, str]]:
    """``command`` with ``{session}`` filled (as ``"$SWARM_SESSION"``, the id in the
    environment: it never becomes shell code), or, without a session, left out with the
    option before it."""
    if session is None:
        return _SESSION_WORDS.sub("", command), {}
    return command.replace(SESSION, f'"${SESSION_ENV}"'), {SESSION_ENV: session}


@dataclass(frozen=True)
class ServeOptions:
    """How ``swarm serve`` works; see docs/ask.md."""

    owner: str
    command: str
    concurrency: int = 1
    session: bool = False
    # The lease claimed and renewed (None: each question's own, which its asker chose to come
    # back well within its wait, a third of it); renewed while the agent runs, so a server
    # that dies gives its questions back that soon.
    lease_s: float | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S  # the most one answer may take
    inline_max_tokens: int = 20_000  # a context this small is put in the prompt itself
    worker: str | None = None
    model: str | None = None
    poll_s: float = DEFAULT_POLL_S


@dataclass(frozen=True)
class _Session:
    id: str
    version: str | None  # the context version the conversation read


class Server(Runner):
    """Answers the questions of one owner's ask queue until drained or aborted."""

    def __init__(
        self,
        swarm: Swarm,
        options: ServeOptions,
        *,
        on_outcome: Callable[[TaskOutcome], None] | None = None,
        on_progress: Callable[[str], None] | None = None,
    ) -> None:
        owner = askable(check_name("owner", options.owner), "an owner asked and served")
        if options.session and SESSION not in options.command:
            raise ValidationError(
                "--session needs {session} in the command, where the agent takes the session "
                "to resume: e.g. claude -p --output-format json --resume {session}"
            )
        run = RunOptions(
            queues=(ask_queue(owner),),
            command=options.command,
            concurrency=options.concurrency,
            lease_s=options.lease_s,
            timeout_s=options.timeout_s,
            worker=options.worker or f"serve-{owner}",
            model=options.model,
            poll_s=options.poll_s,
            placeholders=(SESSION,) if options.session else (),
        )
        super().__init__(swarm, run, on_outcome=on_outcome, on_progress=on_progress)
        self.serve = options
        self._sessions: dict[str, _Session] = {}  # slot (worker name) -> its conversation
        self._looked_up: set[str] = set()  # slots whose recorded session was read
        self._session_lock = threading.Lock()

    def session_of(self, worker: str) -> str | None:
        """The session id a slot resumes next (None: a new conversation)."""
        with self._session_lock:
            found = self._sessions.get(worker)
            return found.id if found is not None else None

    def _session(self, task: Task, worker: str, context: ContextInfo | None) -> _Session | None:
        """The conversation a slot resumes: its own, else the one a previous server of the
        same slot recorded (a restart keeps the conversation); None when the context changed
        since it started."""
        if not self.serve.session:
            return None
        with self._session_lock:
            found = self._sessions.get(worker)
            known = worker in self._sessions or worker in self._looked_up
            self._looked_up.add(worker)
        if found is None and not known:
            found = self._recorded(task, worker)
        version = context.version if context is not None else None
        if found is None or found.version != version:  # none, or a new context: start over
            self._forget(worker)
            return None
        with self._session_lock:
            self._sessions[worker] = found
        return found

    def _recorded(self, task: Task, worker: str) -> _Session | None:
        """The session a slot's agent record holds (``_remember`` writes it)."""
        try:
            agent = self._persist(lambda: self.swarm.get_agent(worker), task, READ_SESSION)
        except SwarmError:
            return None
        meta = agent.metadata or {}
        sid, version = meta.get(SESSION_META), meta.get("context_version")
        if not isinstance(sid, str) or not _SESSION_ID.fullmatch(sid):
            return None
        return _Session(sid, version if isinstance(version, str) else None)

    def _remember(self, worker: str, output: AgentOutput, context: ContextInfo | None) -> None:
        """Keep the session the answer reported for the slot's next question, and record a
        new one on the slot's agent, for a restarted server."""
        sid = output.usage.session_id if output.usage is not None else None
        if not self.serve.session or sid is None or not _SESSION_ID.fullmatch(sid):
            return
        session = _Session(sid, context.version if context else None)
        with self._session_lock:
            changed = self._sessions.get(worker) != session
            self._sessions[worker] = session
        if changed:  # a hint for a restart, not the answer: tried once (it waits for Redis)
            self._register_slot(worker, session)

    slot_role = ANSWERER

    def run(self, tick: Callable[[], None] | None = None) -> list[TaskOutcome]:
        """As ``Runner.run``, each slot registered first as an answerer of the owner, so that
        its first claim finds it registered (that claim would register a ``worker``, and
        the role said later would be a second ``agent.joined``)."""
        for index in range(1, self.options.concurrency + 1):
            self._register_slot(self._worker_name(index))
        return super().run(tick)

    def _register_slot(self, worker: str, session: _Session | None = None) -> None:
        """Register slot ``worker`` as an answerer of the owner, built on its record as
        stored. At the server's start (no ``session``) it joins (one ``agent.joined``),
        keeping the conversation a previous server of the slot recorded (``_recorded`` reads
        it); with ``session`` (``_remember``) the running slot records that conversation on
        the record it joined with, which is no second join (none unless the slot was removed
        since). Best effort: a slot not registered here is registered by its first claim."""
        owner, model = self.serve.owner, self.serve.model

        def revise(stored: Agent | None) -> dict[str, Any]:
            kept = stored.metadata if stored is not None and stored.role == ANSWERER else None
            if session is not None:
                meta = {SESSION_META: session.id, "context_version": session.version}
                kept = {**(kept or {}), **meta}
            return {"role": ANSWERER, "parent": owner, "model": model, "metadata": kept}

        def unlinked(stored: Agent | None) -> dict[str, Any]:
            return {**revise(stored), "parent": None}

        with contextlib.suppress(SwarmError):
            try:
                self.swarm.join(worker, revise, announce=session is None)
            except NotFound:
                # The core takes as a parent an agent or a context owner only, and OWNER is
                # neither yet (served before it registers or publishes): the slot is an
                # answerer all the same, its conversation kept, of no parent until it joins
                # again once OWNER is one (a restart, a new conversation recorded).
                self.swarm.join(worker, unlinked, announce=session is None)

    def _keeps_registered(self, worker: str) -> bool:
        # With --session a slot's agent record holds its conversation (_remember): kept for
        # a restarted server to resume it (the same slot names: no pile of stale rows).
        return self.serve.session

    def _forget(self, worker: str) -> None:
        with self._session_lock:
            self._sessions.pop(worker, None)

    def _owner_context(self, task: Task) -> tuple[ContextInfo | None, str | None]:
        """The owner's context, and its text when it fits in a prompt."""
        owner = self.serve.owner
        try:
            info = self._persist(lambda: self.swarm.context_info(owner), task, READ_CONTEXT)
        except NotFound:
            return None, None
        if info.tokens_est > self.serve.inline_max_tokens:
            return info, None
        try:
            text = self._persist(
                lambda: self.swarm.get_context(owner, version=info.version),
                task,
                READ_CONTEXT,
            )
        except ValidationError:  # not UTF-8 text: the prompt says to write it to a file
            return info, None
        return info, text

    def _asker_task(self, task: Task) -> Task | None:
        tid = task.data.get("asker_task") if isinstance(task.data, dict) else None
        if not isinstance(tid, str):
            return None
        try:
            return self._persist(lambda: self.swarm.get_task(tid), task, READ_ASKERS_TASK)
        except SwarmError:
            return None

    def _work(self, task: Task, worker: str, started: float) -> TaskOutcome:
        context, text = self._owner_context(task)
        asker_task = self._asker_task(task)
        session = self._session(task, worker, context)
        while True:
            prompt = render_question_prompt(
                task, settings=self.swarm.settings, owner=self.serve.owner, context=context,
                text=text, asker_task=asker_task, in_session=session is not None,
            )  # fmt: skip
            command, env = session_command(
                self.options.command, session.id if session is not None else None
            )
            env["SWARM_CONTEXT_OWNER"] = self.serve.owner
            lost: list[str] = []
            try:
                result = self._run_agent(
                    task, worker, context, prompt, lost, command=command, env=env
                )
            except OSError as exc:
                end = Ending(task.id, worker, started, None)
                return self._fail(task, end, not_started(exc, prompt, self.options.shell), "")
            output = read_output(result.stdout, command=self.options.command)
            late = exited_first(lost, result)  # (its answer reported all the same)
            end = Ending(task.id, worker, started, result, output.usage, said=late)
            if result.killed == "interrupted":
                return self._interrupted(task, end, "interrupted: the question went back")
            if lost and result.killed:
                return end(OutcomeStatus.LOST, f"stopped the agent: {lost[-1]}")
            cannot_run = self._cannot_run(task, end, result)
            if cannot_run is not None:  # no new conversation would run it either
                return cannot_run
            failure = run_failure(result, output) or cli_failure(result, output)
            if failure is not None and session is not None and output.cut is None and not lost:
                # (an answer too long is the agent's, not its conversation's: not run again)
                self._forget(worker)  # the old conversation failed: a new one, at once
                session = None
                continue
            stderr_tail = result.stderr.tail_text(ERROR_TAIL).strip()
            if failure is not None:
                return self._fail(task, end, failure, stderr_tail, output.usage)
            return self._answer(task, worker, context, output, end, stderr_tail)

    def _answer(
        self,
        task: Task,
        worker: str,
        context: ContextInfo | None,
        output: AgentOutput,
        end: Ending,
        stderr_tail: str,
    ) -> TaskOutcome:
        if output.cut is not None:  # text cut in its middle: no answer to store
            return self._fail(task, end, output.cut, stderr_tail, output.usage)
        text = output.answer.strip()
        if not text:
            return self._fail(task, end, empty_answer(output), stderr_tail, output.usage)
        self._remember(worker, output, context)
        finding_id = self.swarm.new_finding_id()  # the same on every retry: stored once
        model = self.options.model or output.model
        version = context.version if context is not None else None  # the prompt's own
        try:  # the claimed question itself: its data is not read again (one script call)
            stored = self._report_leasing_next(
                task,
                worker,
                lambda more: self.swarm.answer(
                    task, self._token(task), text, worker=worker, model=model, usage=output.usage,
                    context_version=version, finding_id=finding_id, **more,
                ),
            )  # fmt: skip
        except AlreadyCompleted as exc:
            detail = f"answered too late (kept superseded): {exc}"
            return end(OutcomeStatus.LOST, detail, exc.finding_id)
        except ValidationError as exc:
            return self._fail(task, end, f"the answer was refused: {exc}", "", output.usage)
        noted = f"; {output.warning}" if output.warning else ""
        said = f"answered{noted}{overtaken_note(stored, what='question', deed='answer')}"
        return end(OutcomeStatus.COMPLETED, said, stored.id)
