"""``swarm context ...``: publish a shard's context, and read, search or fetch it."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import IO, Any, Literal

import click

from .._codec import byte_size
from .._context_records import ContextSlice, grep_groups
from .._errors import PayloadTooLarge, ValidationError
from .._printable import printable, short_version
from .._validate import DEFAULT_AROUND, MAX_AROUND, MAX_HITS
from . import _common
from ._app import App, json_option, main, pass_app
from ._common import (
    BIG,
    Seconds,
    add_row,
    agent_option_default,
    agent_required,
    complete_owners,
    echo_content,
    empty_stdin,
    kv_table,
    make_table,
    print_table,
    progress,
    status,
    stdout_binary,
    when,
    writable_output,
)

_COMPRESSION: dict[str, Literal["zstd", "none"] | None] = {
    "auto": None,
    "zstd": "zstd",
    "none": "none",
}
owner_arg = click.argument("owner", shell_complete=complete_owners)
version_option = click.option("--version", "version", help="A kept version (default: current).")


@main.group()
def context() -> None:
    """Contexts: the big texts memory shards publish and workers read."""


def _info_pairs(info: Any) -> list[tuple[str, Any]]:
    return [
        ("owner", info.owner),
        ("version", info.version),
        ("size", f"{byte_size(info.size_bytes)} ({info.size_bytes:,} bytes)"),
        ("lines", f"{info.total_lines:,}"),
        ("tokens (est.)", f"{info.tokens_est:,}"),
        ("chunks", info.chunks),
        ("compression", info.compression),
        ("source", info.source),
        ("media type", info.media_type),
        ("published", when(info.created_at)),
    ]


def _limit(app: App) -> int:
    return app.swarm.limits.max_context_bytes


def _read_bounded(source: str, app: App, limit: int, *, allow_empty: bool = False) -> bytes:
    """The content to publish, refused before it all sits in memory when over the limit.
    Empty stdin is refused as every command's is (the producer failed), unless
    ``allow_empty``: then the swarm's rule decides (an empty context replaces none that is
    not empty unless allowed)."""
    if source == "-":
        stream: IO[bytes] = sys.stdin.buffer
        total = None
    else:
        path = Path(source).expanduser()
        try:
            total = path.stat().st_size
        except FileNotFoundError:
            raise click.BadParameter(f"no such file: {source}", param_hint="FILE") from None
        if path.is_dir():
            raise click.BadParameter(f"{source} is a directory", param_hint="FILE")
        if total > limit:
            raise _too_large(total, limit)
        stream = path.open("rb")
    chunks: list[bytes] = []
    size = 0
    label = "reading stdin" if source == "-" else f"reading {Path(source).name}"
    try:
        with progress(app, label, total) as advance:
            while True:
                chunk = stream.read(1024 * 1024)
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:  # read past the limit: how far past is not known
                    raise _too_large(None, limit)
                chunks.append(chunk)
                advance(len(chunk))
    finally:
        if source != "-":
            stream.close()
    if source == "-" and not chunks and not allow_empty:
        # (Refused, unlike an empty file, for a new owner too: a producer that failed pipes
        # nothing, and its owner's readers would get an empty context without a word.)
        raise empty_stdin(
            "FILE",
            "the context's text",
            otherwise="as a file path; to publish an empty context on purpose, add --allow-empty",
        )
    return b"".join(chunks)


def _default_source(file: str) -> str:
    """The source of a context published without ``--source``: FILE's name ("stdin" for -),
    refused when it is not UTF-8 (the OS gives such a name as is: no text can show it), with
    the option that gives the source apart. A name holding what a source may not (a line
    break) is refused by the swarm's own rule, whose error names --source too."""
    if file == "-":
        return "stdin"
    name = Path(file).name
    try:
        name.encode()
    except UnicodeEncodeError:
        shown = os.fsencode(name).decode(errors="backslashreplace")
        raise click.BadParameter(
            f"the name of {shown} is not UTF-8 text, and the context's source is FILE's "
            "name unless given: give one with --source NAME (e.g. the name in UTF-8)",
            param_hint="FILE",
        ) from None
    return name


def _too_large(size: int | None, limit: int) -> PayloadTooLarge:
    """``size``: the content's size, or None when it was read only until it passed the
    limit (stdin, a file that grew while read)."""
    what = (
        f"more than the limit of {limit:,} bytes"
        if size is None
        else f"{size:,} bytes; the limit is {limit:,}"
    )
    return PayloadTooLarge(
        f"the context is {what}: split it into several contexts (one per shard) or publish "
        "a summary"
    )


@context.command()
@click.argument("file", metavar="FILE|-")
@click.option(
    "--owner",
    default=agent_option_default,
    callback=agent_required("the context's owner"),
    shell_complete=complete_owners,
    help="The shard that owns it (default: SWARM_AGENT).",
)
@click.option("--source", help="Where it came from, e.g. notes.md (default: FILE's name).")
@click.option("--media-type", default="text/markdown", show_default=True)
@click.option(
    "--compression",
    type=click.Choice(["auto", "zstd", "none"]),
    default="auto",
    show_default=True,
    help="auto: zstd when the server is not local.",
)
@click.option(
    "--repair",
    is_flag=True,
    help="Send every chunk again, overwriting the stored bytes (when a read says damaged "
    "data), even if the content is unchanged.",
)
@click.option(
    "--allow-empty",
    is_flag=True,
    help="Let an empty FILE (0 bytes) replace OWNER's context that is not empty (refused "
    "otherwise).",
)
@json_option
@pass_app
def publish(
    app: App,
    file: str,
    owner: str,
    source: str | None,
    media_type: str,
    compression: str,
    repair: bool,
    allow_empty: bool,
) -> None:
    """Publish FILE (or - for stdin) as OWNER's context: a new version, atomically. The
    file's bytes are published exactly as they are (a byte order mark too): the version is
    their BLAKE3 hash, as b3sum FILE prints it."""
    label = source or _default_source(file)
    data = _read_bounded(file, app, _limit(app), allow_empty=allow_empty)
    with status(app, f"publishing {byte_size(len(data))}", len(data)):
        info = app.swarm.publish_context(
            owner,
            data,
            source=label,
            media_type=media_type,
            compression=_COMPRESSION[compression],
            repair=repair,
            allow_empty=allow_empty,
        )

    def human() -> None:
        if not info.changed:
            click.echo(
                f"unchanged: {info.owner} is at version {short_version(info.version)} already "
                "(the same content, source and media type): nothing was written"
            )
            return
        verb = "published (every chunk sent again)" if repair else "published"
        click.echo(
            f"{verb} {info.owner} version {short_version(info.version)}: "
            f"{byte_size(info.size_bytes)}, "
            f"~{info.tokens_est:,} tokens"
        )

    app.emit(info, human)


@context.command()
@owner_arg
@version_option
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to a file.")
@json_option
@pass_app
def get(app: App, owner: str, version: str | None, output: str | None) -> None:
    """Print OWNER's whole context (or write it to --output)."""
    if output and not app.json:
        writable_output(output, "--output")
    info = app.swarm.context_info(owner, version)
    with status(app, f"fetching {byte_size(info.size_bytes)}", info.size_bytes):
        data = app.swarm.get_context_bytes(owner, info.version)
    if app.json:
        try:
            text = data.decode()
        except UnicodeDecodeError as exc:
            # JSON holds text: bytes that are not UTF-8 would reach the reader replaced.
            raise ValidationError(
                f"the context of {owner!r} is not UTF-8 text (byte {exc.start:,} is not), so "
                "--json cannot hold it exactly: drop --json for its exact bytes (or -o FILE), "
                f"and see swarm context info {owner} --json for its details"
            ) from None
        app.emit({"info": info, "text": text})
        return
    if output:
        try:
            Path(output).write_bytes(data)
        except OSError as exc:  # (checked before the fetch: changed since, or a full disk)
            raise click.BadParameter(
                f"cannot write {output}: {exc.strerror}: pick another path",
                param_hint="--output",
            ) from None
        version = short_version(info.version)
        click.echo(f"wrote {byte_size(len(data))} (version {version}) to {output}", err=True)
        return
    out = stdout_binary()
    with progress(app, "writing", len(data), min_size=BIG) as advance:
        for start in range(0, len(data), 1024 * 1024):
            out.write(data[start : start + 1024 * 1024])
            advance(min(1024 * 1024, len(data) - start))
    out.flush()


@context.command()
@owner_arg
@version_option
@json_option
@pass_app
def info(app: App, owner: str, version: str | None) -> None:
    """Size, tokens, version and source of OWNER's context."""
    ci = app.swarm.context_info(owner, version)
    app.emit(ci, lambda: print_table(app, kv_table(_info_pairs(ci))))


_LINES = re.compile(r"^(\d+)(?::(\+?)(\d+))?$", re.ASCII)  # (a bare \d takes "٣" too)
_LINES_HINT = "use FIRST:LAST, FIRST:+COUNT or LINE (1-based)"


def _parse_lines(value: str) -> tuple[int, int]:
    match = _LINES.match(value.strip())
    if not match:
        raise click.BadParameter(
            f"{value!r} is not a range of lines: {_LINES_HINT}", param_hint="--lines"
        )
    first = int(match.group(1))
    counted = bool(match.group(2))
    if match.group(3) is None:
        last = first
    elif counted:
        last = first + int(match.group(3)) - 1
    else:
        last = int(match.group(3))
    why = ""
    if first < 1:
        why = "lines count from 1"
    elif last < first:
        why = "a count of 0 is no line" if counted else "it ends before it starts"
    if why:
        raise click.BadParameter(
            f"{value!r} is not a range of lines ({why}): {_LINES_HINT}", param_hint="--lines"
        )
    return first, last


@context.command()
@owner_arg
@click.option("--lines", "lines", metavar="FIRST:LAST", help="Lines (1-based, inclusive).")
@click.option("--offset", type=click.IntRange(0), help="Byte offset to read from (default 0).")
@click.option("--length", type=click.IntRange(1), help="Bytes to read (default: to the end).")
@version_option
@json_option
@pass_app
def read(
    app: App,
    owner: str,
    lines: str | None,
    offset: int | None,
    length: int | None,
    version: str | None,
) -> None:
    """Print part of OWNER's context: --lines FIRST:LAST, or --offset N --length M.

    Without either, the first lines (up to 256 KiB). A longer range is cut (at a line end
    when one is in reach): the header (on stderr) gives the options that read on from the
    cut, so that following them reads every byte once.
    """
    if lines is not None and (offset is not None or length is not None):
        raise click.UsageError("give --lines or --offset/--length, not both")
    span = _parse_lines(lines) if lines is not None else None
    part = app.swarm.read_context(owner, lines=span, offset=offset, length=length, version=version)
    by_bytes = offset is not None or length is not None

    def human() -> None:
        more = ""
        if part.truncated:
            end = (offset or 0) + length if length is not None else None
            last = span[1] if span is not None else None
            go_on = _read_on(part, last_line=last, end_byte=end, by_bytes=by_bytes)
            more = f" (cut at the size limit: continue with {go_on})"
        header = _read_header(part, by_bytes)
        click.echo(
            f"# {part.owner} version {short_version(part.version)}: {header}{more}", err=True
        )
        if not part.text:
            return
        # (a pipe or a file gets the bytes, and nothing more; a terminal a final newline
        # for the prompt's sake)
        echo_content(part.text, nl=_common.on_terminal() and not part.text.endswith("\n"))

    app.emit(part, human)


def _read_header(part: ContextSlice, by_bytes: bool) -> str:
    """What a slice holds, for the header of ``context read``."""
    if part.size_bytes == 0:
        return "the context is empty (0 bytes, 0 lines)"
    lines = f"lines {part.start_line}-{part.end_line} of {part.total_lines}"
    if not by_bytes:
        return lines
    if part.length == 0:
        return f"nothing at byte {part.offset}: the context ends there ({lines})"
    return f"bytes {part.offset}-{part.offset + part.length} of {part.size_bytes}, {lines}"


def _read_on(
    part: ContextSlice, *, last_line: int | None, end_byte: int | None, by_bytes: bool
) -> str:
    """The ``context read`` options that read on from where ``part`` was cut, to the end of
    the range asked for: by lines when it was read by lines and cut at a line end; else by
    bytes from the cut (up to ``end_byte``). A line longer than the bound is read on by
    bytes: its rest, then the context after it, a page at a time (where that line ends is
    not known without reading it)."""
    cut = part.offset + part.length
    if not by_bytes and part.text.endswith("\n"):
        last = part.total_lines if last_line is None else min(last_line, part.total_lines)
        return f"--lines {part.end_line + 1}:{last}"
    if end_byte is None:
        return f"--offset {cut}"
    return f"--offset {cut} --length {end_byte - cut}"


@context.command()
@owner_arg
@click.argument("pattern")
@click.option("--regex", is_flag=True, help="PATTERN is a regular expression.")
@click.option(
    "-i",
    "--ignore-case",
    is_flag=True,
    help="Letters match in either case ('retry' finds 'Retry'), as grep -i.",
)
@click.option(
    "--max-hits",
    type=click.IntRange(1, MAX_HITS),
    default=50,
    show_default=True,
    help='Hits listed; when more match, the output says so (JSON: "more": true).',
)
@click.option("--around", type=click.IntRange(0, MAX_AROUND), default=DEFAULT_AROUND,
              show_default=True, help="Lines of context around each hit.")  # fmt: skip
@version_option
@json_option
@pass_app
def search(
    app: App,
    owner: str,
    pattern: str,
    regex: bool,
    ignore_case: bool,
    max_hits: int,
    around: int,
    version: str | None,
) -> None:
    """Find PATTERN in OWNER's context; prints hits like grep -n (LINE: text)."""
    # One hit beyond the page tells whether more match (at the bound, the bound's hits do not)
    hits = app.swarm.search_context(
        owner,
        pattern,
        regex=regex,
        max_hits=min(max_hits + 1, MAX_HITS),
        around=around,
        version=version,
        ignore_case=ignore_case,
    )
    more = len(hits) > max_hits or len(hits) == MAX_HITS
    hits = hits[:max_hits]

    def human() -> None:
        if not hits:
            cased = pattern.lower() != pattern.upper()
            hint = " (add -i to ignore case)" if cased and not ignore_case else ""
            click.echo(f"no match for '{printable(pattern)}'{hint}", err=True)
        for index, group in enumerate(grep_groups(hits)):
            if index and around:
                click.echo("--")
            for line in group:
                echo_content(f"{line.number}{':' if line.hit else '-'} {line.text}")
        if more:
            bigger = f"raise --max-hits (up to {MAX_HITS}) or " if max_hits < MAX_HITS else ""
            click.echo(f"more lines match past these {len(hits)}: {bigger}narrow the pattern",
                       err=True)  # fmt: skip

    app.emit({"items": hits, "more": more}, human)


@context.command()
@owner_arg
@json_option
@pass_app
def versions(app: App, owner: str) -> None:
    """The kept versions of OWNER's context, newest first."""
    items = app.swarm.context_versions(owner)

    def human() -> None:
        table = make_table("version", "published", "size", "tokens", "source")
        for ci in items:
            add_row(
                table,
                short_version(ci.version),
                when(ci.created_at),
                byte_size(ci.size_bytes),
                f"{ci.tokens_est:,}",
                ci.source,
            )
        print_table(app, table)

    app.emit({"items": items}, human)


@context.command("list")
@json_option
@pass_app
def list_(app: App) -> None:
    """Every owner's current context."""
    items = app.swarm.contexts()

    def human() -> None:
        table = make_table("owner", "version", "size", "tokens", "source", "published")
        for ci in items:
            tokens, version = f"{ci.tokens_est:,}", short_version(ci.version)
            add_row(
                table, ci.owner, version, byte_size(ci.size_bytes), tokens, ci.source,
                when(ci.created_at),
            )  # fmt: skip
        print_table(app, table)

    app.emit({"items": items}, human)


@main.command(short_help="Free the context chunks that no kept version uses.")
@click.option("--dry-run", is_flag=True, help="Say what would be freed; change nothing.")
@click.option(
    "--grace",
    type=Seconds(),
    metavar="S",
    help="Give up on publishes in flight for longer than S seconds (default: 10 minutes).",
)
@json_option
@pass_app
def gc(app: App, dry_run: bool, grace: float | None) -> None:
    """Free the context chunks no kept version uses (pruned versions', dead publishers').

    Every publish does a bounded step of this; run it to reclaim everything at once.
    """
    report = app.swarm.gc(grace_s=grace, dry_run=dry_run)

    def human() -> None:
        verb = "would free" if report.dry_run else "freed"
        click.echo(
            f"{verb} {report.chunks_deleted} chunks, {byte_size(report.bytes_freed)} "
            f"({report.holds_released} holds released, "
            f"{report.publishes_given_up} publishes in flight given up on)"
        )

    app.emit(report, human)
