"""The ephemeral worker pool behind ``swarm run``.

For each task it claims, the pool starts the agent command once, in a process group of its
own, with the task's prompt on its stdin (or in a ``{prompt}`` / ``{prompt_file}``
placeholder). While the process runs the pool renews the task's lease; at the deadline, or
when the task is cancelled or its lease lost, it kills the whole group (the agent and anything
it started). When the process exits, the pool parses the finding from its output and reports
it, or fails the task with the exit code and the tail of stderr so that the queue retries it.
Only a bounded head and tail of the output is kept, so a process printing gigabytes costs
about a megabyte. The process remembers nothing: that is the point.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from ._errors import AlreadyCompleted, ConnectionFailed, NotFound, SwarmError, ValidationError
from ._prompts import render_task_prompt

if TYPE_CHECKING:
    from ._client import Swarm

__all__ = [
    "Capture",
    "ChildResult",
    "RunOptions",
    "Runner",
    "TaskOutcome",
    "build_command",
    "default_worker_prefix",
    "normalize_finding",
    "parse_finding",
    "run_child",
    "task_env",
]

T = TypeVar("T")

OUTPUT_HEAD = 64 * 1024  # the first bytes of stdout kept
OUTPUT_TAIL = 1024 * 1024  # the last bytes of stdout kept (the finding is usually at the end)
STDERR_TAIL = 64 * 1024
ERROR_TAIL = 2000  # characters of stderr quoted in a failure
OBJECT_SEARCH = 256 * 1024  # the last characters searched for a bare JSON object
OBJECT_TRIES = 2000  # at most this many '{' positions tried, newest first
SUMMARY_LIMIT = 2000  # the core's limit on a finding's summary (characters)
DETAILS_LIMIT = 64 * 1024  # the most of an answer that is not JSON kept in details
CLAIM_RETRY_S = 30.0  # the pool gives up when the server is unreachable for this long
WRITE_RETRIES = 5  # a report, fail or release is tried this many times through an outage


# --- bounded capture of a child's output


class Capture:
    """The head and the tail of a byte stream of any length, in bounded memory."""

    def __init__(self, head: int = OUTPUT_HEAD, tail: int = OUTPUT_TAIL) -> None:
        self._head_max = head
        self._tail_max = tail
        self._head = bytearray()
        self._tail: deque[bytes] = deque()
        self._tail_size = 0
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self._head_max - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if not data or self._tail_max <= 0:
            return
        if len(data) >= self._tail_max:
            self._tail.clear()
            self._tail.append(bytes(data[-self._tail_max :]))
            self._tail_size = self._tail_max
            return
        self._tail.append(bytes(data))
        self._tail_size += len(data)
        while self._tail_size - len(self._tail[0]) >= self._tail_max:
            self._tail_size -= len(self._tail.popleft())

    @property
    def truncated(self) -> bool:
        return self.total > len(self._head) + self._tail_size

    def _tail_bytes(self) -> bytes:
        tail = b"".join(self._tail)
        kept = self._tail_max if self.truncated else len(tail)
        return tail[-kept:] if kept else b""

    def text(self) -> str:
        """Everything kept, decoded; a marker stands where bytes were dropped."""
        head = bytes(self._head).decode("utf-8", "replace")
        tail = self._tail_bytes().decode("utf-8", "replace")
        if not self.truncated:
            return head + tail
        dropped = self.total - len(self._head) - len(self._tail_bytes())
        return f"{head}\n[... {dropped} bytes of output omitted ...]\n{tail}"

    def tail_text(self, chars: int) -> str:
        return self.text()[-chars:]


def _pump(stream: IO[bytes], capture: Capture) -> None:
    fd = stream.fileno()
    try:
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            capture.feed(chunk)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            stream.close()


def _feed(stream: IO[bytes], data: bytes) -> None:
    try:
        stream.write(data)
    except (BrokenPipeError, OSError, ValueError):
        pass  # the agent exited or closed stdin without reading it all: its choice
    finally:
        with contextlib.suppress(OSError, ValueError):
            stream.close()


# --- the finding in an agent's output

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)\n[ \t]*```", re.S)
# Envelopes of agent CLIs' JSON output: claude -p --output-format json ("result"),
# gemini -o json ("response"). The finding is inside the text they carry.
_ENVELOPE_KEYS = ("result", "response")


def _as_finding(value: Any, depth: int = 0) -> tuple[dict[str, Any], str | None] | None:
    """``value`` if it is a finding; or the finding inside an agent CLI's JSON envelope (with
    how it was found there)."""
    if not isinstance(value, dict):
        return None
    summary = value.get("summary")
    if isinstance(summary, str) and summary.strip():
        return value, None
    if depth < 2:
        for key in _ENVELOPE_KEYS:
            inner = value.get(key)
            if isinstance(inner, str):
                found = _search(inner, depth + 1)
                if found is not None:
                    return found
    return None


def _last_object(text: str, depth: int) -> tuple[dict[str, Any], str | None] | None:
    """The JSON object with a summary that ends last in ``text`` (the outermost one)."""
    text = text[-OBJECT_SEARCH:]
    decoder = json.JSONDecoder()
    starts = [m.start() for m in re.finditer(r"\{", text)][-OBJECT_TRIES:]
    best: tuple[dict[str, Any], str | None] | None = None
    best_end = -1
    for start in reversed(starts):
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            continue
        found = _as_finding(value, depth)
        if found is not None and end >= best_end:
            best, best_end = found, end
    return best


def _search(text: str, depth: int = 0) -> tuple[dict[str, Any], str] | None:
    for match in reversed(list(_FENCE.finditer(text))):
        if match.group(1).lower() not in ("", "json", "jsonc", "json5"):
            continue
        try:
            value = json.loads(match.group(2))
        except ValueError:
            continue
        found = _as_finding(value, depth)
        if found is not None:
            return found[0], found[1] or "fenced"
    found = _last_object(text, depth)
    if found is not None:
        return found[0], found[1] or "object"
    return None


def parse_finding(
    text: str, *, summary_limit: int = SUMMARY_LIMIT
) -> tuple[dict[str, Any], str] | None:
    """The finding in an agent's output, and how it was found.

    The last fenced JSON block holding an object with a ``summary``; else the last such JSON
    object in the text; else the text itself becomes the summary (cut to ``summary_limit``
    characters, the whole text kept in ``details``). Returns ``(finding, "fenced" | "object"
    | "text")``, or None when the output is empty. A JSON finding is made acceptable where
    that loses nothing (see ``normalize_finding``).
    """
    found = _search(text)
    if found is not None:
        return normalize_finding(found[0], summary_limit), found[1]
    stripped = text.strip()
    if not stripped:
        return None
    if len(stripped) <= summary_limit:
        return {"summary": stripped}, "text"
    return {"summary": _cut(stripped, summary_limit), "details": _cut(stripped, DETAILS_LIMIT)}, (
        "text"
    )


def _cut(text: str, limit: int) -> str:
    marker = " [...]"
    return text if len(text) <= limit else text[: max(limit - len(marker), 0)].rstrip() + marker


def normalize_finding(
    finding: dict[str, Any], summary_limit: int = SUMMARY_LIMIT
) -> dict[str, Any]:
    """What agents get wrong in a finding, fixed without losing anything: a summary too long
    (cut; the whole of it opens ``details``), ``details`` that is not a string (its JSON),
    ``sources`` as one string or holding non-strings, a ``confidence`` that is not a number
    from 0 to 1 (kept as ``confidence_raw``)."""
    out = dict(finding)
    summary = str(out["summary"]).strip()
    details = out.get("details")
    if details is not None and not isinstance(details, str):
        details = json.dumps(details, ensure_ascii=False, indent=1)
    if len(summary) > summary_limit:
        details = summary + (f"\n\n{details}" if details else "")
        summary = _cut(summary, summary_limit)
    out["summary"] = summary
    if details is not None:
        out["details"] = details
    sources = out.get("sources")
    if isinstance(sources, str):
        out["sources"] = [sources]
    elif isinstance(sources, list | tuple):
        out["sources"] = [s if isinstance(s, str) else json.dumps(s) for s in sources]
    elif sources is not None:
        out["sources_raw"] = out.pop("sources")
    confidence = out.get("confidence")
    if confidence is not None:
        try:
            value = float(confidence)
        except (TypeError, ValueError):
            value = -1.0
        if isinstance(confidence, bool) or not 0 <= value <= 1:
            out["confidence_raw"] = out.pop("confidence")
        else:
            out["confidence"] = value
    return out


# --- one agent process


@dataclass
class ChildResult:
    """How an agent process ended."""

    returncode: int
    stdout: Capture
    stderr: Capture
    duration_s: float
    killed: str | None = None  # why the pool killed it: timeout, cancelled, lease lost, ...


def _exited(pid: int) -> bool:
    """True once ``pid`` has exited; it stays a zombie (not reaped), so its group id is safe."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _killpg(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def run_child(
    argv: Sequence[str],
    *,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 900.0,
    tick_s: float = 60.0,
    on_tick: Callable[[], str | None] | None = None,
    stop: threading.Event | None = None,
    grace_s: float = 5.0,
    head_bytes: int = OUTPUT_HEAD,
    tail_bytes: int = OUTPUT_TAIL,
) -> ChildResult:
    """Run ``argv`` in a new session (its own process group) and wait for it.

    ``on_tick`` is called every ``tick_s`` seconds while it runs (the pool renews the lease
    there); if it returns a reason, the group is killed. The group is also killed at
    ``timeout_s`` and when ``stop`` is set: SIGTERM, then SIGKILL after ``grace_s``. Whatever
    the group left running when its leader exited is killed too.
    """
    started = time.monotonic()
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env) if env is not None else None,
        start_new_session=True,
    )
    out = Capture(head_bytes, tail_bytes)
    err = Capture(0, STDERR_TAIL)
    assert proc.stdout is not None and proc.stderr is not None
    threads = [
        threading.Thread(target=_pump, args=(proc.stdout, out), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, err), daemon=True),
    ]
    if stdin is not None:
        assert proc.stdin is not None
        threads.append(threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True))
    for thread in threads:
        thread.start()
    deadline = started + timeout_s
    next_tick = started + tick_s
    killed: str | None = None
    try:
        while not _exited(proc.pid):
            now = time.monotonic()
            if stop is not None and stop.is_set():
                killed = "interrupted"
            elif now >= deadline:
                killed = f"timed out after {timeout_s:g}s"
            elif on_tick is not None and now >= next_tick:
                next_tick = now + tick_s
                killed = on_tick()
            if killed:
                _terminate(proc.pid, grace_s)
                break
            time.sleep(min(0.05, max(deadline - now, 0.001)))
    finally:
        _killpg(proc.pid, signal.SIGKILL)  # the group's leftovers; the leader is not reaped yet
        returncode = proc.wait()
        for thread in threads:
            thread.join(timeout=5)
    return ChildResult(returncode, out, err, time.monotonic() - started, killed)


def _terminate(pgid: int, grace_s: float) -> None:
    _killpg(pgid, signal.SIGTERM)
    limit = time.monotonic() + grace_s
    while time.monotonic() < limit and not _exited(pgid):
        time.sleep(0.02)
    _killpg(pgid, signal.SIGKILL)


def build_command(
    command: str, prompt: str, workdir: Path, *, shell: str = "/bin/sh"
) -> tuple[list[str], bytes | None]:
    """The argv and stdin for one run of ``command`` (a shell command line).

    ``{prompt_file}`` becomes the path of a file holding the prompt and ``{prompt}`` the
    prompt itself (both shell-quoted); without either, the prompt goes to stdin.
    """
    text = command
    uses_placeholder = False
    if "{prompt_file}" in text:
        path = workdir / "prompt.md"
        path.write_text(prompt, encoding="utf-8")
        text = text.replace("{prompt_file}", shlex.quote(str(path)))
        uses_placeholder = True
    if "{prompt}" in text:
        text = text.replace("{prompt}", shlex.quote(prompt))
        uses_placeholder = True
    return [shell, "-c", text], (None if uses_placeholder else prompt.encode("utf-8"))


def task_env(task: Any, settings: Any, context: Any = None) -> dict[str, str]:
    """What an agent process learns from its environment (besides the runner's own)."""
    env = {
        "SWARM_URL": settings.render_url(mask=False),
        "SWARM_NAME": settings.swarm,
        "SWARM_TASK_ID": str(task.id),
        "SWARM_TASK_TOKEN": str(task.token),
        "SWARM_TASK_QUEUE": str(task.queue),
    }
    if getattr(task, "parent", None):
        env["SWARM_CONTEXT_OWNER"] = str(task.parent)
    if context is not None:
        env["SWARM_CONTEXT_VERSION"] = str(context.version)
    return env


def default_worker_prefix() -> str:
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:40] or "host"
    return f"run-{host}-{os.getpid()}"


# --- the pool


@dataclass(frozen=True)
class RunOptions:
    """How ``swarm run`` works; see docs/cli.md."""

    queues: tuple[str, ...]
    command: str
    concurrency: int = 1
    max_tasks: int | None = None
    idle_exit_s: float | None = None
    until_done: bool = False  # stop when no task of the queues is pending, delayed or claimed
    lease_s: int | None = None  # the lease asked at claim and renewal (default: the task's)
    timeout_s: float | None = None  # the most a process may run (default: the task's lease_s)
    worker: str | None = None  # worker name prefix; slot i is PREFIX-i
    model: str | None = None  # recorded on findings
    summary_limit: int = SUMMARY_LIMIT
    grace_s: float = 5.0
    poll_s: float = 1.0  # the longest a claim waits, so that Ctrl-C is prompt
    shell: str = "/bin/sh"


@dataclass(frozen=True)
class TaskOutcome:
    """What became of one claimed task."""

    task_id: str
    worker: str
    status: str  # completed, failed, released, lost
    detail: str
    duration_s: float
    finding_id: str | None = None
    returncode: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "worker": self.worker,
            "status": self.status,
            "detail": self.detail,
            "duration_s": round(self.duration_s, 3),
            "finding_id": self.finding_id,
            "returncode": self.returncode,
        }


@dataclass
class _Counts:
    claimed: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    released: int = 0
    lost: int = 0
    errors: list[str] = field(default_factory=list)


class Runner:
    """Claims tasks and runs the agent command once per task, ``concurrency`` at a time.

    ``run`` blocks until the pool is done: ``max_tasks`` claimed, ``idle_exit_s`` seconds with
    nothing to claim, every task of its queues settled (``until_done``), or ``drain`` (finish
    what runs, claim nothing new) / ``abort`` (kill what runs and release its tasks) called
    from another thread or a signal handler.
    """

    def __init__(
        self,
        swarm: Swarm,
        options: RunOptions,
        *,
        on_outcome: Callable[[TaskOutcome], None] | None = None,
    ) -> None:
        if not options.queues:
            raise ValidationError("name at least one queue to claim from (--queue)")
        if options.concurrency < 1:
            raise ValidationError("concurrency must be at least 1")
        if not options.command.strip():
            raise ValidationError("the agent command is empty: pass it with --exec")
        self.swarm = swarm
        self.options = options
        self.prefix = options.worker or default_worker_prefix()
        self.outcomes: list[TaskOutcome] = []
        self._on_outcome = on_outcome
        self._counts = _Counts()
        self._lock = threading.Lock()
        self._tickets = 0
        self._draining = threading.Event()
        self._aborting = threading.Event()
        self._fatal: str | None = None
        self.crash: BaseException | None = None  # an unexpected error in a slot (a bug)

    # --- control

    def drain(self) -> None:
        """Claim nothing more; let the running processes finish."""
        self._draining.set()

    def abort(self) -> None:
        """Claim nothing more; kill the running processes and release their tasks."""
        self._draining.set()
        self._aborting.set()

    @property
    def draining(self) -> bool:
        return self._draining.is_set()

    def counts(self) -> dict[str, int]:
        with self._lock:
            c = self._counts
            return {
                "claimed": c.claimed,
                "running": c.running,
                "completed": c.completed,
                "failed": c.failed,
                "released": c.released,
                "lost": c.lost,
            }

    @property
    def errors(self) -> list[str]:
        with self._lock:
            return list(self._counts.errors)

    # --- the loop

    def run(self, tick: Callable[[], None] | None = None) -> list[TaskOutcome]:
        """Run the pool until it is done; ``tick`` is called about 10 times a second from the
        calling thread (which also receives the signals)."""
        threads = [
            threading.Thread(target=self._slot, args=(i + 1,), name=f"swarm-run-{i + 1}")
            for i in range(self.options.concurrency)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.1)
                if tick is not None:
                    tick()
        if tick is not None:
            tick()
        return list(self.outcomes)

    @property
    def fatal(self) -> str | None:
        """Why the pool stopped on its own (an error it cannot get past), if it did."""
        return self._fatal

    def _take_ticket(self) -> bool:
        with self._lock:
            if self.options.max_tasks is not None and self._tickets >= self.options.max_tasks:
                return False
            self._tickets += 1
            return True

    def _return_ticket(self) -> None:
        with self._lock:
            self._tickets -= 1

    def _slot(self, index: int) -> None:
        worker = f"{self.prefix}-{index}"
        idle_exit = self.options.idle_exit_s
        idle_since = time.monotonic()
        failing_since: float | None = None
        try:
            while not self._draining.is_set():
                if not self._take_ticket():
                    return
                wait = self.options.poll_s
                if idle_exit is not None:
                    wait = max(0.0, min(wait, idle_since + idle_exit - time.monotonic()))
                try:
                    task = self.swarm.claim(
                        list(self.options.queues),
                        worker=worker,
                        lease_s=self.options.lease_s,
                        wait_s=wait,
                    )
                except ConnectionFailed as exc:
                    self._return_ticket()
                    now = time.monotonic()
                    failing_since = failing_since or now
                    if now - failing_since > CLAIM_RETRY_S:
                        self._stop(f"cannot claim for {CLAIM_RETRY_S:g}s: {exc}")
                        return
                    self._error(f"claim failed (retrying): {exc}")
                    self._draining.wait(1.0)
                    continue
                except SwarmError as exc:
                    self._return_ticket()
                    self._stop(f"cannot claim: {exc}")
                    return
                failing_since = None
                if task is None:
                    self._return_ticket()
                    if idle_exit is not None and time.monotonic() - idle_since >= idle_exit:
                        return
                    if self.options.until_done and self._settled():
                        return
                    if wait <= 0:
                        self._draining.wait(0.05)
                    continue
                self._handle(task, worker)
                idle_since = time.monotonic()
        except BaseException as exc:  # a bug must stop the pool, not vanish with a thread
            self.crash = exc
            self._stop(f"{type(exc).__name__}: {exc}")

    def _persist(self, call: Callable[[], T]) -> T:
        """Make a write the pool must not lose survive a short outage (the client already
        retries for a few seconds; this adds about half a minute)."""
        for attempt in range(WRITE_RETRIES):
            try:
                return call()
            except ConnectionFailed as exc:
                if attempt == WRITE_RETRIES - 1:
                    raise
                self._error(f"write failed (retrying): {exc}")
                time.sleep(min(2**attempt, 8))
        raise AssertionError("unreachable")  # pragma: no cover

    def _settled(self) -> bool:
        """True when no task of the pool's queues is open (a running one may still fail and
        come back, so the pool waits for it)."""
        stats = self.swarm.queue_stats()
        return not any(
            stats.get(q, {}).get(status, 0)
            for q in self.options.queues
            for status in ("pending", "delayed", "claimed")
        )

    def _stop(self, reason: str) -> None:
        with self._lock:
            if self._fatal is None:
                self._fatal = reason
        self.abort()

    def _error(self, message: str) -> None:
        with self._lock:
            self._counts.errors.append(message)

    def _finish(self, outcome: TaskOutcome) -> None:
        with self._lock:
            self._counts.running -= 1
            setattr(self._counts, outcome.status, getattr(self._counts, outcome.status) + 1)
            self.outcomes.append(outcome)
        if self._on_outcome is not None:
            self._on_outcome(outcome)

    def _handle(self, task: Any, worker: str) -> None:
        with self._lock:
            self._counts.claimed += 1
            self._counts.running += 1
        started = time.monotonic()
        try:
            outcome = self._work(task, worker, started)
        except SwarmError as exc:
            outcome = TaskOutcome(
                task.id, worker, "lost", f"the swarm refused: {exc}", time.monotonic() - started
            )
        self._finish(outcome)

    def _context(self, task: Any) -> Any:
        if not getattr(task, "parent", None):
            return None
        try:
            return self.swarm.context_info(task.parent)
        except NotFound:
            return None

    def _work(self, task: Any, worker: str, started: float) -> TaskOutcome:
        opts = self.options
        context = self._context(task)
        prompt = render_task_prompt(
            task, settings=self.swarm.settings, context=context, summary_limit=opts.summary_limit
        )
        lease = opts.lease_s or task.lease_s
        timeout = opts.timeout_s or float(task.lease_s)
        lost: list[str] = []

        def renew() -> str | None:
            try:
                self.swarm.renew(task.id, task.token, lease_s=opts.lease_s)
            except ConnectionFailed as exc:  # an outage: try again at the next tick
                self._error(f"renew of {task.id} failed (retrying): {exc}")
            except NotFound:
                lost.append("the task no longer exists")
            except SwarmError as exc:
                if isinstance(exc, ValidationError):
                    raise
                # Cancelled, completed elsewhere, or the lease was taken over: stop the agent.
                lost.append(str(exc))
            return lost[-1] if lost else None

        workdir = Path(tempfile.mkdtemp(prefix="swarm-run-"))
        try:
            argv, stdin = build_command(opts.command, prompt, workdir, shell=opts.shell)
            env = {**os.environ, **task_env(task, self.swarm.settings, context)}
            result = run_child(
                argv,
                stdin=stdin,
                env=env,
                timeout_s=timeout,
                tick_s=max(0.2, lease / 3),
                on_tick=renew,
                stop=self._aborting,
                grace_s=opts.grace_s,
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

        def outcome(status: str, detail: str, finding_id: str | None = None) -> TaskOutcome:
            return TaskOutcome(
                task.id,
                worker,
                status,
                detail,
                time.monotonic() - started,
                finding_id,
                result.returncode,
            )

        if result.killed == "interrupted":
            self._persist(lambda: self.swarm.release(task.id, task.token))
            return outcome("released", "interrupted: the task went back to its queue")
        if lost:
            return outcome("lost", f"stopped the agent: {lost[-1]}")
        stderr_tail = result.stderr.tail_text(ERROR_TAIL).strip()
        if result.killed:
            return self._fail(task, outcome, f"{result.killed}: killed", stderr_tail)
        if result.returncode != 0:
            return self._fail(task, outcome, f"exit code {result.returncode}", stderr_tail)
        current = self.swarm.get_task(task.id)
        if current.status == "completed" and current.finding_id:
            return outcome("completed", "the agent reported it itself", current.finding_id)
        parsed = parse_finding(result.stdout.text(), summary_limit=opts.summary_limit)
        if parsed is None:
            return self._fail(task, outcome, "the agent printed nothing (exit code 0)", stderr_tail)
        finding, how = parsed
        from ._ops._work import new_id  # the core's id scheme

        finding_id = new_id("f-")  # the same id on every retry: the report is stored once
        try:
            stored = self._persist(
                lambda: self.swarm.report(
                    task.id,
                    task.token,
                    finding,
                    worker=worker,
                    model=opts.model,
                    context_version=context.version if context is not None else None,
                    finding_id=finding_id,
                )
            )
        except AlreadyCompleted as exc:
            return outcome("lost", f"completed elsewhere first: {exc}", exc.finding_id)
        except ValidationError as exc:
            return self._fail(task, outcome, f"the finding was refused: {exc}", "")
        return outcome("completed", f"finding from {how} output", stored.id)

    def _fail(
        self, task: Any, outcome: Callable[..., TaskOutcome], reason: str, stderr_tail: str
    ) -> TaskOutcome:
        error = reason + (f"; stderr: {stderr_tail}" if stderr_tail else "")
        try:
            self._persist(lambda: self.swarm.fail(task.id, task.token, error, retry=True))
        except SwarmError as exc:
            return outcome("lost", f"{reason}; and the failure was refused: {exc}")
        last = stderr_tail.strip().splitlines()[-1:] if stderr_tail else []
        return outcome("failed", reason + (f" ({last[0][:160]})" if last else ""))
