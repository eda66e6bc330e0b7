"""What the command modules share: input from files or stdin, times, rendering, completion.

Large inputs are accepted three ways wherever text or JSON is expected: the value itself,
``@path`` (a file), or ``-`` (stdin). Every option that takes a point in time parses it with
``Instant``. Rendering keeps untrusted text out of rich's markup.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import math
import os
import re
import shlex
import signal
import socket
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn, TypeVar

import click
from click.shell_completion import CompletionItem

from .. import _lease_tokens as tokens
from .._codec import MAX_ISO_MS, counted, first_few, foreign_bom, iso, now_ms, readable_number
from .._config import Settings
from .._env import ENV_AGENT, agent_from_env, settings_from_env
from .._errors import ValidationError
from .._hints import PUBLISH_CONTEXT
from .._models import unknown_queues
from .._printable import printable, short  # short: the commands import it from here
from .._validate import (
    MAX_CONTEXT_BYTES,
    MAX_DURATION_S,
    MAX_JSON_DEPTH,
    MAX_PAGE,
    MAX_TASK_DATA_BYTES,
    check_json_depth,
    check_name,
)
from ._app import EXIT_EMPTY, TERMINATIONS, App, error_json, restore_handler

if TYPE_CHECKING:
    # Imported where a table or a bar is drawn: every command's module imports this one, and
    # `swarm --help` imports them all to list them.
    from rich.table import Table
    from rich.text import Text

__all__ = [
    "BIG",
    "Instant",
    "Listing",
    "Seconds",
    "StreamedTable",
    "add_row",
    "agent_option_default",
    "agent_required",
    "ago",
    "all_pages",
    "cell",
    "complete_agents",
    "complete_owners",
    "complete_queues",
    "complete_tasks",
    "each_page",
    "echo_content",
    "empty_stdin",
    "kv_table",
    "listen_options",
    "listing",
    "loads_json",
    "make_table",
    "never_posted",
    "nothing_matched",
    "nothing_to_claim",
    "on_terminal",
    "one_stdin",
    "paging_options",
    "parse_json",
    "print_table",
    "progress",
    "read_bytes",
    "read_text",
    "short",
    "signals",
    "status",
    "stdout_binary",
    "stream_all",
    "task_json",
    "utf8_text",
    "when",
    "writable_output",
]

T = TypeVar("T")

READ_CHUNK = 1024 * 1024
BIG = 4 * 1024 * 1024  # inputs above this show a progress bar (on a terminal)
# The most a `-` or @FILE input is read to unless its option says less: the largest payload
# the swarm stores at all (a context's), so that an endless stream is refused, not read until
# memory runs out. Text given as characters is bounded by UTF8_MAX_BYTES per character.
MAX_INPUT_BYTES = MAX_CONTEXT_BYTES
# The most a task's --data file is read to: the data limit is on its compact JSON, and a file
# written with indentation holds more bytes than that (the core says the exact refusal). On
# purpose: its refusal says both bounds (``_BOUND_NOTES``).
MAX_DATA_FILE_BYTES = 8 * MAX_TASK_DATA_BYTES
# What a refusal past a bound adds, for a bound that is not the payload's own limit.
_BOUND_NOTES = {
    MAX_DATA_FILE_BYTES: (
        f"a task's data is at most {MAX_TASK_DATA_BYTES // 2**20} MiB once compacted (JSON "
        f"without its indentation); a file over {MAX_DATA_FILE_BYTES // 2**20} MiB is not read"
    ),
}
UTF8_MAX_BYTES = 4  # the most bytes UTF-8 writes one character in
ALL_PAGE = 500  # the page a listing's --all asks for, call after call


# --- input


def _number(value: Any) -> float:
    """``value`` as a float; nan when it is none (which every range below refuses)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


class Number(click.types.FloatParamType):
    """A finite number from ``lo`` to ``hi``: click's ``FloatRange`` lets ``nan`` through
    (it compares false with both bounds), which the core would refuse after the parse."""

    def __init__(self, lo: float, hi: float) -> None:
        self.lo, self.hi = lo, hi

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        number = _number(value)
        if not (math.isfinite(number) and self.lo <= number <= self.hi):
            self.fail(f"{value!r} is not a number from {self.lo:g} to {self.hi:g}", param, ctx)
        return number


class Seconds(click.types.FloatParamType):
    """A number of seconds: finite, from ``least`` (0 unless given; above 0 with
    ``above_zero``) to ``most`` (the core's bounds for the option, so that a value it refuses
    is a usage error here), else ``MAX_S``.

    ``nan`` would compare false with every deadline (a pool that never stops idling),
    ``inf`` and ``1e300`` overflow the millisecond timestamps built from them.
    """

    name = "seconds"
    MAX_S = MAX_DURATION_S  # (the core's bound on a duration)

    def __init__(
        self, *, above_zero: bool = False, least: float = 0.0, most: float | None = None
    ) -> None:
        self.above_zero = above_zero
        self.least = least
        self.most = self.MAX_S if most is None else most

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        number = _number(value)
        low_ok = number > 0 if self.above_zero else number >= self.least
        if not (math.isfinite(number) and low_ok and number <= self.most):
            bounds = "above 0" if self.above_zero else f"from {readable_number(self.least)}"
            self.fail(
                f"{value!r} is not a number of seconds {bounds} to "
                f"{readable_number(self.most)}: "
                "give one like 30 or 2.5",
                param,
                ctx,
            )
        return number


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# ASCII digits only: str.isdigit and a bare \d take "٣" and "²" too.
_EPOCH_MS = re.compile(r"\d+", re.ASCII)
_EVENT_ID = re.compile(r"\d+-\d+", re.ASCII)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])", re.ASCII)
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
# The forms are spelled out rather than left to datetime.fromisoformat, which takes more of
# them on newer Pythons: a value the CLI takes on one machine is taken on every other.
_ISO = re.compile(
    r"(\d{4}-\d{2}-\d{2})"
    r"(?:[Tt ](\d{2}:\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?([Zz]|[+-]\d{2}:?\d{2})?)?",
    re.ASCII,
)


if TYPE_CHECKING:  # newer clicks type ParamType as a generic; 8.1 (still taken) cannot be
    # subscripted at run time
    _TimeType = click.ParamType[int | str, Any]
else:
    _TimeType = click.ParamType


class Instant(_TimeType):
    """A point in time, as epoch ms, in each of the ``FORMS`` that every time option takes
    (``swarm findings --since``, ``swarm events --since``); with ``event_ids``, an event's
    stream id (``1700000000000-0``) too, passed on as it is.

    A duration is counted back from this machine's clock; a time before 1970 is 1970."""

    name = "time"
    FORMS = (
        "epoch ms (1796364000000), a duration back from now (90s, 10m, 2h, 1d), or an "
        "ISO-8601 time (2026-12-04T06:00:00Z, 2026-12-04T08:00+02:00; without a zone, as "
        "2026-12-04T06:00 or 2026-12-04, it is this machine's local time)"
    )
    MAX_MS = MAX_ISO_MS  # (the last time ISO-8601 names)
    # Epoch seconds of 2001-09-09 to 5138 read as ms fall in 1970's first three years, when no
    # swarm existed: such a number is refused as the seconds it surely is.
    SECONDS_LIKE = (1_000_000_000, 100_000_000_000)

    def __init__(self, *, event_ids: bool = False) -> None:
        self.event_ids = event_ids

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "ID|TIME" if self.event_ids else "TIME"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> int | str:
        if isinstance(value, int) and not isinstance(value, bool):
            return value  # (a default given as epoch ms)
        text = str(value).strip()
        if self.event_ids and _EVENT_ID.fullmatch(text):
            return text
        if _EPOCH_MS.fullmatch(text):
            if self.SECONDS_LIKE[0] <= int(text) < self.SECONDS_LIKE[1]:
                self.fail(f"{value!r} looks like epoch seconds (as date +%s prints), which as "
                          f"ms would be January 1970 (in ms it is {text}000); {self._forms()}",
                          param, ctx)  # fmt: skip
            if int(text) > self.MAX_MS:
                self.fail(f"{value!r} is past the year 9999 as epoch ms; {self._forms()}",
                          param, ctx)  # fmt: skip
            return int(text)
        duration = _DURATION.fullmatch(text)
        if duration:
            back = float(duration[1]) * _UNIT_MS[duration[2]]
            return max(0, now_ms() - int(min(back, self.MAX_MS)))
        stamp = _ISO.fullmatch(text)
        if stamp is None:
            self.fail(f"{value!r} is not a time: {self._forms()}", param, ctx)
        return self._iso_ms(stamp, param, ctx)

    def _forms(self) -> str:
        prefix = "give an event id (1700000000000-0), " if self.event_ids else "give "
        return prefix + self.FORMS

    def _iso_ms(
        self, stamp: re.Match[str], param: click.Parameter | None, ctx: click.Context | None
    ) -> int:
        day, clock, seconds, fraction, zone = stamp.groups()
        text = f"{day}T{clock or '00:00'}:{seconds or '00'}.{(fraction or '').ljust(6, '0')}"
        if zone:
            zone = "+00:00" if zone.upper() == "Z" else zone
            text += zone if ":" in zone else f"{zone[:3]}:{zone[3:]}"
        try:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.astimezone()  # a naive time is this machine's local time
        except (ValueError, OverflowError, OSError):
            self.fail(f"{stamp[0]!r} names no real date and time (a month 1-12, a day of "
                      f"it, hours 0-23, minutes and seconds 0-59); {self._forms()}",
                      param, ctx)  # fmt: skip
        return max(0, min((moment - _EPOCH) // timedelta(milliseconds=1), self.MAX_MS))


def one_stdin(*inputs: tuple[str, str | None]) -> None:
    """Refuse, as a usage error, two of ``inputs`` (a name and the value given) that are both
    ``-``: stdin is read once, so the second would read it empty."""
    reading = [name for name, value in inputs if value == "-"]
    if len(reading) > 1:
        raise click.UsageError(
            f"{' and '.join(reading)} cannot both read stdin (-): give one inline or as @FILE"
        )


def never_posted(app: App, queues: Sequence[str]) -> str | None:
    """What the core says of those of ``queues`` no task was ever posted to (a misspelt
    name finds nothing, ever: ``unknown_queues``), naming the queues there are; None when
    each was posted to. `task claim`, `task wait --queue` and `swarm run` say it."""
    return unknown_queues(queues, app.swarm.queue_stats())  # every queue ever posted to


def nothing_to_claim(app: App, queues: Sequence[str]) -> NoReturn:
    """End a claim (`task claim`, `swarm run`) that got nothing: exit 3, saying so on stderr,
    and naming the queues there are when one asked for was never posted to."""
    message = f"nothing to claim in {', '.join(queues)}"
    unknown = never_posted(app, queues)
    if unknown is not None:
        message += f": {unknown}"
    if app.json:
        click.echo(error_json("Empty", message), err=True)
    else:
        click.echo(printable(message), err=True)
    raise click.exceptions.Exit(EXIT_EMPTY)


def empty_stdin(what: str, thing: str, *, otherwise: str) -> click.BadParameter:
    """The usage error of an option or argument given as ``-`` when stdin had nothing: the
    program feeding it failed, or nothing was piped at all (a terminal's Ctrl-D)."""
    return click.BadParameter(
        f"stdin was empty: pipe {thing} into it (PRODUCER | swarm ..., or swarm ... < FILE), "
        f"or give it {otherwise}",
        param_hint=what,
    )


def read_bytes(
    source: str,
    app: App | None = None,
    *,
    what: str = "input",
    thing: str = "the input",
    otherwise: str = "as a file path",
    limit: int = MAX_INPUT_BYTES,
) -> bytes:
    """The bytes of a file path, or of stdin for ``-`` (empty stdin: a usage error saying
    to pipe ``thing``, or to give it ``otherwise``), with a progress bar when big. At most
    ``limit`` bytes: one more is read only to refuse it (an endless stream, /dev/zero or a
    producer that never stops, is refused there instead of filling memory)."""
    if not source:  # ("@" alone, or an empty --jsonl: Path("") is the current folder)
        raise click.BadParameter(
            f"the file's path is empty: give the path of a file holding {thing}", param_hint=what
        )
    if source == "-":
        stream: IO[bytes] = sys.stdin.buffer
        data = _read_stream(stream, None, app, f"reading {what} from stdin", limit)
        if data is None:
            raise _too_large("stdin", what, limit)
        if not data:
            raise empty_stdin(what, thing, otherwise=otherwise)
        return data
    path = Path(source).expanduser()
    try:
        size = path.stat().st_size
        if size > limit:  # refused before reading (a device's size is 0: read to the bound)
            raise _too_large(source, what, limit)
        with path.open("rb") as stream:
            read = _read_stream(stream, size or None, app, f"reading {path.name}", limit)
    except FileNotFoundError:
        raise click.BadParameter(f"no such file: {source}", param_hint=what) from None
    except IsADirectoryError:
        raise click.BadParameter(f"{source} is a directory, not a file", param_hint=what) from None
    except PermissionError:
        raise click.BadParameter(f"cannot read {source}: permission denied") from None
    except OSError as exc:  # a name too long, a loop of links, a device that fails to read
        raise click.BadParameter(
            f"cannot read {short(source, 200)}: {exc.strerror or exc}: give the path of a "
            "readable file",
            param_hint=what,
        ) from None
    if read is None:  # it grew while read, or is a device or pipe that never ends
        raise _too_large(source, what, limit)
    return read


def _too_large(source: str, what: str, limit: int) -> click.BadParameter:
    note = _BOUND_NOTES.get(limit)
    return click.BadParameter(
        f"{printable(source)} is larger than {limit:,} bytes, the most {what} "
        f"{f'reads ({note})' if note else 'takes'}: shorten it, "
        f"or publish the material as a context {PUBLISH_CONTEXT} and refer to it by name",
        param_hint=what,
    )


def _read_stream(
    stream: IO[bytes], size: int | None, app: App | None, label: str, limit: int
) -> bytes | None:
    """``stream``'s bytes, or None once more than ``limit`` of them came (read no further)."""
    chunks: list[bytes] = []
    total = 0
    with progress(app, label, size, min_size=BIG) as advance:
        while True:
            chunk = stream.read(min(READ_CHUNK, limit + 1 - total))
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                return None
            chunks.append(chunk)
            advance(len(chunk))
    return b"".join(chunks)


_INLINE = "inline or as @FILE"


def read_text(
    value: str,
    app: App | None = None,
    *,
    what: str = "text",
    thing: str = "the text",
    max_chars: int | None = None,
    max_bytes: int = MAX_INPUT_BYTES,
) -> str:
    """``value`` itself, the content of the file ``@path``, or stdin for ``-`` (``thing``:
    what to pipe, named when stdin is empty); read to at most ``max_bytes``, or the bytes
    ``max_chars`` characters may take, when the text has such a limit."""
    if value == "-" or value.startswith("@"):
        limit = max_bytes if max_chars is None else UTF8_MAX_BYTES * max_chars
        source = value if value == "-" else value[1:]
        try:
            data = read_bytes(source, app, what=what, thing=thing, otherwise=_INLINE, limit=limit)
        except click.BadParameter:
            if value == "-" or os.path.lexists(Path(source).expanduser()):
                raise
            # (no such file: maybe a text that begins with '@', "@alice please review")
            raise click.BadParameter(
                f"no such file: {source} (a value beginning with '@' names a file to read; "
                "to give text that begins with '@', pipe it in and give - in its place: "
                "echo '@...' | swarm ... -)",
                param_hint=what,
            ) from None
        return utf8_text(data, value if value == "-" else value[1:], what=what)
    try:  # (bytes of the command line that are not UTF-8 arrive as lone surrogates)
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise click.BadParameter(
            "is not UTF-8 text: give it as UTF-8 (or in a UTF-8 file, as @FILE)", param_hint=what
        ) from None
    return value


def utf8_text(data: bytes, source: str, *, what: str) -> str:
    """``data``, read from ``source`` (a path, or ``-`` for stdin), as UTF-8 text; a UTF-8
    byte order mark before it is dropped (an editor's mark, no part of the text). Text in
    another encoding is a usage error naming the file, where it stops being UTF-8, and what
    to do."""
    named = "stdin" if source == "-" else printable(source)
    bom = foreign_bom(data)
    if bom is not None:
        raise click.BadParameter(
            f"{named} is not UTF-8 text: it begins with {bom}: save it as UTF-8",
            param_hint=what,
        )
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = skip + exc.start
        raise click.BadParameter(
            f"{named} is not UTF-8 text (byte 0x{data[at]:02X} at offset {at} is not UTF-8): "
            "save it as UTF-8",
            param_hint=what,
        ) from None


def parse_json(
    value: str,
    app: App | None = None,
    *,
    what: str = "JSON",
    thing: str = "the JSON",
    max_bytes: int = MAX_INPUT_BYTES,
) -> Any:
    """Parse JSON given inline, as ``@path`` or as ``-`` (stdin), read to at most
    ``max_bytes`` (the payload's own limit, where it has one); a usage error if malformed,
    or if stdin or the file held nothing but blanks (said so, not as malformed JSON)."""
    text = read_text(value, app, what=what, thing=thing, max_bytes=max_bytes)
    if not text.strip() and value == "-":
        raise empty_stdin(what, thing, otherwise=_INLINE)
    if not text.strip() and value.startswith("@"):
        raise click.BadParameter(f"{value[1:]} is empty: put {thing} in it", param_hint=what)
    parsed = loads_json(text, what=what)
    json.loads(text, object_pairs_hook=lambda pairs: _one_of_each_key(pairs, what))
    return parsed


def _one_of_each_key(pairs: list[tuple[str, Any]], what: str) -> dict[str, Any]:
    """An object of JSON given on the command line, refused when it names a key twice (JSON
    keeps the last silently: {"a": 1, "a": 2} was taken as {"a": 2})."""
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise click.BadParameter(
                f"names the key {json.dumps(key, ensure_ascii=False)} twice: give each key once",
                param_hint=what,
            )
        seen.add(key)
    return dict(pairs)


def loads_json(text: str, *, what: str = "JSON", where: str = "") -> Any:
    """The one JSON parser of the CLI's inputs: a one-line usage error when ``text`` is not
    JSON or is nested deeper than payloads may be (never a RecursionError); ``where`` (like
    "line 3 ") says which part of the input it was."""
    try:
        check_json_depth(where.strip() or "the value", text)
        return json.loads(text, parse_constant=_not_json, parse_float=_finite)
    except ValidationError as exc:
        raise click.BadParameter(str(exc), param_hint=what) from None
    except RecursionError:  # the depth check counts brackets; this is its backstop
        message = f"{where}is nested too deeply ({MAX_JSON_DEPTH} levels at most)"
        raise click.BadParameter(message, param_hint=what) from None
    except ValueError as exc:
        raise click.BadParameter(f"{where}is not valid JSON ({exc})", param_hint=what) from None


def _not_json(name: str) -> Any:
    # Python's parser takes NaN and Infinity, which JSON has no words for: refused here, at
    # the edge, as any other malformed input (the core would refuse them later, as an error).
    raise ValueError(f"{name} is not a JSON value; use a finite number or null")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e999: as far from a number as Infinity
        raise ValueError(f"{text} is too large for a number; use a finite number or null")
    return number


def agent_required(what: str) -> Callable[[click.Context, click.Parameter, Any], str]:
    """The callback of a required option that defaults to SWARM_AGENT: a usage error naming
    it when neither is given. (``required=True`` never fires there: click checks only for a
    missing default, and this default is a function that may return None.)"""

    def check(ctx: click.Context, param: click.Parameter, value: Any) -> str:
        if not value:
            option = param.opts[0] if param.opts else param.name
            raise click.UsageError(f"name {what} with {option} (or set SWARM_AGENT)", ctx)
        return str(value)

    return check


# --- output


def task_json(task: Any) -> dict[str, Any]:
    """A task's JSON: its record (with ``token`` only when claim returned it)."""
    data: dict[str, Any] = task.to_dict()
    return data


def print_table(app: App, renderable: Any) -> None:
    """Print a table: fitted to a terminal; at its natural width into a pipe or file, so
    that nothing is cut or folded for the program reading it."""
    if not app.out.is_terminal:
        app.out.width = 4096
    app.out.print(renderable)


def make_table(*columns: str, title: str | None = None) -> Table:
    from rich import box
    from rich.table import Table

    table = Table(
        title=title,
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for name in columns:
        if name in ("id", "task", "finding", "agent", "owner", "version", "queue", "worker"):
            table.add_column(name, no_wrap=True, overflow="fold")
        else:
            table.add_column(name, overflow="fold")
    return table


def cell(value: Any) -> Text:
    """A table cell: plain text, never interpreted as rich markup, its control characters
    shown as escapes."""
    from rich.text import Text

    return Text(_cell_text(value), style="dim" if value is None else "")


def add_row(table: Table, *values: Any) -> None:
    table.add_row(*(cell(v) for v in values))


def _cell_text(value: Any) -> str:
    """What ``cell`` shows of ``value``, as plain text."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    if not isinstance(value, str):
        value = str(getattr(value, "value", value))
    return printable(value)


def _wrapped(text: str, width: int) -> list[str]:
    """``text`` on lines of at most ``width`` cells, broken between words, and inside a word
    only where one is longer than a line (as a rich table folds a cell)."""
    from rich.cells import cell_len

    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        joined = f"{line} {word}" if line else word
        if cell_len(joined) <= width:
            line = joined
            continue
        if line:
            lines.append(line)
        line = ""
        for char in word:  # (a word longer than a line: cut where the line ends)
            if cell_len(line + char) > width:
                lines.append(line)
                line = ""
            line += char
    lines.append(line)
    return lines


class StreamedTable:
    """The rows of a listing printed page by page as they come (``--all``), in the columns
    and the look of ``make_table`` (a header, then one line a row, 3 spaces between
    columns), so that a listing of 50,000 rows starts at once and holds one page at a time.

    A rich ``Table`` measures every cell of every row before printing its first line, then
    wraps, pads and crops each cell (about 1 ms a row: 50 s for 50,000); this pads plain
    text. The widths are those of the first page, widened for a later page's wider cell
    (from that page on). On a terminal the last column folds onto lines of its own, as the
    table's does; into a pipe or a file every line is whole."""

    GAP = "   "

    def __init__(self, app: App, *columns: str) -> None:
        self.app = app
        self.columns = columns
        self.widths = [0] * len(columns)
        self.rows = 0

    def page(self, rows: Iterable[Sequence[Any]]) -> None:
        """Print ``rows`` (values as ``add_row`` takes them), the header before the first."""
        from rich.cells import cell_len

        texts = [[_cell_text(v) for v in row] for row in rows]
        if not texts:
            return
        lengths = [[cell_len(t) for t in row] for row in texts]
        for row_lengths in lengths:
            self.widths = [max(w, n) for w, n in zip(self.widths, row_lengths, strict=True)]
        lines: list[str] = []
        if not self.rows:
            self.widths = [
                max(w, cell_len(c)) for w, c in zip(self.widths, self.columns, strict=True)
            ]
            lines += self._header()
        fold = self._fold_width()
        for row, row_lengths in zip(texts, lengths, strict=True):
            lines += self._line(row, row_lengths, fold)
        self.rows += len(texts)
        click.echo("\n".join(lines))

    def _header(self) -> list[str]:
        header = self._join(list(self.columns), [len(c) for c in self.columns])
        wide = sum(self.widths) + len(self.GAP) * (len(self.widths) - 1)
        if self.app.out.is_terminal:  # (a rule wider than the screen would wrap)
            wide = min(wide, self.app.out.width - 1)
            header = click.style(header, bold=True)
        rule = " " + "─" * wide
        return [header, rule]

    def _fold_width(self) -> int | None:
        """The cells of the last column fit on a terminal line (None: not a terminal, or one
        too narrow to fold into: its lines wrap)."""
        if not self.app.out.is_terminal:
            return None
        room = (
            self.app.out.width - 1 - sum(self.widths[:-1]) - len(self.GAP) * (len(self.widths) - 1)
        )
        return room if room >= 10 else None

    def _join(self, texts: list[str], lengths: list[int]) -> str:
        padded = [t + " " * (w - n) for t, n, w in zip(texts, lengths, self.widths, strict=True)]
        return (" " + self.GAP.join(padded)).rstrip()

    def _line(self, row: list[str], lengths: list[int], fold: int | None) -> list[str]:
        if fold is None or lengths[-1] <= fold:
            return [self._join(row, lengths)]
        from rich.cells import cell_len

        pieces = _wrapped(row[-1], fold)
        blank = [""] * (len(row) - 1)
        lines = [self._join([*row[:-1], pieces[0]], [*lengths[:-1], cell_len(pieces[0])])]
        lines += [self._join([*blank, p], [0] * len(blank) + [cell_len(p)]) for p in pieces[1:]]
        return lines


def kv_table(pairs: Iterable[tuple[str, Any]]) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in pairs:
        if isinstance(value, dict | list):
            value = json.dumps(value, ensure_ascii=False)
        table.add_row(Text(printable(key)), cell(value))
    return table


def when(ms: int | None) -> str | None:
    """An epoch-ms timestamp for people: ISO-8601 UTC, and how long ago."""
    if ms is None:
        return None
    return f"{iso(ms)} ({ago(ms)})"


def ago(ms: int | None) -> str:
    if ms is None:
        return "-"
    delta = (now_ms() - ms) / 1000
    future = delta < 0
    delta = abs(delta)
    if delta < 60:
        text = f"{delta:.0f}s"
    elif delta < 3600:
        text = f"{delta / 60:.0f}m"
    elif delta < 86400:
        text = f"{delta / 3600:.1f}h"
    else:
        text = f"{delta / 86400:.1f}d"
    return f"in {text}" if future else f"{text} ago"


@contextlib.contextmanager
def signals(
    on_sigint: Callable[[int, Any], None], on_sigterm: Callable[[int, Any], None]
) -> Iterator[None]:
    """SIGINT and SIGTERM handled by these while the block runs, restored afterwards unless a
    handler held them meanwhile (``restore_handler``; none outside the main thread, where
    Python cannot install them). SIGHUP (the terminal or the
    SSH session closed) is a SIGTERM: by default it ended the process at once, and the agents
    it had started, in process groups of their own, ran on (and spent) without it."""
    hangup = getattr(signal, "SIGHUP", None)  # (not on Windows)
    try:
        old_int = signal.signal(signal.SIGINT, on_sigint)
        old_term = signal.signal(signal.SIGTERM, on_sigterm)
        old_hup = signal.signal(hangup, on_sigterm) if hangup is not None else None
    except ValueError:  # not the main thread: no signal handling
        yield
        return
    try:
        yield
    finally:
        restore_handler(signal.SIGINT, on_sigint, old_int)
        restore_handler(signal.SIGTERM, on_sigterm, old_term)
        if hangup is not None:
            restore_handler(hangup, on_sigterm, old_hup)


def hold_interrupts() -> None:
    """Ignore Ctrl-C, SIGTERM and SIGHUP from now on (main thread only): for a command that
    was interrupted, took back what it had started and now ends with its own exit code and
    error line, which a second Ctrl-C must not turn into a death by SIGINT (exit 130)."""
    for name in ("SIGINT", *TERMINATIONS):
        number = getattr(signal, name, None)  # (no SIGHUP on Windows)
        if number is not None:
            with contextlib.suppress(ValueError):  # not the main thread
                signal.signal(number, signal.SIG_IGN)


@dataclass(frozen=True)
class Listing:
    """What a listing command shows: the records, the cursor to go on from, and the ids of
    the records stored unreadable (left out, named)."""

    items: list[Any]
    cursor: str | None
    corrupt: list[str]

    def to_json(self, items: list[Any] | None = None) -> dict[str, Any]:
        return {"items": self.items if items is None else items, "cursor": self.cursor,
                "corrupt": self.corrupt}  # fmt: skip

    def footer(self) -> None:
        """The notes after the table, on stderr: more to list, records left out."""
        if self.cursor:
            click.echo(f"more: --cursor {self.cursor}", err=True)
        if self.corrupt:
            ids = printable(first_few(self.corrupt, 10))
            left_out = counted(len(self.corrupt), "corrupt record")
            click.echo(
                f"left out {left_out}: {ids} (swarm doctor counts them; rewrite or delete each "
                "from Redis)",
                err=True,
            )


def nothing_matched(thing: str, filters: Sequence[tuple[str, Any]]) -> str:
    """What a listing that found nothing says on stderr, rather than an empty table: no
    ``thing`` matched the filters given (``filters``: each option and its value, None when
    not given), or there is no ``thing`` to list at all."""
    given = [
        f"{option} {shlex.quote(str(value))}" for option, value in filters if value is not None
    ]
    return f"no {thing} matched {' '.join(given)}" if given else f"no {thing} to list"


F = TypeVar("F", bound=Callable[..., Any])


def paging_options(command: F) -> F:
    """A paged listing's ``--limit``, ``--cursor`` and ``--all`` (handed to ``listing``)."""
    command = click.option("--all", "all_", is_flag=True, help="Follow the cursor to the end.")(
        command
    )
    command = click.option("--cursor", help="Continue a previous listing (its `cursor`).")(command)
    limit = click.IntRange(1, MAX_PAGE)  # the most one page of a listing holds
    return click.option(
        "--limit", type=limit, default=50, show_default=True, help="The most rows a page holds."
    )(command)


def listen_options(
    *, port: int, token_env: str, token_help: str, only: str = ""
) -> Callable[[F], F]:
    """``--host``, ``--port`` and ``--token`` of a face that serves HTTP (``only``: a prefix
    such as ``"HTTP: "`` where the command serves HTTP only on request). The token is checked
    by ``_web.require_token_off_loopback`` (or made, by ``swarm mcp``)."""

    def text(help_: str) -> str:
        return only + help_[0].lower() + help_[1:] if only else help_

    def add(command: F) -> F:
        command = click.option(
            "--token", envvar=token_env, help=text(f"{token_help} (env {token_env}).")
        )(command)
        command = click.option(
            "--port",
            default=port,
            show_default=True,
            type=click.IntRange(0, 65535),
            help=text("Port to listen on (TCP)."),
        )(command)
        return click.option(
            "--host",
            default="127.0.0.1",
            show_default=True,
            callback=_listen_host,
            help=text("Address to listen on."),
        )(command)

    return add


def _listen_host(ctx: click.Context, _param: click.Parameter, host: str) -> str:
    """A ``--host`` that names an address: an empty one (which would listen on every
    interface) is a usage error, whichever face serves."""
    if not host.strip():
        raise click.UsageError(
            "--host is empty: give the address to listen on, 127.0.0.1 (this machine only, "
            "the default) or 0.0.0.0 (every interface, with a token)",
            ctx,
        )
    return host


def listing(
    fetch: Callable[[str | None, int], Any], limit: int, cursor: str | None, all_: bool
) -> Listing:
    """One page of ``limit`` from ``cursor``, or (``all_``) every page to the end."""
    if not all_:
        page = fetch(cursor, limit)
        return Listing(list(page.items), page.cursor, list(page.corrupt))
    items: list[Any] = []
    corrupt: list[str] = []
    for page in each_page(fetch):
        items += page.items
        corrupt += page.corrupt
    return Listing(items, None, corrupt)


def each_page(fetch: Callable[[str | None, int], Any]) -> Iterator[Any]:
    """The pages of a listing from its start to its end, 500 a page, as they come: what
    ``listing`` gathers for ``--all``, one page held at a time (``StreamedTable``)."""
    cursor: str | None = None
    while True:
        page = fetch(cursor, ALL_PAGE)
        yield page
        cursor = page.cursor
        if not cursor:
            return


def stream_all(
    app: App,
    fetch: Callable[[str | None, int], Any],
    columns: Sequence[str],
    row: Callable[[Any], Sequence[Any]],
) -> int:
    """A listing's ``--all`` for people: each page printed as it comes (``StreamedTable``,
    ``row`` giving a record's cells under ``columns``), then the notes after a table
    (``Listing.footer``: the records left out). How many records it printed (none is kept)."""
    table = StreamedTable(app, *columns)
    corrupt: list[str] = []
    for page in each_page(fetch):
        table.page([row(item) for item in page.items])
        corrupt += page.corrupt
    Listing([], None, corrupt).footer()
    return table.rows


def all_pages(fetch: Callable[[str | None], Any], limit: int | None) -> Iterator[Any]:
    """Follow a paged listing's cursor until ``limit`` items (None: all)."""
    cursor: str | None = None
    count = 0
    while True:
        page = fetch(cursor)
        for item in page.items:
            yield item
            count += 1
            if limit is not None and count >= limit:
                return
        cursor = page.cursor
        if not cursor:
            return


# --- progress (stderr, on a terminal only)


@contextlib.contextmanager
def progress(
    app: App | None, label: str, total: int | None, *, min_size: int = BIG
) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr while the block runs; yields ``advance(n_bytes)``.

    Shown only when stderr is a terminal and the transfer is big (or of unknown size).
    """
    console = app.err if app is not None else None
    if console is None or not console.is_terminal or (total is not None and total < min_size):
        yield lambda _n: None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )

    bar = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    with bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


@contextlib.contextmanager
def status(app: App | None, label: str, size: int | None = None) -> Iterator[None]:
    """A spinner on stderr during one long call (terminal only, big transfers only)."""
    console = app.err if app is not None else None
    if console is None or not console.is_terminal or (size is not None and size < BIG):
        yield
        return
    with console.status(label):
        yield


# --- shell completion (cheap, silent: a failure completes nothing)


def _completion_settings(ctx: click.Context) -> Settings | None:
    root = ctx.find_root()
    params = root.params
    settings = settings_from_env(
        url=params.get("url"), swarm=params.get("swarm_name"), home=params.get("home")
    )
    if settings.kind == "embedded":
        from .._embedded import EmbeddedServer

        if not EmbeddedServer(settings.home).is_running():
            return None  # never start a server to complete a word
    return settings.replace(retries=0, connect_timeout=0.5, socket_timeout=1.0)


def _complete(
    fetch: Callable[[Any], Sequence[tuple[str, str | None]]],
) -> Callable[[click.Context, click.Parameter, str], list[CompletionItem]]:
    def complete(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[Any]:
        try:
            settings = _completion_settings(ctx)
            if settings is None:
                return []
            from .._client import Swarm

            with Swarm(settings) as swarm:
                items = fetch(swarm)
        except Exception:
            return []
        return [CompletionItem(v, help=h) for v, h in items if v.startswith(incomplete)]

    return complete


complete_queues = _complete(lambda s: [(q, None) for q in sorted(s.queue_stats())])
complete_tasks = _complete(
    lambda s: [(t.id, short(t.description, 40)) for t in s.list_tasks(limit=200).items]
)
complete_agents = _complete(lambda s: [(a.id, a.role) for a in s.agents()])
complete_owners = _complete(lambda s: [(c.owner, c.source) for c in s.contexts()])


def on_terminal() -> bool:
    """True when stdout is a terminal (a person reads it), not a pipe or a file."""
    return sys.stdout.isatty()


def echo_content(text: str, *, nl: bool = True) -> None:
    """Print stored content (a context read or searched, an answer, a message's body): exact
    into a pipe or a file (what agents and scripts get: ``color=True``, or click would strip
    what looks like an ANSI escape there, changing the bytes and their offsets), its control
    characters escaped on a terminal (see ``printable``)."""
    click.echo(printable(text) if on_terminal() else text, nl=nl, color=True)


def stdout_binary() -> IO[bytes]:
    return sys.stdout.buffer


def agent_option_default() -> str | None:
    """The agent SWARM_AGENT names (unset or empty: None), the default of every option that
    names the caller (``--worker``, ``--from``, ``--owner``, ...). A value no agent can be
    named is a usage error that says it came from SWARM_AGENT: the command line holds no
    such value to blame."""
    name = agent_from_env()
    if name is not None:
        try:
            check_name(ENV_AGENT, name)
        except ValidationError as exc:
            raise click.UsageError(
                f"{exc}: set {ENV_AGENT} to your agent's name (or unset it), or name the "
                "agent with the command's option"
            ) from None
    return name


def host_worker() -> str:
    """The worker name of a claim given no --worker and no SWARM_AGENT: one per host."""
    host = "".join(c if c.isalnum() or c in "._-" else "-" for c in socket.gethostname())
    return f"worker-{host[:40] or 'host'}"


def default_worker() -> str:
    """This shell's worker: SWARM_AGENT, else the host's (``host_worker``), as a claim
    names it."""
    return agent_option_default() or host_worker()


def own_kept_token(
    settings: Settings, worker: str, task: str, attempt: int | None = None
) -> str | None:
    """The token of ``task`` that ``worker``'s claim on this machine kept (of its
    ``attempt``, when given: an earlier claim's renews nothing), else None. Only that
    worker's: another worker's token would settle or renew that worker's lease in this
    one's name, which the fencing token is there to tell apart."""
    kept = tokens.known(settings, worker).get(task)
    if kept is None or (attempt is not None and kept.partition(".")[0] != str(attempt)):
        return None
    return kept


def writable_output(output: str, option: str) -> None:
    """Refuse a file to write (option ``option``, as ``--output``) that cannot be written,
    before the work that fills it (a big context's fetch, a long report: they take a
    while), saying what to do."""
    path = Path(output)
    parent = path.parent
    if not parent.is_dir():
        raise click.BadParameter(
            f"cannot write {output}: the directory {parent} does not exist: create it "
            f"(mkdir -p {shlex.quote(str(parent))}) or pick another path",
            param_hint=option,
        )
    if path.is_dir():
        raise click.BadParameter(
            f"cannot write {output}: it is a directory: name a file in it", param_hint=option
        )
    exists = path.exists()
    if (exists and not os.access(path, os.W_OK)) or (
        not exists and not os.access(parent, os.W_OK | os.X_OK)
    ):
        what = output if exists else f"a file in {parent}"
        raise click.BadParameter(
            f"cannot write {output}: no permission to write {what}: pick another path",
            param_hint=option,
        )
