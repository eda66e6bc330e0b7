"""One agent process: started in a session of its own, fed its prompt, watched until its
deadline, killed with everything it started, its output kept in bounded memory.

Only a bounded head and tail of the output is kept, so a process printing gigabytes costs
about a megabyte; an output longer than both cannot be read whole (``output.read_output``
says so, and reads what the run cost from the tail where its format allows).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .._errors import ConfigError, ValidationError
from .guardian import GUARDIAN, group_alive
from .reaper import MARK, kill_marked, new_mark, reaped, spawning

__all__ = [
    "CANNOT_RUN",
    "ERROR_TAIL",
    "NUL_IN_PROMPT",
    "PLACEHOLDERS",
    "Capture",
    "ChildResult",
    "Command",
    "build_command",
    "check_command",
    "check_program",
    "missing_program",
    "run_child",
]

OUTPUT_HEAD = 64 * 1024  # the first bytes of stdout kept
OUTPUT_TAIL = 1024 * 1024  # the last bytes of stdout kept (the finding is usually at the end)
STDERR_TAIL = 64 * 1024
ERROR_TAIL = 2000  # characters of stderr quoted in a failure
# The exit codes by which a shell says it could not run the command at all: no run of it can
# do better, so the pool gives the task back rather than spend an attempt (see pool).
CANNOT_RUN = {126: "not executable", 127: "not found"}


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

    @property
    def head_max(self) -> int:
        """The most of the stream's first bytes kept."""
        return self._head_max

    @property
    def tail_max(self) -> int:
        """The most of the stream's last bytes kept."""
        return self._tail_max

    @property
    def limit(self) -> int:
        """The longest stream kept whole: a longer one loses its middle (``truncated``)."""
        return self._head_max + self._tail_max

    def _tail_bytes(self) -> bytes:
        tail = b"".join(self._tail)
        kept = self._tail_max if self.truncated else len(tail)
        return tail[-kept:] if kept else b""

    def parts(self) -> tuple[str, str]:
        """The head and the tail kept, each decoded on its own (a character split by the cut
        becomes U+FFFD): each is a contiguous run of the stream, which ``text`` is not once
        bytes were dropped between them."""
        head = bytes(self._head).decode("utf-8", "replace")
        return head, self._tail_bytes().decode("utf-8", "replace")

    def text(self) -> str:
        """Everything kept, decoded; a marker stands where bytes were dropped."""
        if not self.truncated:
            return (bytes(self._head) + self._tail_bytes()).decode("utf-8", "replace")
        head, tail = self.parts()
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


# --- one agent process


@dataclass
class ChildResult:
    """How an agent process ended."""

    returncode: int
    stdout: Capture
    stderr: Capture
    duration_s: float
    killed: str | None = None  # why the pool killed it: timeout, cancelled, lease lost, ...
    left_behind: int = 0  # processes it started outside its group, killed when it ended

    @property
    def cannot_run(self) -> str | None:
        """What the shell said by its exit code when it could not run the agent command at
        all (``CANNOT_RUN``'s words: 127 not found, 126 not executable): no agent ran. None
        when it ran it (or the pool killed it). The one rule of it: the pool's release and
        stop (``TaskWork._cannot_run``), and what an outcome counts as an agent run."""
        return None if self.killed else CANNOT_RUN.get(self.returncode)


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
    halt: Callable[[], str | None] | None = None,
    stop: threading.Event | None = None,
    grace_s: float = 5.0,
    head_bytes: int = OUTPUT_HEAD,
    tail_bytes: int = OUTPUT_TAIL,
) -> ChildResult:
    """Run ``argv`` in a new session (its own process group) and wait for it.

    ``on_tick`` is called every ``tick_s`` seconds while it runs (the pool renews the lease
    there); if it returns a reason, the group is killed, unless the process exited meanwhile
    (a renewal may block through an outage): then ``killed`` stays None, its run finished.
    ``halt`` is asked at every look at the process (about 20 times a second), so it must not
    do I/O: a reason from it kills the group too, under the same rule (the pool's cancel
    follower answers it). The group is also killed at
    ``timeout_s`` and when ``stop`` is set: SIGTERM, then SIGKILL after ``grace_s``. Whatever
    it left running when its leader exited is killed too: the rest of its group, and every
    process that inherited its ``SWARM_RUN_ID`` mark outside the group (see ``reaper``).
    Should this process die without the chance to do so (SIGKILL), its guardian does (see
    ``guardian``).
    """
    started = time.monotonic()
    mark = new_mark()
    GUARDIAN.mark(mark)  # before it exists: should this process die now, the mark finds it
    try:
        with spawning() as leaders:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**(os.environ if env is None else env), MARK: mark},
                start_new_session=True,
            )
            leaders.add(proc.pid)
    except ValueError as exc:  # a NUL byte in an argument or variable: no exec takes it
        GUARDIAN.forget(mark)
        raise OSError(errno.EINVAL, f"{exc} in an argument or environment variable") from exc
    except BaseException:
        GUARDIAN.forget(mark)
        raise
    GUARDIAN.group(mark, proc.pid)
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
            elif halt is not None and (why := halt()) is not None:
                killed = why
            elif on_tick is not None and now >= next_tick:
                next_tick = now + tick_s
                killed = on_tick()
            if killed and _exited(proc.pid):
                # It exited while the reason was being found (a renewal blocked through an
                # outage): it was not stopped, and its output is whole; the caller that told
                # the reason knows it was given and decides what its finished run is worth.
                killed = None
                break
            if killed:
                _terminate(proc.pid, grace_s)
                break
            time.sleep(min(0.05, max(deadline - now, 0.001)))
    finally:
        _killpg(proc.pid, signal.SIGKILL)  # the group's leftovers; the leader is not reaped yet
        GUARDIAN.ungroup(mark)  # dead: its number is free for reuse once the leader is reaped
        returncode = proc.wait()
        reaped(proc.pid)
        left = kill_marked(mark, proc.pid)  # what left the group (setsid, a double fork)
        GUARDIAN.forget(mark)
        for thread in threads:
            thread.join(timeout=5)
    return ChildResult(returncode, out, err, time.monotonic() - started, killed, left)


def _terminate(pgid: int, grace_s: float) -> None:
    _killpg(pgid, signal.SIGTERM)
    limit = time.monotonic() + grace_s
    while time.monotonic() < limit and group_alive(pgid):
        time.sleep(0.02)
    _killpg(pgid, signal.SIGKILL)


PLACEHOLDERS = {"{prompt}": "SWARM_PROMPT", "{prompt_file}": "SWARM_PROMPT_FILE"}
# Why a prompt holding a NUL byte cannot go in ``{prompt}`` (an OSError's strerror, said by
# ``outcomes.not_started``): exec passes C strings, which a NUL ends.
NUL_IN_PROMPT = "the prompt holds a NUL byte, which no argument or environment variable can hold"


@dataclass(frozen=True)
class Command:
    """One run of the agent command: what to execute, its stdin, what its environment adds."""

    argv: list[str]
    stdin: bytes | None
    env: dict[str, str]


# A word in braces, as a placeholder is written: one that is no placeholder is refused (a typo
# such as ``{PROMPT}``, or ``swarm serve``'s ``{session}`` given to ``swarm run``), as it would
# reach the agent as its literal text. ``${NAME}`` is the shell's, never one.
_BRACED_WORD = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")


def check_command(
    command: str, placeholders: Collection[str] = (), *, where: str = "--exec"
) -> None:
    """Refuse a placeholder written inside quotes in ``command``, and a ``{word}`` that is no
    placeholder (``PLACEHOLDERS``, and ``placeholders``: those the caller fills itself, as
    ``swarm serve`` its ``{session}``), written bare or inside double quotes. ``where``:
    where the user wrote the command, for the message.

    A placeholder stands for one whole shell word; inside quotes it would not be one (in
    single quotes the shell would pass its name, in double quotes split the prompt into
    words), and a command built by pasting text into quotes is how task text ends up run as
    shell code. The message shows how to write it instead. A ``{word}`` that is no
    placeholder would reach the agent as it is written (a typo of one, never filled): it is
    refused, naming the placeholders known, unless it is the shell's own text, written in
    single quotes (``'{word}'``) or its brace escaped (``\\{word}``).
    """
    known = [*PLACEHOLDERS, *placeholders]
    for word, quotes in _braced_words(command):
        if word in known and quotes:
            raise ValidationError(
                f"{where} has {word} inside {quotes} quotes; write it bare, as in "
                f"`agent --prompt {word}`: it already stands for one shell word"
            )
        if word not in known and quotes != "single":
            names = ", ".join(known[:-1]) + f" and {known[-1]}"
            raise ValidationError(
                f"{where} has {word}, which is no placeholder: the ones known here are "
                f"{names} (written bare). Fix its spelling; or, if it is text for the agent "
                f"to get as it is, put it in single quotes ('{word}') or escape its brace "
                f"(\\{word})"
            )


def _braced_words(command: str) -> Iterator[tuple[str, str]]:
    """Each ``{word}`` of ``command`` (``_BRACED_WORD``) that the shell does not take as
    its own (escaped with a backslash, or ``${NAME}``), with the quotes it is written in:
    "single", "double" or "" (a small shell lexer: quotes, backslashes, backticks and
    ``$(...)``, which open a new quoting level inside quotes)."""
    stack: list[str] = []  # the open constructs: ' " ` (
    i = 0
    while i < len(command):
        top = stack[-1] if stack else ""
        c = command[i]
        if c == "{" and (i == 0 or command[i - 1] != "$"):
            braced = _BRACED_WORD.match(command, i)
            if braced is not None:
                yield braced.group(), {"'": "single", '"': "double"}.get(top, "")
        if top == "'":
            if c == "'":
                stack.pop()
        elif c == "\\":
            i += 1  # the next character is escaped
        elif c == "`":
            if top == "`":
                stack.pop()
            else:
                stack.append("`")
        elif command.startswith("$(", i):
            stack.append("(")
            i += 1
        elif top == '"':
            if c == '"':
                stack.pop()
        elif c in "'\"(":
            stack.append(c)
        elif c == ")" and top == "(":
            stack.pop()
        i += 1


_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
# A first word the shell would expand or resolve in its own way (a variable, a command
# substitution, a glob, ``~``, a brace or a placeholder, a path): not looked up on PATH.
_NOT_LOOKED_UP = re.compile(r"[$`*?\[\]~{}/\\]")


def _first_word(command: str) -> str | None:
    """The word the shell runs first in ``command``, its quotes removed; None when it is
    not a plain program name (an assignment, a subshell or group, an expansion, a path) or
    when ``command`` does not parse (the shell will say why)."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        words = list(lexer)  # all of them: an unclosed quote further on is found too
    except ValueError:
        return None
    word = words[0] if words else None
    if not word or word[0] in lexer.punctuation_chars:
        return None
    if _ASSIGNMENT.match(word) or _NOT_LOOKED_UP.search(word):
        return None
    return word


def _shell_knows(word: str, shell: str) -> bool:
    """True when ``shell`` runs ``word`` without finding it on PATH: a builtin (``cd``,
    ``exec``) or a reserved word (``if``, ``{``), whatever that shell counts as one."""
    try:
        found = subprocess.run(
            [shell, "-c", 'command -v -- "$1" >/dev/null 2>&1', "swarm-check", word],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            timeout=10, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):  # no shell to ask: the run will say
        return True
    return found.returncode == 0


def missing_program(command: str, *, shell: str = "/bin/sh") -> str | None:
    """The program ``command`` (a shell command line) starts with, when the shell would not
    find it (its "not found", exit code 127); None when it would, or when only running it
    can tell (see ``_first_word``)."""
    word = _first_word(command)
    if word is None or shutil.which(word) is not None or _shell_knows(word, shell):
        return None
    return word


def check_program(
    command: str, *, shell: str = "/bin/sh", where: str = "--exec", claims: bool = True
) -> None:
    """Refuse ``command`` when the shell would not find its program: every task run with it
    would fail at once, spending its attempts (see ``missing_program``). ``where``: where
    the user wrote the command, for the message; ``claims``: the caller would have claimed
    tasks (``swarm run``: the message says none was), not only checked a plan."""
    program = missing_program(command, shell=shell)
    if program is not None:
        raise ConfigError(
            f"the agent command's program {program!r} is not found: not a shell builtin and "
            f"not in any folder of PATH ({os.environ.get('PATH', '')}). Install it (or add "
            f"its folder to PATH), or fix the agent command ({where})"
            + ("; nothing was claimed" if claims else "")
        )


def build_command(command: str, prompt: str, workdir: Path, *, shell: str = "/bin/sh") -> Command:
    """How to run ``command`` (a shell command line) for one ``prompt``.

    ``{prompt}`` becomes ``"$SWARM_PROMPT"`` and ``{prompt_file}`` ``"$SWARM_PROMPT_FILE"``
    (the path of a file holding the prompt), the values being in the environment: the prompt
    never becomes part of the shell's code, so nothing in it can run. Without either
    placeholder the prompt goes to stdin. A placeholder inside quotes is refused (see
    ``check_command``). A prompt holding a NUL byte cannot be given in ``{prompt}``: an
    OSError (the run's failure, ``outcomes.not_started``), as a prompt too long for it is.
    """
    check_command(command)
    if "{prompt}" in command and "\x00" in prompt:
        raise OSError(errno.EINVAL, NUL_IN_PROMPT)  # (Popen's ValueError would crash the pool)
    text = command
    env: dict[str, str] = {}
    if "{prompt_file}" in text:
        path = workdir / "prompt.md"
        path.write_text(prompt, encoding="utf-8")
        env[PLACEHOLDERS["{prompt_file}"]] = str(path)
    if "{prompt}" in text:
        env[PLACEHOLDERS["{prompt}"]] = prompt
    for placeholder, name in PLACEHOLDERS.items():
        text = text.replace(placeholder, f'"${name}"')
    stdin = None if env else prompt.encode("utf-8")
    return Command([shell, "-c", text], stdin, env)
