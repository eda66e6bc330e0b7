"""The plan file of ``swarm pipeline run``: TOML, read with ``tomllib``, checked whole before
anything runs. Every problem is reported at once, each with the key and the line at fault
(``tomllib`` gives lines for syntax errors only: the others are located in the text).

See docs/pipeline.md for the reference; ``Plan`` is what the rest of the pipeline reads.
"""

from __future__ import annotations

import codecs
import dataclasses
import datetime
import glob
import json
import math
import os
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .._codec import readable_number
from .._config import Settings
from .._errors import ConfigError, ValidationError
from .._printable import in_a_list
from .._protocol import Limits
from .._runner import check_command, check_program, missing_program
from .._validate import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_TIMEOUT_S,
    MAX_DESCRIPTION_CHARS,
    MAX_NAME,
    check_json_depth,
    check_label,
    check_name,
    too_deep,
)
from .names import checked_name, plan_owner_of, queue_clash
from .worker_url import url_env_problem, worker_settings

__all__ = [
    "URL_ENV",
    "WORKER_URL_OPTION",
    "AgentSpec",
    "ContextSpec",
    "PassChange",
    "PassSpec",
    "Plan",
    "TaskItem",
    "agent_settings",
    "budget_usd",
    "check_programs",
    "check_task_item",
    "context_file_text",
    "env_name",
    "load_plan",
    "parse_plan",
    "pass_changes",
    "plan_text",
    "task_label",
    "unenforced_budget",
    "why_no_cost",
]

MAX_PASSES = 100
MAX_TASKS_PER_PASS = 10_000
DEFAULT_PLANNED_TASKS = 10
MAX_LABEL = 200  # a pass name, inside the task's pass label with the pipeline's name


# The least lease_s a planner takes from the workers' by default: it is renewed every third
# of it while the planner runs, and one renewal held up (a socket timeout, a GC pause, a
# laptop asleep) must not let another run take the planning task over and pay a second planner.
PLANNER_LEASE_MIN_S = 60
# The lease_s of [workers] and [synthesizer] when the plan gives none. A run renews its
# workers' leases every third of it while their agents work, so a longer one buys nothing
# while the run lives, and a killed run's tasks hold a rerun for as long as it lasts (600 s
# before). As long as the planner's floor, for the reason that floor has.
DEFAULT_LEASE_S = PLANNER_LEASE_MIN_S
# DEFAULT_TIMEOUT_S (``swarm run``'s, from _validate) is the timeout_s of an agent whose
# plan gives none, whatever its lease_s: a lease is renewed every third of it while the agent
# runs (the workers' and the planner's: ``LeaseRenewal``; the synthesizer holds none), so it
# is no time limit. (Before, a lease_s given was also the timeout_s: a plan that relied on it
# sets timeout_s.)


@dataclass(frozen=True)
class AgentSpec:
    """How to run one kind of agent (``[workers]``, ``[planner]``, ``[synthesizer]``)."""

    exec: str
    model: str | None = None  # recorded on what it writes (default: what its output names)
    concurrency: int = 1
    lease_s: int = DEFAULT_LEASE_S
    timeout_s: float = DEFAULT_TIMEOUT_S  # the most one run may take, whatever lease_s is
    # ``[workers]`` only: the environment variable holding the Redis URL (a worker user's)
    # that every agent the run starts reaches the swarm with (``agent_settings``); None:
    # the run's own URL. A name, not the URL: the plan is stored in the swarm as written.
    url_env: str | None = None


@dataclass(frozen=True)
class ContextSpec:
    """A context published before pass 1: the files matched by ``paths``, in order."""

    owner: str
    paths: tuple[str, ...]
    files: tuple[Path, ...]  # what the paths matched, resolved, each once


@dataclass(frozen=True)
class TaskItem:
    description: str
    data: Any = None
    # Where the plan file writes it (what an error about it names); not part of what it is.
    line: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class PassSpec:
    """A pass: static ``tasks``, or a ``plan`` instruction for the planner (at most
    ``max_tasks`` of its tasks are kept)."""

    name: str
    context: str | None
    tasks: tuple[TaskItem, ...] = ()
    plan: str | None = None
    max_tasks: int | None = None

    @property
    def planned(self) -> bool:
        return self.plan is not None


@dataclass(frozen=True)
class Plan:
    """A checked plan file."""

    name: str
    path: Path
    workers: AgentSpec
    synthesizer: AgentSpec
    passes: tuple[PassSpec, ...]
    question: str | None = None
    planner: AgentSpec | None = None
    contexts: tuple[ContextSpec, ...] = ()
    max_cost_usd: float | None = None
    max_tasks: int | None = None  # tasks claimed over the whole pipeline
    max_attempts: int = DEFAULT_MAX_ATTEMPTS  # per task
    text: str = ""  # the plan file as written (stored in the swarm by a run)
    run: int = 1  # which run of the pipeline: --restart starts the next, under the same name
    # What the check with ``programs`` warns of, each a line to show: not refused, a plan
    # may be right as it is (``_path_warnings``); not part of what the plan is.
    warnings: tuple[str, ...] = field(default=(), compare=False)


# --- locating a key in the text


_HEADER = re.compile(r"\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")


def _key_pattern(key: str) -> re.Pattern[str]:
    quoted = re.escape(key)
    return re.compile(rf"\s*(?:{quoted}|\"{quoted}\"|'{quoted}')\s*=")


def _lines(text: str, where: tuple[str | int, ...]) -> tuple[int | None, int | None]:
    """The line of the key ``where[-1] = ...`` in the table ``where[:-1]``, and the line of
    the header of ``where`` as a table (``[passes]``, or ``[[passes]]`` for ``("passes",
    1)``, the index counting the ``[[passes]]`` tables); None where there is none."""
    table, key = where[:-1], where[-1]
    counts: dict[str, int] = {}
    current: tuple[str | int, ...] = ()
    key_line = header_line = None
    for number, line in enumerate(text.splitlines(), 1):
        match = _HEADER.match(line)
        if match:
            name = match.group(2).strip().strip("\"'")
            if match.group(1) == "[[":
                counts[name] = counts.get(name, 0) + 1
                current = (name, counts[name] - 1)
            else:
                current = (name,)
            if current == where and header_line is None:
                header_line = number
            continue
        if (
            key_line is None
            and current == table
            and isinstance(key, str)
            and _key_pattern(key).match(line)
        ):
            key_line = number
    return key_line, header_line


def _line_of(text: str, where: tuple[str | int, ...], *, table_at: bool = False) -> int | None:
    """The line (1-based) of the key at ``where`` (``("passes", 1, "tasks")``), else of the
    table's own header (``workers = "a"`` or ``[passes]`` where a table or an array of
    tables belongs: at that line), else of the table holding it, None when nothing is found.
    With ``table_at``, or an index last, ``where`` is a table: its header first."""
    if not where:
        return None
    key_line, header_line = _lines(text, where)
    first, second = key_line, header_line
    if table_at or isinstance(where[-1], int):
        first, second = header_line, key_line
    found = first or second
    if found is None and len(where) > 1:
        return _line_of(text, where[:-1], table_at=True)
    return found


def _inline_key_line(text: str, start: int | None, key: str, nth: int) -> int | None:
    """The line of the ``nth`` (from 0) ``key = ...`` from line ``start`` (an array's key,
    such as a pass's ``tasks``) to the next table header: a key of the inline tables in that
    array. Else ``start``."""
    if start is None:
        return None
    quoted = re.escape(key)
    pattern = re.compile(rf"(?:^|[{{,\s])(?:{quoted}|\"{quoted}\"|'{quoted}')\s*=")
    seen = 0
    for number, line in enumerate(text.splitlines()[start - 1 :], start):
        if number > start and _HEADER.match(line):
            break
        for _match in pattern.finditer(line):
            if seen == nth:
                return number
            seen += 1
    return start


def _label(where: tuple[str | int, ...]) -> str:
    out = ""
    for part in where:
        out += f"[{part + 1}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


# --- checking


class _Checker:
    """Reads values out of the parsed plan, collecting every problem with its line."""

    def __init__(self, text: str, path: Path) -> None:
        self.text = text
        self.path = path
        self.problems: list[str] = []
        self.warnings: list[str] = []
        # The lines of keys inside inline values (a task's table in a pass's "tasks"), which
        # _line_of cannot find from the path alone: set by the check that reads them.
        self.lines: dict[tuple[str | int, ...], int] = {}

    def problem(self, where: tuple[str | int, ...], message: str, *, table: bool = False) -> None:
        """Record ``message`` about the key at ``where`` (with ``table``: the table there)."""
        self.problems.append(self._said(where, message, table))

    def warning(self, where: tuple[str | int, ...], message: str) -> None:
        """Record a warning ``message`` about the key at ``where``, said as a problem is."""
        self.warnings.append(f"warning: {self._said(where, message, False)}")

    def _said(self, where: tuple[str | int, ...], message: str, table: bool) -> str:
        line = self.lines.get(where) or (
            _line_of(self.text, where, table_at=table) if where else None
        )
        at = f"{self.path}:{line}" if line else str(self.path)
        return f"{at}: {_label(where) or 'the plan'}: {message}"

    def known(self, table: dict[str, Any], where: tuple[str | int, ...], keys: set[str]) -> None:
        for key in table:
            if key not in keys:
                self.problem(
                    (*where, key), f"unknown key; the keys here are {', '.join(sorted(keys))}"
                )

    def get(
        self,
        table: dict[str, Any],
        where: tuple[str | int, ...],
        key: str,
        check: Callable[[Any], Any],
        default: Any = None,
        *,
        required: bool = False,
    ) -> Any:
        if key not in table:
            if required:
                self.problem(where, f'"{key}" is missing: add it', table=True)
            return default
        try:
            return check(table[key])
        except ValidationError as exc:
            self.problem((*where, key), str(exc))
            return default


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("must be a non-empty string")
    return value


def _command(value: Any) -> str:
    check_command(_text(value))
    return str(value)


def _integer(lo: int, hi: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValidationError(f"must be a whole number from {lo:,} to {hi:,}")
        return value

    return check


def _number(lo: float, hi: float) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or not lo <= value <= hi:
            raise ValidationError(
                f"must be a number from {readable_number(lo)} to {readable_number(hi)}"
            )
        return float(value)

    return check


MAX_COST_USD = 1e9  # the largest budget: a bigger one (or inf, nan) is a typo, not a limit
# The rule of a budget in USD, the one for the plan's max_cost_usd and --max-cost-usd alike.
budget_usd = _number(0, MAX_COST_USD)


def _name(kind: str, max_len: int) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        return check_name(kind, value, max_len=max_len)

    return check


def _pipeline_name(value: Any) -> str:
    """The plan's ``name``: a name (``checked_name``) whose queues no other pipeline's can
    be (``queue_clash``)."""
    name = checked_name(value)
    clash = queue_clash(name)
    if clash:
        raise ValidationError(clash)
    return name


def _agent(
    c: _Checker, table: Any, section: str, *, pool: bool, lease_s: int | None = None
) -> AgentSpec | None:
    """The agent of ``section``. ``lease_s``: its lease when the table gives none (the
    planner's: the workers', at least ``PLANNER_LEASE_MIN_S``; else ``DEFAULT_LEASE_S``).
    A lease is no time limit (renewed while the agent runs): its ``timeout_s`` defaults to
    ``DEFAULT_TIMEOUT_S`` whatever ``lease_s`` is."""
    where: tuple[str | int, ...] = (section,)
    if not isinstance(table, dict):
        c.problem(where, f"must be a table ([{section}])", table=True)
        return None
    keys = {"exec", "model", "lease_s", "timeout_s"} | ({"concurrency", URL_ENV} if pool else set())
    c.known(table, where, keys)
    command = c.get(table, where, "exec", _command, required=True)
    model = c.get(table, where, "model", _text)
    concurrency = c.get(table, where, "concurrency", _integer(1, 1000), 4 if pool else 1)
    given = c.get(table, where, "lease_s", _integer(1, 7 * 86400))
    timeout_s = c.get(table, where, "timeout_s", _number(0.1, 7 * 86400), DEFAULT_TIMEOUT_S)
    url_env = c.get(table, where, URL_ENV, env_name) if pool else None
    if command is None:
        return None
    lease = given if given is not None else (lease_s or DEFAULT_LEASE_S)
    return AgentSpec(command, model, concurrency, lease, timeout_s, url_env)


# --- the URL the agents reach the swarm with

URL_ENV = "url_env"  # the [workers] key naming it
WORKER_URL_OPTION = "--worker-url-env"  # what a run gives instead (it overrides the key)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def env_name(value: Any) -> str:
    """The name of an environment variable (the workers' ``url_env``): never a URL, whose
    password the plan stored in the swarm would hold."""
    if isinstance(value, str) and ("://" in value or value.strip() == "embedded"):
        raise ValidationError(
            "is a URL; it must be the name of an environment variable holding one: put the "
            "URL in a variable (export SWARM_WORKER_URL=...) and name it here, url_env = "
            '"SWARM_WORKER_URL" (a URL written in the plan is stored in the swarm with it)'
        )
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        raise ValidationError(
            "must be the name of an environment variable holding a worker user's Redis URL "
            '(letters, digits and _, not starting with a digit), e.g. "SWARM_WORKER_URL"'
        )
    return value


def agent_settings(plan: Plan, settings: Settings) -> Settings:
    """The settings every agent a run of ``plan`` starts reaches the swarm with (what
    ``reach_env`` hands them): the URL in ``[workers] url_env``'s variable (a worker user's,
    on the run's swarm and home), else the run's own ``settings``. ValidationError, saying
    what to do, when that variable holds no URL or one of another server than ``settings``'
    (``url_env_problem``)."""
    name = plan.workers.url_env
    if name is None:
        return settings
    why = url_env_problem(name, settings)
    if why is not None:
        raise ValidationError(f"[workers] {URL_ENV} (or {WORKER_URL_OPTION}) {name}: {why}")
    return worker_settings(os.environ[name], settings)


TASK_KEYS = {"description", "data"}


def _description(value: Any) -> str:
    """A task's description, within the core's bound (``post_tasks`` refuses a longer one)."""
    text = _text(value)
    if len(text) > MAX_DESCRIPTION_CHARS:
        raise ValidationError(
            f"is {len(text):,} characters; a task's description may have "
            f"{MAX_DESCRIPTION_CHARS:,}: put the material in data or in a [[contexts]] file"
        )
    return text


def _not_json(value: Any, at: str = "") -> str | None:
    """Why ``value`` (read from TOML, or from a planner's JSON) is not what task data may
    hold, naming the part at fault (``at``, from the data's top): a TOML date or time, a
    NaN or an infinity."""
    if isinstance(value, dict):
        for key, item in value.items():
            why = _not_json(item, f"{at}.{key}" if at else str(key))
            if why:
                return why
    elif isinstance(value, list):
        for n, item in enumerate(value):
            why = _not_json(item, f"{at}[{n + 1}]")
            if why:
                return why
    elif isinstance(value, datetime.date | datetime.time):
        return (
            f"{at or 'it'} is a TOML date or time, which task data (JSON) cannot hold: write "
            f'it as a string, "{value.isoformat()}"'
        )
    elif isinstance(value, float) and not math.isfinite(value):
        return (
            f"{at or 'it'} is {value}, which task data (JSON) cannot hold: use a string or "
            "leave it out"
        )
    return None


def _task_data(value: Any) -> Any:
    """A task's data: JSON within the core's bounds (``Limits.max_task_data_bytes``, the
    nesting of ``MAX_JSON_DEPTH``), which ``post_tasks`` would refuse at run time."""
    try:
        why = _not_json(value)
        if why:
            raise ValidationError(why)
        encoded = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except RecursionError:
        raise too_deep("the data") from None
    except (TypeError, ValueError) as exc:  # a type _not_json does not know (not from TOML)
        raise ValidationError(f"it is not JSON: {exc}") from None
    size = len(encoded.encode())
    limit = Limits().max_task_data_bytes
    if size > limit:
        raise ValidationError(
            f"it is {size:,} bytes as JSON; a task's data may have {limit:,}: put the "
            "material in a [[contexts]] file and say in the task where to look"
        )
    check_json_depth("the data", encoded)
    return value


def check_task_item(description: Any, data: Any) -> None:
    """Raise a ValidationError when the core would refuse a task of ``description`` and
    ``data`` (its data as written, before the pipeline adds the question and the previous
    syntheses to it): the check of the plan's tasks, for a planner's."""
    try:
        _description(description)
    except ValidationError as exc:
        raise ValidationError(f"its description {exc}") from None
    if data is not None:
        try:
            _task_data(data)
        except ValidationError as exc:
            raise ValidationError(f"its data: {exc}") from None


def _task_list(value: Any) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise ValidationError("must be a non-empty list of task descriptions")
    if len(value) > MAX_TASKS_PER_PASS:
        raise ValidationError(f"has {len(value):,} tasks; a pass may have {MAX_TASKS_PER_PASS:,}")
    return value


def _tasks(
    c: _Checker, table: dict[str, Any], where: tuple[str | int, ...]
) -> tuple[TaskItem, ...]:
    """A pass's ``tasks``, each item checked on its own: a problem names the item and its
    key (``passes[1].tasks[2].dat``) at its line, as a problem of a table does."""
    value = c.get(table, where, "tasks", _task_list, [])
    at = (*where, "tasks")
    start = _line_of(c.text, at)
    seen: dict[str, int] = {}  # key -> the items before this one that have it
    items: list[TaskItem] = []
    for i, item in enumerate(value):
        here = (*at, i)
        if start is not None:  # the item's own problems: at its first key, else at "tasks"
            c.lines[here] = start
        if isinstance(item, str) and item.strip():
            try:
                items.append(TaskItem(_description(item), line=start))
            except ValidationError as exc:
                c.problem(here, f"the description {exc}")
            continue
        if not isinstance(item, dict):
            c.problem(
                here, 'must be a non-empty string or a table {description = "...", data = ...}'
            )
            continue
        for n, key in enumerate(item):
            line = _inline_key_line(c.text, start, key, seen.get(key, 0))
            seen[key] = seen.get(key, 0) + 1
            if line is not None:
                key_at = (*here, key)
                c.lines[key_at] = line
                if n == 0:
                    c.lines[here] = line
        c.known(item, here, TASK_KEYS)
        description = c.get(item, here, "description", _description, required=True)
        data = c.get(item, here, "data", _task_data)
        if description is not None and ("data" not in item or data is not None):
            items.append(TaskItem(description, data, line=c.lines.get(here)))
    return tuple(items)


def task_label(plan: Plan, index: int, position: int) -> str:
    """What an error about task ``position`` of pass ``index`` (as posted) calls it: the
    plan's item at its file and line, as a problem of the plan is named; a planned pass's
    task is its planner's."""
    spec = plan.passes[index]
    if spec.planned:
        return f"{plan.path}: {_label(('passes', index))}: the planner's task {position + 1}"
    line = spec.tasks[position].line
    at = f"{plan.path}:{line}" if line else str(plan.path)
    return f"{at}: {_label(('passes', index, 'tasks', position))}"


def _paths(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(p, str) for p in value):
        raise ValidationError('must be a non-empty list of files and globs, e.g. ["docs/*.md"]')
    return tuple(value)


def _match(base: Path, patterns: Sequence[str]) -> tuple[list[Path], list[str]]:
    """The files ``patterns`` match under ``base`` (in order, each once), and the patterns
    that match no file."""
    files: dict[Path, None] = {}
    empty: list[str] = []
    for pattern in patterns:
        full = pattern if Path(pattern).is_absolute() else str(base / pattern)
        found = sorted(Path(p) for p in glob.glob(full, recursive=True) if Path(p).is_file())
        if not found:
            empty.append(pattern)
        for path in found:
            files.setdefault(path.resolve(), None)
    return list(files), empty


def _shown(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base.resolve()))
    except ValueError:
        return str(path)


def _not_text(path: Path, base: Path) -> str | None:
    """Why the context file ``path`` cannot be published as text (not UTF-8, unreadable),
    or None. Decoded a piece at a time: a big file is not held whole to be checked."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    at = 0
    try:
        with path.open("rb") as src:
            while piece := src.read(1024 * 1024):
                try:
                    decoder.decode(piece)
                except UnicodeDecodeError as exc:  # (its object: a piece's left-over, then it)
                    return _not_utf8(path, base, at + len(piece) - len(exc.object) + exc.start)
                at += len(piece)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:  # (cut short at its end)
        return _not_utf8(path, base, at - len(exc.object) + exc.start)
    except OSError as exc:
        return f"cannot read {_shown(path, base)} ({exc.strerror}): fix its permissions"
    return None


def _not_utf8(path: Path, base: Path, at: int) -> str:
    return (
        f"{_shown(path, base)} is not UTF-8 text (byte {at:,} is not): save it as UTF-8, or "
        "leave it out of the paths (a narrower glob)"
    )


def context_file_text(path: Path, base: Path) -> str:
    """A context file's text, for a run's publish: ValidationError, in the plan check's
    words, when it is not UTF-8 (changed since the plan was checked) or cannot be read."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(_not_utf8(path, base, exc.start)) from None
    except OSError as exc:
        raise ValidationError(
            f"cannot read the context file {_shown(path, base)} ({exc.strerror}): fix it and "
            "run again"
        ) from None


def context_file_name(path: Path, base: Path) -> str:
    """How a context names one of its files (its source, and its header among several):
    relative to ``base`` (the plan's directory) where it is under it."""
    try:
        return path.relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path)


def _file_header(name: str) -> str:
    return f"==> {name} <==\n"  # (as ``head`` heads each of several files)


def context_text(ctx: ContextSpec, base: Path) -> str:
    """The text a run publishes as ``ctx``: its one file's, else each file's after a header
    naming it, each ended by a newline."""
    if len(ctx.files) == 1:
        return context_file_text(ctx.files[0], base)
    return "".join(
        f"{_file_header(context_file_name(f, base))}{context_file_text(f, base)}\n"
        for f in ctx.files
    )


def _context_size(files: Sequence[Path], base: Path) -> int | None:
    """The bytes of the text ``context_text`` makes of ``files``, from their sizes (nothing
    read); None when one cannot be read (which ``_not_text`` says)."""
    try:
        sizes = [f.stat().st_size for f in files]
    except OSError:
        return None
    if len(files) == 1:
        return sizes[0]
    headers = sum(len(_file_header(context_file_name(f, base)).encode()) + 1 for f in files)
    return sum(sizes) + headers


def context_too_large(size: int, files: int, limit: int) -> str:
    """A plan's context over the core's size limit (``Limits.max_context_bytes``), said as
    a plan problem: its publish would refuse it, after the run stored its plan."""
    made = "its file is" if files == 1 else f"its {files:,} files make"
    return (
        f"{made} a context of {size:,} bytes; the limit is {limit:,}: split the files among "
        "several [[contexts]] (each owner its own context, named by the passes that read it), "
        "or leave some out of the paths"
    )


def context_label(plan: Plan, index: int) -> str:
    """Where the plan file declares its context ``index``'s paths, as its check says it."""
    where = ("contexts", index, "paths")
    line = _line_of(plan.text, where)
    return f"{plan.path}:{line}: {_label(where)}" if line else f"{plan.path}: {_label(where)}"


# An array of tables written as something else (``[passes]``, one table, most often).
_ARRAY_OF_TABLES = "must be an array of tables: write each one under its own [[{name}]] header"
_ARRAYS = ("contexts", "passes")  # the plan's arrays of tables, which a [name] header breaks


def _contexts(
    c: _Checker, value: Any, base: Path | None, plan_name: str | None
) -> tuple[ContextSpec, ...]:
    """The plan's ``[[contexts]]``, their files matched under ``base`` (None: a stored plan read
    back, as it was run: neither its files nor its owners are checked again)."""
    if not isinstance(value, list):
        c.problem(("contexts",), _ARRAY_OF_TABLES.format(name="contexts"))
        return ()
    out: list[ContextSpec] = []
    owners: set[str] = set()
    for i, table in enumerate(value):
        where = ("contexts", i)
        if not isinstance(table, dict):
            c.problem(where, "must be a table")
            continue
        c.known(table, where, {"owner", "paths"})
        owner = c.get(table, where, "owner", _name("context owner", MAX_NAME), required=True)
        paths = c.get(table, where, "paths", _paths, required=True)
        if owner in owners:
            c.problem((*where, "owner"), f"context {owner!r} is declared twice")
        if owner is not None and base is not None:
            _check_owner(c, (*where, "owner"), owner, plan_name)
        if owner is None or paths is None:
            continue
        owners.add(owner)
        files, empty = _match(base, paths) if base is not None else ([], [])
        for pattern in empty:
            c.problem((*where, "paths"), f"{pattern!r} matches no file under {base}")
        for path in files:
            # A context is text: a file that is not would stop the run at its publish.
            problem = _not_text(path, base) if base is not None else None
            if problem is not None:
                c.problem((*where, "paths"), problem)
        size = _context_size(files, base) if base is not None and files else None
        limit = Limits().max_context_bytes
        if size is not None and size > limit:  # (so would its publish be, the plan stored)
            c.problem((*where, "paths"), context_too_large(size, len(files), limit))
        out.append(ContextSpec(owner, paths, tuple(files)))
    return tuple(out)


def _check_owner(
    c: _Checker, where: tuple[str | int, ...], owner: str, plan_name: str | None
) -> None:
    """A context owner that is a pipeline's stored plan's (``plan_owner``) is refused: a run
    publishes its contexts after its plan, and would overwrite that plan (its own, or another
    pipeline's, which ``status`` and a resumed run then read as a plan)."""
    other = plan_owner_of(owner)
    if other is None:
        return
    whose = "this pipeline's own plan" if other == plan_name else f"the plan of pipeline {other!r}"
    c.problem(
        where,
        f"context owner {owner!r} is where {whose} is stored (what swarm pipeline status "
        f"reads), and the context would overwrite it; name the owner otherwise, e.g. "
        f"{'context-' + other!r} (no owner 'pipeline.NAME': those are pipelines' plans)",
    )


def _passes(c: _Checker, value: Any, owners: set[str]) -> tuple[PassSpec, ...]:
    if value is not None and not isinstance(value, list):
        c.problem(("passes",), _ARRAY_OF_TABLES.format(name="passes"))
        return ()
    if not value:
        c.problem(("passes",) if value is not None else (), "add at least one [[passes]] table")
        return ()
    if len(value) > MAX_PASSES:
        c.problem(("passes",), f"{len(value)} passes; a plan may have {MAX_PASSES}")
    out: list[PassSpec] = []
    names: set[str] = set()
    for i, table in enumerate(value):
        where = ("passes", i)
        if not isinstance(table, dict):
            c.problem(where, "must be a table")
            continue
        c.known(table, where, {"name", "context", "tasks", "plan", "max_tasks"})
        name = c.get(table, where, "name", _bounded_text, required=True)
        context = c.get(table, where, "context", _name("context owner", MAX_NAME))
        tasks = _tasks(c, table, where)
        plan = c.get(table, where, "plan", _text)
        max_tasks = c.get(table, where, "max_tasks", _integer(1, MAX_TASKS_PER_PASS))
        if name in names:
            c.problem((*where, "name"), f"pass {name!r} is named twice: pass names are unique")
        if context is not None and context not in owners:
            known = ", ".join(sorted(owners)) or "none is declared"
            c.problem((*where, "context"), f"no [[contexts]] has owner {context!r} ({known})")
        if ("tasks" in table) == ("plan" in table):
            both = "tasks" in table
            c.problem(
                where,
                'give the pass "tasks" (a list) or "plan" (an instruction), not both'
                if both
                else 'give the pass either "tasks" (a list) or "plan" (an instruction)',
            )
        if max_tasks is not None and "plan" not in table:
            c.problem((*where, "max_tasks"), 'max_tasks bounds a planned pass: add "plan"')
        if name is None:
            continue
        names.add(name)
        if plan is not None:
            max_tasks = max_tasks or DEFAULT_PLANNED_TASKS
        out.append(PassSpec(name, context, tasks, plan, max_tasks))
    return tuple(out)


def _bounded_text(value: Any) -> str:
    """A pass name: bounded, and one the core takes as the pass name of a task
    (``check_label``'s ``new``: no whitespace at either end, no control character or
    bidirectional override), refused here with the position in the name as written, not
    when the run posts its tasks under the derived label, after the plan is stored."""
    text = _text(value)
    if len(text) > MAX_LABEL:
        raise ValidationError(f"is {len(text)} characters; the limit is {MAX_LABEL}")
    check_label("pass name", text, max_chars=MAX_LABEL, new=True)
    return text


_TOP = {
    "name", "question", "workers", "planner", "synthesizer", "contexts", "passes",
    "max_cost_usd", "max_tasks", "max_attempts",
}  # fmt: skip


def parse_plan(
    text: str,
    path: Path,
    *,
    match_files: bool = True,
    programs: bool = False,
    url_env: str | None = None,
    settings: Settings | None = None,
) -> Plan:
    """Check the plan ``text`` (read from ``path``, against which its paths are resolved;
    without ``match_files`` they are not: a stored plan read back, its contexts' files
    left empty, and its name taken as its run had it, though a plan may no longer have it:
    see ``queue_clash``). With ``programs``, the programs of its agents' commands are
    checked too (``check_programs``), and the variable of the workers' ``url_env``
    (``url_env_problem``), their problems refused with the plan's, all at once. ``url_env``:
    a run's ``--worker-url-env``, which overrides the plan's ``[workers] url_env``.
    ``settings``: the run's own, whose server that variable's URL must name too."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        hint = "".join(
            f" ([{name}] {_ARRAY_OF_TABLES.format(name=name)})"
            for name in _ARRAYS
            if re.search(rf"^[ \t]*\[[ \t]*{name}[ \t]*\][ \t]*(#.*)?$", text, re.MULTILINE)
        )
        raise ValidationError(
            f"{path}: not valid TOML: {exc}{hint}; fix it and run again"
        ) from None
    c = _Checker(text, path)
    c.known(data, (), _TOP)
    # (A stored plan is read back as it was run: a name refused since is still its own.)
    name_check = _pipeline_name if match_files else checked_name
    name = c.get(data, (), "name", name_check, required=True)
    question = c.get(data, (), "question", _text)
    max_cost = c.get(data, (), "max_cost_usd", budget_usd)
    max_tasks = c.get(data, (), "max_tasks", _integer(1, 10_000_000))
    max_attempts = c.get(data, (), "max_attempts", _integer(1, 100), DEFAULT_MAX_ATTEMPTS)
    workers = synthesizer = planner = None
    for section in ("workers", "synthesizer"):
        if section not in data:
            c.problem((), f"[{section}] is missing: add it with its exec command")
    if "workers" in data:
        workers = _agent(c, data["workers"], "workers", pool=True)
    if "synthesizer" in data:
        synthesizer = _agent(c, data["synthesizer"], "synthesizer", pool=False)
    if "planner" in data:
        # A planner's lease is renewed while it runs (``OneShotAgents._run_agent``): a short
        # one costs nothing, and a run killed while it plans is resumed about as soon as the
        # workers' tasks are (not sooner than PLANNER_LEASE_MIN_S); its run may still take
        # DEFAULT_TIMEOUT_S (its timeout_s).
        planner = _agent(
            c, data["planner"], "planner", pool=False,
            lease_s=max(workers.lease_s, PLANNER_LEASE_MIN_S) if workers is not None else None,
        )  # fmt: skip
    base = path.parent if match_files else None
    contexts = _contexts(c, data.get("contexts", []), base, name)
    passes = _passes(c, data.get("passes"), {ctx.owner for ctx in contexts})
    # (Read from the tables: a pass refused for its name, say, is planned all the same.)
    planned = isinstance(data.get("passes"), list) and any(
        isinstance(table, dict) and "plan" in table for table in data["passes"]
    )
    if planned and "planner" not in data:
        c.problem((), 'a pass has "plan": add a [planner] with its exec command')
    if url_env is not None:
        try:
            env_name(url_env)
        except ValidationError as exc:
            c.problems.append(f"{WORKER_URL_OPTION} {url_env!r}: {exc}")
        else:
            if workers is not None:
                workers = dataclasses.replace(workers, url_env=url_env)
    if programs:
        agents = {"workers": workers, "planner": planner, "synthesizer": synthesizer}
        _program_problems(c, agents)
        _path_warnings(c, agents, path.parent)
        named = workers.url_env if workers is not None else None
        why = url_env_problem(named, settings) if named is not None else None
        if why is not None and url_env is not None:
            c.problems.append(f"{WORKER_URL_OPTION} {url_env}: {why}")
        elif why is not None:
            c.problem(("workers", URL_ENV), why)
    if c.problems:
        raise _refused(path, c.problems)
    assert name is not None and workers is not None and synthesizer is not None
    return Plan(
        name=name,
        path=path,
        workers=workers,
        synthesizer=synthesizer,
        passes=passes,
        question=question,
        planner=planner,
        contexts=contexts,
        max_cost_usd=max_cost,
        max_tasks=max_tasks,
        max_attempts=max_attempts,
        text=text,
        warnings=tuple(c.warnings),
    )


# The arguments of an agent command read as paths to files (``_path_warnings``).
_SCRIPT_SUFFIXES = (".py", ".sh", ".js")


def _path_warnings(c: _Checker, specs: dict[str, AgentSpec | None], base: Path) -> None:
    """Warn with ``c`` of each argument of the commands of ``specs`` that names a file (ends
    with a script's suffix, or holds a '/') that is not there relative to the current
    directory, where the agents run, while it is relative to ``base`` (the plan file's
    directory, against which the plan's context paths are read) or a directory above it:
    every run would fail on it (paid for), as a pipeline run from inside its plan's
    directory once did (its exec naming the script from the checkout's top). A warning,
    not a refusal: the command may make the file, or mean another."""
    cwd = Path(os.getcwd())
    for section, spec in specs.items():
        if spec is None:
            continue
        try:
            words = shlex.split(spec.exec)
        except ValueError:  # (refused by the check of the command)
            continue
        for word in dict.fromkeys(words[1:]):
            if (
                word.startswith("-")
                or "{" in word
                or "://" in word
                or not (word.endswith(_SCRIPT_SUFFIXES) or "/" in word)
                or Path(word).is_absolute()
                or _there(cwd / word)
            ):
                continue
            found = next((d for d in (base, *base.parents) if _there(d / word)), None)
            if found is not None:
                c.warning(
                    (section, "exec"),
                    f"{word!r} is not there relative to the current directory ({cwd}), where "
                    f"the agents run, but is relative to {found} (context paths are read "
                    f"relative to the plan file, an exec's from the current directory): every "
                    f"run would fail on it; run from {found}, or write the path relative to "
                    "the current directory",
                )


def _there(path: Path) -> bool:
    """Whether ``path`` exists; False for one the system cannot even look up (a name too
    long, a NUL in it): a warning's guess, never the check's failure."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def _refused(path: Path, problems: list[str]) -> ValidationError:
    return ValidationError(
        f"the plan {path} has {len(problems)} problem(s); fix them and run again:\n"
        + "\n".join(problems)
    )


def check_programs(plan: Plan) -> None:
    """Refuse ``plan`` (ValidationError, each agent at its line) when the shell would not
    find the program of one of its agents' commands: every run of it would fail at once,
    and a typo in the synthesizer's found only after a pass's workers were paid for would
    waste them. ``swarm pipeline check`` and a run (before anything runs) both check so; a
    plan read back from the swarm is not (it may have been run on another machine)."""
    c = _Checker(plan.text, plan.path)
    _program_problems(
        c, {"workers": plan.workers, "planner": plan.planner, "synthesizer": plan.synthesizer}
    )
    if c.problems:
        raise _refused(plan.path, c.problems)


def _program_problems(c: _Checker, specs: dict[str, AgentSpec | None]) -> None:
    """Record with ``c`` each program the shell would not find that commands of ``specs``
    (agents by section) run: once, at the first such ``exec`` line, naming every section
    whose command runs it (one missing ``claude`` is one problem, not one per role)."""
    missing: dict[str, list[tuple[str, AgentSpec]]] = {}
    for section, spec in specs.items():
        program = None if spec is None else missing_program(spec.exec)
        if spec is not None and program is not None:
            missing.setdefault(program, []).append((section, spec))
    for agents in missing.values():
        (first, spec), *_ = agents
        where = in_a_list([f"[{section}] exec" for section, _ in agents])
        try:
            # (said alike by pipeline check, which claims nothing, and a run refused
            # before anything runs: not "nothing was claimed", swarm run's ending)
            check_program(spec.exec, where=where, claims=False)
        except ConfigError as exc:
            c.problem((first, "exec"), str(exc))


# The agent CLIs known to report tokens and never a cost in USD (Codex, Gemini CLI).
NO_COST_PROGRAMS = frozenset({"codex", "gemini"})


def _program(command: str) -> str | None:
    """The name of the program ``command`` runs (its first word that sets no variable),
    None when the shell line cannot be split."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    first = next((w for w in words if "=" not in w), None)
    return None if first is None else first.rsplit("/", 1)[-1]


def _programs(plan: Plan) -> set[str | None]:
    """The programs the agent commands of ``plan`` run (``_program``; None: a command that
    cannot be split)."""
    specs = [s for s in (plan.workers, plan.planner, plan.synthesizer) if s is not None]
    return {_program(spec.exec) for spec in specs}


def why_no_cost(plan: Plan) -> str:
    """Why the agent runs of ``plan`` may have reported no cost, from what is known of them:
    the programs its commands run, those known to report tokens only (``NO_COST_PROGRAMS``)
    said so, any other said to report one only when its output says it (a run that fails
    first, or a command that prints none, reports none)."""
    programs = sorted({p or "an unreadable command" for p in _programs(plan)})
    known = [p for p in programs if p in NO_COST_PROGRAMS]
    others = [p for p in programs if p not in NO_COST_PROGRAMS]
    said = []
    if known:
        said.append(f"{in_a_list(known)} report{'s' * (len(known) == 1)} tokens and no cost")
    if others:
        said.append(
            f"a run of {in_a_list(others)} reports one only when its output says it: one that "
            "fails before that, or prints no cost, reports none"
        )
    return "; ".join(said)


def unenforced_budget(plan: Plan) -> str | None:
    """A warning when ``plan`` sets ``max_cost_usd`` but every agent command of it runs a
    CLI known to report no cost (``NO_COST_PROGRAMS``): a cost nobody reports never adds
    up to the budget, so it cannot stop the run. None otherwise (an unknown program may
    report one: a run warns once its first runs reported none, see ``Pipeline``)."""
    if not plan.max_cost_usd:  # (none, or 0: that one stops everything before it runs)
        return None
    programs = _programs(plan)
    if not programs <= NO_COST_PROGRAMS:
        return None
    return (
        f"warning: max_cost_usd is ${plan.max_cost_usd:g}, but every agent command of the plan "
        f"runs {' or '.join(sorted(p for p in programs if p))}, whose CLI reports tokens and no "
        "cost: the budget cannot stop this pipeline; bound it with max_tasks (task claims)"
    )


class PassChange(NamedTuple):
    """How a pass of a plan differs from the plan a run stored: the stored pass's index,
    the first index of the plan at which passes may rest on what changed, what changed
    in words, and whether the pass moved (its position changed: see ``Pipeline``, which
    refuses to resume a moved pass that had begun)."""

    old: int
    first: int
    text: str
    moved: bool = False


def pass_changes(old: Plan, new: Plan) -> list[PassChange]:
    """The passes of ``old`` (the plan an earlier run stored) that ``new`` renamed, removed,
    moved or changed (its tasks, its planner's instruction, its context). A pass added at
    the end is no change: nothing rests on it."""
    names = [p.name for p in new.passes]
    before = {p.name for p in old.passes}
    changes: list[PassChange] = []
    for i, p in enumerate(old.passes):
        head = f"pass {i + 1} {p.name!r}"
        if p.name in names:
            j = names.index(p.name)
            if j != i:
                changes.append(PassChange(i, min(i, j), f"{head} is now pass {j + 1}", True))
            what = _what_changed(p, new.passes[j])
            if what:
                changes.append(PassChange(i, j, f"{head}: {what}"))
        elif i < len(names) and names[i] not in before:
            changes.append(PassChange(i, i, f"{head} was renamed {names[i]!r}"))
        else:
            changes.append(PassChange(i, i, f"{head} was removed"))
    return changes


def _what_changed(old: PassSpec, new: PassSpec) -> str:
    parts = []
    if old.tasks != new.tasks:
        parts.append("its tasks")
    if (old.plan, old.max_tasks) != (new.plan, new.max_tasks):
        parts.append("its planner's instruction")
    if old.context != new.context:
        parts.append("its context")
    return " and ".join(parts) + " changed" if parts else ""


def load_plan(path: str | Path, *, programs: bool = False) -> Plan:
    """Read and check the plan file at ``path`` (with ``programs``, its agents' programs
    too: see ``parse_plan``)."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read the plan {file}: {exc.strerror or exc}") from None
    try:
        text = plan_text(data)
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"the plan {file} is not UTF-8 text (byte {exc.start:,} is not): save it as UTF-8"
        ) from None
    return parse_plan(text, file.resolve(), programs=programs)


def plan_text(data: bytes) -> str:
    """A plan file's text: UTF-8, a byte order mark at its start skipped (editors on Windows
    write one, and TOML's parser refuses it as a statement at line 1). UnicodeDecodeError
    when it is not UTF-8."""
    return data.decode("utf-8-sig")
