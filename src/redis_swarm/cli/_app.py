"""The root command, shared options, output and error handling for every subcommand."""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib
import io
import json
import os
import re
import select
import signal
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, overload

import click
from click.core import ParameterSource

from .._codec import dumps_shown
from .._config import DEFAULT_HOME, DEFAULT_SWARM, Settings
from .._env import (
    ENV_HOME,
    ENV_NAME,
    ENV_URL,
    URL_FROM_ENV_OPTION,
    context_cache_from_env,
    env_value,
)
from .._errors import (
    ConfigError,
    LibraryReplaced,
    SwarmError,
    TaskDeadLettered,
    Timeout,
    TlsNotVerified,
    ValidationError,
)
from .._executable import reach_options
from .._printable import printable
from .._validate import check_swarm_name, not_ascii_number

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer
    from rich.console import Console

    from .._cache import ContextCache
    from .._client import Swarm

__all__ = ["EXIT_EMPTY", "App", "json_option", "main", "pass_app", "usage_failure"]

EXIT_ERROR = 1
EXIT_USAGE = 2  # a bad option or input, found before the swarm is asked (click's own code)
EXIT_EMPTY = 3  # nothing to claim, or a wait timed out
# Standard output closed by its reader (``swarm events | head -1``): what the shell reports
# for git or grep there, killed by SIGPIPE (128 + 13), so that ``set -o pipefail`` scripts
# treat swarm as they treat them, and a closed pipe is not mistaken for a full answer (0).
EXIT_PIPE = 141
# What an interrupted wait (Ctrl-C, or SIGTERM or SIGHUP: TERMINATIONS) became, by (group,
# command): its error line (exit 1), not click's bare "Aborted!"; a {name} in it is the
# command's parameter of that name (the task's id: {task_id}). (`ask` and `run` say it
# themselves; a command not named here ends as click ends it.)
INTERRUPTED: dict[tuple[str, str], str] = {
    ("task", "claim"): "interrupted: the claim stopped waiting and nothing was claimed (a task "
    "leased in that very instant goes back to its queue when its lease ends); claim again to "
    "go on",
    ("task", "wait"): "interrupted: the wait stopped; the tasks go on as they were (swarm "
    "status shows them): run swarm task wait again to wait on",
    ("task", "report"): "interrupted: the report may have been taken (swarm task show "
    "{task_id} says so); report again if it was not. A next task it claims (--claim-next) was "
    "not given to you: one leased in that very instant goes back to its queue when its lease "
    "ends",
    # (the read waits looking, taking nothing; the messages it takes are printed with Ctrl-C
    # held back, then it ends)
    ("msg", "inbox"): "interrupted: the read stopped; a message printed above is read, every "
    "other one stays unread: run swarm msg inbox again to read them",
}
# The signals that stop a command as Ctrl-C does, besides SIGINT (``_terminations_interrupt``):
# its same words, its same exit 1, not the shell's 128 + the signal (the command ended itself,
# having given back what it held: docs/cli.md, exit codes).
TERMINATIONS = ("SIGTERM", "SIGHUP")
# The commands whose usage errors exit 1, not click's 2: a Claude Code, Codex or Gemini CLI
# hook runs `swarm hook`, and those clients read exit 2 as "block" (a refused stop, with the
# usage text fed to the model).
NO_USAGE_EXIT = frozenset({"hook"})
# An error that repeats a value of the command line longer than LONG_VALUE_CHARS (a 1 MB
# argument) shows its first SHOWN_VALUE_CHARS characters and its length instead; a long path
# is shown whole.
LONG_VALUE_CHARS = 1000
SHOWN_VALUE_CHARS = 80

F = TypeVar("F", bound=Callable[..., Any])


def _stdout_gone() -> bool:
    """Whether standard output's reader is gone: a flush of what is buffered fails with a
    broken pipe, or, with nothing buffered, the pipe reports that its reading end closed."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        return True
    except (OSError, ValueError):  # closed, or not a file: not a pipe's reader leaving
        return False
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), 0)  # POLLERR and POLLHUP are always reported
        return any(mask & (select.POLLERR | select.POLLHUP) for _, mask in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # no fileno (a test's buffer), no poll
        return False


def _end_on_closed_stdout() -> NoReturn:
    """End the command quietly, as git or grep do, because standard output's reader left.
    Its descriptor then points at /dev/null, so that nothing flushed at exit fails again
    ("Exception ignored ... BrokenPipeError"): the Python docs' note on SIGPIPE. SIGPIPE
    itself stays ignored (Python's default), so that a broken connection to Redis is an
    error, not the death of the process."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)
    sys.exit(EXIT_PIPE)


class _WholeWrites(io.FileIO):
    """Standard output's file when Python writes it unbuffered (``PYTHONUNBUFFERED``, which
    agents' environments often set, or ``python -u``), writing each write whole. A write to
    a pipe whose reader leaves midway returns the part written, and the text layer, which
    writes straight to the file then, drops the rest without an error: ``swarm context get
    NAME | head -c 1`` ended 0. Writing on meets the closed pipe (BrokenPipeError), which
    ends the command as a closed stdout does. (A buffered stdout writes on by itself.)"""

    def write(self, data: ReadableBuffer, /) -> int:
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            written: int | None = super().write(view[done:])
            if written is None:  # a non-blocking file, full: wait until it takes more
                select.select([], [self.fileno()], [])
                continue
            done += written
        return done


def _whole_stdout() -> None:
    """Make an unbuffered standard output write every write whole (``_WholeWrites``); a
    buffered one, or one replaced in-process (a test's), is left alone."""
    out = sys.stdout
    if out is not sys.__stdout__ or not isinstance(out, io.TextIOWrapper):
        return
    if type(out.buffer) is not io.FileIO:
        return
    try:
        out.flush()
        raw = _WholeWrites(out.fileno(), "w", closefd=False)
    except (OSError, ValueError):
        return
    sys.stdout = io.TextIOWrapper(
        raw,
        encoding=out.encoding,
        errors=out.errors,
        line_buffering=out.line_buffering,
        write_through=True,  # as Python's own unbuffered stdout: nothing waits in the wrapper
    )


@functools.cache
def _stdout_console_class() -> type[Console]:
    """rich's console, ending on a closed standard output as every other write does (rich
    itself exits 1 there)."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> NoReturn:
            self.quiet = True
            _end_on_closed_stdout()

    return _Console


def _stdout_console() -> Console:
    return _stdout_console_class()(soft_wrap=True)


def _stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


class _ConsoleField:
    """``App.out`` and ``App.err``: the console given to ``App(...)``, else one made when a
    command first prints through it, so that a command that never does (`swarm hook`, which
    a client runs at every turn, prints with click) does not import rich. A descriptor, so
    that the dataclass still takes ``App(err=Console(...))``."""

    def __init__(self, make: Callable[[], Console]) -> None:
        self.make = make

    def __set_name__(self, owner: type, name: str) -> None:
        self.attribute = f"_{name}_console"

    @overload
    def __get__(self, app: None, owner: type) -> None: ...
    @overload
    def __get__(self, app: App, owner: type) -> Console: ...
    def __get__(self, app: App | None, owner: type) -> Console | None:
        if app is None:  # the dataclass asks for the default: none given
            return None
        console: Console | None = app.__dict__.get(self.attribute)
        if console is None:
            console = self.make()
            app.__dict__[self.attribute] = console
        return console

    def __set__(self, app: App, console: Console | None) -> None:
        app.__dict__[self.attribute] = console


@dataclass
class App:
    """What every command needs: where the swarm is, and how to print."""

    url: str = "embedded"
    swarm_name: str = DEFAULT_SWARM
    home: Path = DEFAULT_HOME
    json: bool = False
    debug: bool = False
    _swarm: Swarm | None = field(default=None, repr=False)
    out: _ConsoleField = _ConsoleField(_stdout_console)
    err: _ConsoleField = _ConsoleField(_stderr_console)
    # (``finish_uninterrupted``'s signal handlers, put back when the command ends: ``_close``)
    _held: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False)
    _held_signals: bool = field(default=False, repr=False)

    @property
    def settings(self) -> Settings:
        return Settings.from_url(self.url, swarm=self.swarm_name, home=self.home)

    def reach(self) -> list[str]:
        """The global options that reach this swarm from another process: a hook entry an
        installer writes, a command a hook hands an agent (``reach_options``: the URL but for
        one holding a password, the swarm and the home, each given even when it is the
        default)."""
        return reach_options(self.settings)

    @property
    def swarm(self) -> Swarm:
        if self._swarm is None:
            # Imported here: the shell brings redis-py (a quarter of a second), which a
            # command's --help, `prompt` and the commands that never reach the swarm do without.
            from .._client import Swarm

            self._swarm = Swarm(self.settings, cache=self._context_cache())
        return self._swarm

    def _context_cache(self) -> ContextCache:
        """The contexts' cache of every command: in memory, and on disk under the swarm home
        (``context_cache_from_env``), so that the next command, a new process, reads an
        unchanged version from a file checked against its hash instead of the network (a
        worker searches and reads again and again, a process each time)."""
        from .._cache import ContextCache

        spec = context_cache_from_env(self.settings.home)
        return ContextCache(directory=spec.directory, max_disk_bytes=spec.max_bytes)

    def finish_uninterrupted(self) -> None:
        """From now until the command ends (its context closed), a Ctrl-C, SIGTERM or SIGHUP
        is let pass rather than stopping it: for a command whose work is done (a claim that
        returned its lease, a report the swarm took), left only to say so and keep or forget
        its token. Stopped there, it said "nothing was claimed" of a lease it had printed,
        its token kept. It ends as it would have (exit 0), its output whole: the signal came
        after the wait it was meant to stop. A second signal ends it at once, as that signal
        does by default (the last round trips stuck in an outage: the user insists). The main
        thread only (no other takes signals); once is enough."""
        if self._held_signals:
            return
        from ._common import signals  # (it imports this module)

        let_passed: list[int] = []

        def let_pass(number: int, _frame: Any) -> None:
            if not let_passed:
                let_passed.append(number)
                return
            signal.signal(number, signal.SIG_DFL)
            os.kill(os.getpid(), number)

        self._held.enter_context(signals(let_pass, let_pass))
        self._held_signals = True

    def emit(self, data: Any, human: Callable[[], None] | None = None) -> None:
        """Print ``data`` as JSON with --json (``dumps_shown``: no control character a
        terminal acts on, none that reorders a line), else call ``human`` to render it."""
        if self.json or human is None:
            click.echo(dumps_shown(data))
        else:
            human()


pass_app = click.make_pass_decorator(App)


def json_option(fn: F) -> F:
    """``--json`` on a subcommand (also accepted before the subcommand)."""

    def set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            ctx.ensure_object(App).json = True

    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        expose_value=False,
        callback=set_json,
        help="Print machine-readable JSON (schema in docs/cli.md).",
    )(fn)


if TYPE_CHECKING:  # newer clicks type ParamType as a generic; 8.1 (still taken) cannot be
    # subscripted at run time
    _ParamType = click.ParamType[Any, Any]
else:
    _ParamType = click.ParamType


class _AsciiNumber(_ParamType):
    """What the type of every numeric parameter does first (``_Group`` mixes it in): refuse a
    number not written in ASCII digits, which Python's ``int`` and ``float`` read all the same
    (``1_0`` as 10, the Arabic-Indic ``١٠`` and the full-width ``１０`` too), as a usage
    error saying how to write it."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str):
            fraction = isinstance(self, click.types.FloatParamType)
            refused = not_ascii_number(repr(value), value, fraction=fraction)
            if refused is not None:
                self.fail(refused, param, ctx)
        return super().convert(value, param, ctx)


@functools.cache
def _ascii_number_type(kind: type[_ParamType]) -> type[_ParamType]:
    return type(kind.__name__, (_AsciiNumber, kind), {"__doc__": kind.__doc__})


def _ascii_numbers(command: click.Command) -> None:
    """Give each numeric parameter of ``command`` (click's ``int`` and ``float``, their
    ranges, ``_common``'s ``Seconds`` and ``Number``, ...) the check of ``_AsciiNumber``: a copy
    of its type of a subclass that adds it (a type may be shared: click's ``INT`` is one for
    every program), so that its help and its own checks stay as they are."""
    for param in command.params:
        kind = type(param.type)
        if issubclass(kind, click.types.IntParamType | click.types.FloatParamType) and not (
            issubclass(kind, _AsciiNumber)
        ):
            number = copy.copy(param.type)
            number.__class__ = _ascii_number_type(kind)
            param.type = number


def _shown_value(value: str) -> str:
    """``value`` as an error message repeats it: quoted, and if long, its first
    ``SHOWN_VALUE_CHARS`` characters and its length."""
    if len(value) <= LONG_VALUE_CHARS:
        return repr(value)
    return f"{value[:SHOWN_VALUE_CHARS]!r}... ({len(value):,} characters)"


_GIVEN_ARGS = "redis_swarm.given_args"  # (ctx.meta: the words the command line gave)
# A word no sentence of ours holds: a piece of a huge value an error quotes (the core's: an
# option of a huge --url), cut as a whole value is.
_LONG_WORD = re.compile(rf"[^\s']{{{LONG_VALUE_CHARS + 1},}}")


def _shorten_values(exc: click.ClickException, args: Sequence[str]) -> None:
    """Cut each long value of the command line ``args`` that ``exc``'s message repeats (click's
    and ours: ``'...' is not a valid integer``, ``No such command '...'``, ``Got unexpected
    extra argument (...)``) to ``_shown_value``'s form, rather than print all of it."""
    exc.message = _cut_long_values(exc.message, args)  # type: ignore[misc]  # (Final; set once)


def _cut_word(match: re.Match[str]) -> str:
    """A long word cut to its head and its tail (a path's file name is at its end)."""
    word = match[0]
    half = SHOWN_VALUE_CHARS // 2
    return f"{word[:half]}...{word[-half:]} ({len(word):,} characters)"


def _cut_long_values(message: str, args: Sequence[str]) -> str:
    """``message`` with each long value of ``args`` it repeats (as given, or as its repr)
    cut to ``_shown_value``'s form: a click error's, or the core's (a huge --url in a
    ConfigError)."""
    values = set()
    for word in args:
        values.add(word)
        if word.startswith("--") and "=" in word:
            values.add(word.partition("=")[2])
        elif word.startswith("-") and not word.startswith("--"):
            values.add(word[2:])  # (a short option's value written on to it: -cVALUE)
    for value in sorted(values, key=len, reverse=True):
        # (click repeats a value as its repr: one with a newline or a tab is found only so)
        if len(value) > LONG_VALUE_CHARS and (value in message or repr(value) in message):
            shown = _shown_value(value)
            message = message.replace(repr(value), shown).replace(value, shown)
    return message


class _UsageErrorExit1(click.UsageError):
    """A usage error of a command in ``NO_USAGE_EXIT``: shown as click shows one, exit 1."""

    exit_code = EXIT_ERROR


def error_json(kind: str, message: str) -> str:
    """An error as --json says it on stderr: ``{"error": KIND, "message": MESSAGE}`` (the
    core's errors, click's usage errors, an empty claim's exit 3)."""
    return json.dumps({"error": kind, "message": message})


class _JsonUsageError(click.UsageError):
    """A usage error of a command given --json: shown as the core's errors are with --json,
    one JSON object on stderr, ``{"error": "UsageError", "message": ...}`` (click's own text
    and its "Usage:" lines are not JSON); its exit code kept (2; 1 for `swarm hook`)."""

    def show(self, file: Any = None) -> None:
        said = error_json(click.UsageError.__name__, self.format_message())
        click.echo(said, file=file, err=file is None)


class _JsonUsageErrorExit1(_JsonUsageError):
    """A usage error of a command in ``NO_USAGE_EXIT`` given --json: exit 1."""

    exit_code = EXIT_ERROR


# (click 8.2+ shows a group's help, given no subcommand, as a usage error of this class)
_NO_ARGS_IS_HELP: type[Exception] | tuple[()] = getattr(click.exceptions, "NoArgsIsHelpError", ())
# (click 8.4+ raises an unknown subcommand as this class, with its "Did you mean" hint)
_NO_SUCH_COMMAND: type[click.NoSuchCommand] | tuple[()] = getattr(click, "NoSuchCommand", ())


def _json_usage_error(ctx: click.Context, exc: click.ClickException) -> click.ClickException:
    """``exc`` as the root command shows it: a usage error as JSON (``_JsonUsageError``) when
    the command line asks for JSON (--json, before or after the subcommand, read or not yet
    when the error was found), else as click shows it. The one place a usage error turns
    JSON: every one, click's and ours, reaches the root's ``parse_args`` or ``invoke``."""
    if ctx.parent is not None or not isinstance(exc, click.UsageError):
        return exc
    if isinstance(exc, _NO_ARGS_IS_HELP):  # (`swarm task`: its help, text as --help's)
        return exc
    app = ctx.find_object(App)
    given = ctx.meta.get(_GIVEN_ARGS, ())
    words = given[: given.index("--")] if "--" in given else given
    if (app is not None and app.json) or "--json" in words:
        shown = _JsonUsageErrorExit1 if exc.exit_code == EXIT_ERROR else _JsonUsageError
        return shown(exc.format_message(), exc.ctx)
    return exc


_INVOKED_PARAMS = "redis_swarm.invoked_params"  # (ctx.meta: the running command's parameters)


class _Params(dict[str, Any]):
    """A command's parameters as ``INTERRUPTED`` names them: one not known yet (an interrupt
    while its options were parsed, before the command ran) is said by its name, TASK_ID."""

    def __missing__(self, name: str) -> str:
        return name.upper()


class _Command(click.Command):
    """Every subcommand's class (``_Group.command_class``): it keeps its parameters where the
    group that runs it finds them when it is interrupted (``INTERRUPTED``'s {names})."""

    def invoke(self, ctx: click.Context) -> Any:
        ctx.meta[_INVOKED_PARAMS] = ctx.params  # (meta: one dict for a context and its parents)
        return super().invoke(ctx)


class _Group(click.Group):
    """Turns SwarmErrors into one clear line and exit code; a traceback only with --debug.
    Lists each subcommand with the first sentence of its help whole (click cuts it to the
    line with "..."). Its subgroups are of this class too."""

    group_class = type
    command_class = _Command
    # The group's commands not yet imported (``main``'s, ``task``'s): name -> the module that
    # adds it (COMMAND_MODULES in cli/__init__, TASK_MODULES in cli/_tasks).
    lazy: Mapping[str, str] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        _ascii_numbers(cmd)  # (every command and group is added to main or a group below it)
        super().add_command(cmd, name)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            importlib.import_module(self.lazy[cmd_name])
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            if not isinstance(exc, _NO_SUCH_COMMAND):
                raise
            # click draws its "Did you mean" from the commands imported so far: every name
            # instead, the lazy ones too (naming them imports nothing)
            raise type(exc)(
                exc.command_name, possibilities=self.list_commands(ctx), ctx=exc.ctx
            ) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                # No limit: the first sentence whole; the formatter wraps it.
                rows.append((name, command.get_short_help_str(limit=sys.maxsize)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if ctx.parent is None:
            ctx.meta[_GIVEN_ARGS] = list(args)
        try:
            return super().parse_args(ctx, args)
        except click.ClickException as exc:
            _shorten_values(exc, ctx.meta.get(_GIVEN_ARGS, ()))
            hook = ctx.parent is None and self._command_in(args) in NO_USAGE_EXIT
            if hook and isinstance(exc, click.UsageError):  # (`swarm --bogus hook Stop`)
                exc = _UsageErrorExit1(exc.format_message(), exc.ctx)
            raise _json_usage_error(ctx, exc) from None

    def _command_in(self, args: list[str]) -> str | None:
        """The subcommand ``args`` name: the first word that is neither an option nor the
        value of one of this group's options that take a value."""
        valued = {
            name
            for p in self.params
            if isinstance(p, click.Option) and not p.is_flag
            for name in p.opts
        }
        words = iter(args)
        for word in words:
            if word == "--":
                return next(words, None)
            if word in valued:
                next(words, None)
            elif not word.startswith("-"):
                return word
        return None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            _shorten_values(exc, ctx.meta.get(_GIVEN_ARGS, ()))
            hook = ctx.parent is None and ctx.invoked_subcommand in NO_USAGE_EXIT
            if hook and isinstance(exc, click.UsageError):  # (`swarm hook Stop --budget abc`)
                exc = _UsageErrorExit1(exc.format_message(), exc.ctx)
            raise _json_usage_error(ctx, exc) from None
        except Timeout as exc:
            _fail(ctx, exc, EXIT_EMPTY)
        except ValidationError as exc:  # the core refused the input (a name, a size): usage
            _fail(ctx, exc, _usage_code(ctx))
        except SwarmError as exc:
            _fail(ctx, exc, EXIT_ERROR)
        except KeyboardInterrupt:
            said = INTERRUPTED.get((ctx.command.name or "", ctx.invoked_subcommand or ""))
            if said is None:  # (a command that says nothing of its own: click's "Aborted!")
                raise
            said = said.format_map(_Params(ctx.meta.get(_INVOKED_PARAMS, {})))
            from ._common import hold_interrupts  # (it imports this module)

            hold_interrupts()  # (ending now, with exit 1: no second Ctrl-C cuts that short)
            _fail(ctx, SwarmError(said), EXIT_ERROR)
        except (click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError as exc:
            if _stdout_gone():  # else another pipe broke (an agent's stdin): an error
                _end_on_closed_stdout()
            _fail(ctx, exc, EXIT_ERROR)
        except OSError as exc:
            _fail(ctx, _home_problem(ctx, exc) or exc, EXIT_ERROR)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        _whole_stdout()
        _say_our_warnings()
        try:
            with _terminations_interrupt():
                return super().main(*args, **kwargs)
        finally:
            # What is still buffered goes out here, where a reader that left ends the command
            # quietly, rather than at interpreter exit ("Exception ignored ...").
            try:
                sys.stdout.flush()
            except BrokenPipeError:
                _end_on_closed_stdout()
            except (OSError, ValueError):
                pass


@contextlib.contextmanager
def _terminations_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP stop a command as Ctrl-C does (``KeyboardInterrupt``), restored
    when it ends: by default they killed it silently, mid-wait (``timeout 5 swarm task claim
    Q --wait 30``, a terminal closed), a waiting claim's name left on the queue's waiters list
    (the next post gave its token to nobody), where an interrupted wait takes it off and says
    what became of it (``INTERRUPTED``, exit 1). A command that handles them itself
    (``signals``: ``run``, ``ask``, ``finish_uninterrupted``) overrides this while it does. A
    signal not at its default (ignored: ``nohup``; a host's handler) is left as it is."""
    set_here: list[tuple[int, Any]] = []
    for name in TERMINATIONS:
        number = getattr(signal, name, None)  # (no SIGHUP on Windows)
        if number is None:
            continue
        try:
            if signal.getsignal(number) is signal.SIG_DFL:
                set_here.append((number, signal.signal(number, signal.default_int_handler)))
        except ValueError:  # not the main thread: no signal handling
            break
    try:
        yield
    finally:
        for number, before in set_here:
            restore_handler(number, signal.default_int_handler, before)


def restore_handler(number: int, installed: Any, before: Any) -> None:
    """Put back the handler of signal ``number`` that ``installed`` replaced, unless another
    replaced ``installed`` meanwhile: a command that held its signals (``hold_interrupts``,
    ending with its own error line) keeps them held to its end, where restoring the default
    there let a second Ctrl-C or SIGTERM cut that end short."""
    if signal.getsignal(number) is installed:
        signal.signal(number, before)


def _say_our_warnings() -> None:
    """redis-swarm's own warnings (``LibraryReplaced``, a ``TaskDeadLettered`` no command
    collected, ``TlsNotVerified``) are said as a line of the command's, ``warning: ...`` on
    stderr, not as Python's file, line and source, and never made errors
    (``PYTHONWARNINGS=error``): the command goes on with what it did; any other warning as
    Python says it."""
    python_says = warnings.showwarning
    if python_says.__name__ == _SAY_OURS:  # (a second command in this process: set already)
        return
    for ours in (LibraryReplaced, TaskDeadLettered, TlsNotVerified):
        warnings.simplefilter("default", ours)

    def show(message: Warning | str, category: type[Warning], *args: Any, **kw: Any) -> None:
        if not category.__module__.startswith(_PACKAGE):
            python_says(message, category, *args, **kw)
            return
        with contextlib.suppress(OSError, ValueError):  # (stderr gone: nobody to say it to)
            click.echo(f"warning: {printable(str(message))}", err=True)

    show.__name__ = _SAY_OURS
    warnings.showwarning = show


_PACKAGE = __name__.split(".", 1)[0] + "."
_SAY_OURS = "say_redis_swarm_warnings"


def _home_problem(ctx: click.Context, exc: OSError) -> ConfigError | None:
    """A file error on the swarm home, said with its path, where the path came from, and
    what to do (rather than the bare OS error); None: an error elsewhere."""
    app = ctx.find_object(App)
    if app is None or not exc.filename:
        return None
    path = Path(os.fsdecode(exc.filename))
    # (the home, a file in it, or a folder above it that making it needed)
    if path != app.home and app.home not in path.parents and path not in app.home.parents:
        return None
    why = exc.strerror or type(exc).__name__
    given = ctx.find_root().get_parameter_source("home") in (
        ParameterSource.COMMANDLINE,
        ParameterSource.ENVIRONMENT,
    )
    source = f"from --home or {ENV_HOME}" if given else f"the default: no --home or {ENV_HOME}"
    return ConfigError(
        f"cannot use the swarm home {str(app.home)!r} ({source}; where the "
        "embedded server, the lease tokens kept and the context cache live): "
        f"{why} at {str(path)!r}; give --home (or {ENV_HOME}) a folder this user can create "
        "and write, or --url a running server"
    )


def usage_failure(exc: SwarmError) -> NoReturn:
    """End the command with ``exc`` as a bad option (exit 2; 1 for `swarm hook`): one
    ``error:`` line, as every error, found before the swarm is asked."""
    ctx = click.get_current_context()
    _fail(ctx, exc, _usage_code(ctx))


def _usage_code(ctx: click.Context) -> int:
    """The exit code of a usage error: 2, click's, but 1 for the commands in
    ``NO_USAGE_EXIT``."""
    return EXIT_ERROR if ctx.find_root().invoked_subcommand in NO_USAGE_EXIT else EXIT_USAGE


def _fail(ctx: click.Context, exc: BaseException, code: int) -> NoReturn:
    app = ctx.find_object(App)
    if app is not None and app.debug:
        traceback.print_exc()
    message = str(exc) or type(exc).__name__  # (the core's hints are commands: _hints)
    given = [*ctx.find_root().meta.get(_GIVEN_ARGS, ()), os.environ.get(ENV_URL, "")]
    message = _LONG_WORD.sub(_cut_word, _cut_long_values(message, given))
    if app is not None and app.json:
        click.echo(error_json(type(exc).__name__, message), err=True)
    else:
        click.echo(f"error: {printable(message)}", err=True)
    sys.exit(code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--url",
    envvar=ENV_URL,
    default="embedded",
    show_default=True,
    help="Redis URL: embedded, redis://, rediss://, unix://, redis+cluster://, "
    "redis+sentinel:// (env SWARM_URL).",
)
@click.option(
    "--swarm",
    "swarm_name",
    help="Swarm name (env SWARM_NAME; default: default).",
)
@click.option(
    "--home",
    envvar=ENV_HOME,
    # (a str: click makes Path('') of an empty one, the current folder, where an embedded
    # server would then be made)
    type=click.Path(file_okay=False),
    help="Where the embedded server and the context cache live (env SWARM_HOME; default: "
    "~/.local/share/redis-swarm).",
)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(package_name="redis-swarm")
@click.pass_context
def main(
    ctx: click.Context,
    url: str,
    swarm_name: str | None,
    home: str | None,
    as_json: bool,
    debug: bool,
) -> None:
    """redis-swarm: a shared memory and work bus for fleets of AI agents."""
    app = ctx.ensure_object(App)
    # `--home "$UNSET"`: click would take it for the current folder. (An empty SWARM_HOME is
    # refused below, by the rule of the three variables.)
    if ctx.get_parameter_source("home") is ParameterSource.COMMANDLINE and not (home or "").strip():
        usage_failure(
            ConfigError(
                "--home is empty: give the swarm home's folder, or leave it out to use "
                f"{str(DEFAULT_HOME)!r} ({ENV_HOME} if set)"
            )
        )
    app.url, app.home, app.debug = url, Path(home or DEFAULT_HOME).expanduser(), debug
    app.json = app.json or as_json
    # SWARM_NAME is read here, not by click: click takes an empty variable for an unset one.
    # Set but empty, it is a bad option (exit 2; 1 for `swarm hook`), found before the swarm
    # is asked; so is a bad --swarm, whichever way the name came. SWARM_URL and SWARM_HOME
    # alike (click read them, an empty one as unset: the option's default), one rule for the
    # three (``env_value``), but for a SWARM_URL a command reads itself (--url-from-env: it
    # says what is missing its own way).
    try:
        if swarm_name is None:
            swarm_name = env_value(ENV_NAME) or DEFAULT_SWARM
        app.swarm_name = swarm_name
        check_swarm_name(app.swarm_name)
        given = ctx.meta.get(_GIVEN_ARGS, ())
        for param, variable in (("url", ENV_URL), ("home", ENV_HOME)):
            if ctx.get_parameter_source(param) is not ParameterSource.COMMANDLINE and not (
                variable == ENV_URL and URL_FROM_ENV_OPTION in given
            ):
                env_value(variable)
    except SwarmError as exc:
        usage_failure(exc)
    # Validate the URL now, so a bad one is one clear line whatever the subcommand: a bad
    # option's value (--url, or SWARM_URL), found before the swarm is asked (exit 2).
    if ctx.invoked_subcommand not in (None, "prompt"):
        try:
            app.settings  # noqa: B018
        except SwarmError as exc:
            usage_failure(exc)
    ctx.call_on_close(functools.partial(_close, app))


def _close(app: App) -> None:
    try:
        if app._swarm is not None:
            app._swarm.close()
    finally:
        app._held.close()  # (last: the command's connections are closed too)
