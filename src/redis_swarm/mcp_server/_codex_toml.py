"""Codex's ``config.toml``: our ``[mcp_servers.NAME]`` table merged into it in place by
``swarm mcp install --write`` (``merge_toml``), and a table read back from such a file
(``toml_table``).

``merge_toml`` parses the file before the merge and the result after, before anything is
written, so that Codex is never left with a file it cannot read, or with more of it changed
than our table; the comments around the table are kept. ``_install`` builds the table
(``codex_toml``) and merges the JSON files the other clients read (``merge_json``), with the
helpers both merges share from ``_client_files``: ``as_entry`` (what of ours a file held),
``write_config`` and ``tighten_config`` (a file that holds a password made 0600).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._client_files import Merged, as_entry, tighten_config, write_config
from .._errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["merge_toml", "toml_table"]


def merge_toml(path: Path, table: str, block: str, *, private: bool = False) -> Merged:
    """Replace the ``[table]`` (and its sub-tables) of a TOML file with ``block``, in place
    (where the table was; appended when there was none); an empty ``block`` takes the table
    out (a file left empty is deleted). Comments outside the table, those just before the
    next table among them, are kept. ``private``: the block holds a password, the file is
    made 0600.

    The file is parsed before (one that is no TOML is refused: fix or move it first) and the
    result after, before anything is written: a result that would not parse, or that changes
    anything but the table, is refused, so that Codex is never left with a file it cannot
    read. The table defined otherwise than by its own ``[table]`` header (inline under its
    parent's, ``swarm = {...}``, or by dotted keys, ``mcp_servers.swarm.command = ...``) is
    refused, saying how to change it by hand."""
    try:  # read once: what is kept and whether anything changed are judged on one text
        current: str | None = path.read_text()
    except FileNotFoundError:
        current = None
    if not block and current is None:
        return Merged(False)
    old = _parsed_toml(path, current or "")
    had = as_entry(_lookup(old, table))
    lines = current.splitlines() if current is not None else []
    out: list[str] = []
    ours: list[str] = []  # the table replaced, and its sub-tables
    at: int | None = None  # where it was, in ``out``
    skipping = False
    for line in lines:
        match = _TOML_HEADER.match(line)
        if match:
            if skipping:  # (the comments that end our table are the next one's: kept)
                out.extend(_trailing_comments(ours))
            name = re.sub(r"\s*\.\s*", ".", match.group(1)).replace('"', "").replace("'", "")
            skipping = name == table or name.startswith(table + ".")
            if skipping and at is None:
                at = len(out)
        (ours if skipping else out).append(line)
    if skipping:
        out.extend(_trailing_comments(ours))
    if (had is not None and at is None) or _lookup(_rest(path, table, "\n".join(out)), table):
        raise ConfigError(_inline_words(path, table))
    previous = had if at is not None else None
    if not block and at is None:
        return Merged(False)
    before = out[: len(out) if at is None else at]
    after = [] if at is None else out[at:]
    while before and not before[-1].strip():
        before.pop()
    while after and not after[0].strip():
        after.pop(0)
    while after and not after[-1].strip():
        after.pop()
    if block and not after:  # (at the end: the block as given)
        merged = ("\n".join(before) + "\n\n" if before else "") + block
    else:
        chunks = [*(["\n".join(before)] if before else []),
                  *([block.rstrip("\n")] if block else []),
                  *(["\n".join(after)] if after else [])]  # fmt: skip
        merged = "\n\n".join(chunks) + "\n" if chunks else ""
    _check_toml_result(path, table, old, merged, block)
    if not merged.strip():
        path.unlink()
        return Merged(True, previous)
    if current == merged:
        return Merged(private and tighten_config(path), previous)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_config(path, merged, private=private)
    return Merged(True, previous)


# A table's header line, ``[a.b]`` or ``[[a.b]]``, maybe followed by a comment.
_TOML_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def _trailing_comments(ours: list[str]) -> list[str]:
    """The comment (and blank) lines that end ``ours``, taken out of it: they precede the
    next table, and are kept."""
    kept: list[str] = []
    while ours and (not ours[-1].strip() or ours[-1].lstrip().startswith("#")):
        kept.insert(0, ours.pop())
    return kept


def _parsed_toml(path: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}): fix or move it first") from None


def _rest(path: Path, table: str, text: str) -> dict[str, Any]:
    """``text``, the file without the lines taken for ``[table]``, parsed. The file parsed
    (``_parsed_toml``): a rest that does not means a line taken for a header was not one (in
    a multi-line string or array), and the table cannot be cut out by its lines."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        raise ConfigError(_by_hand(path, table)) from None


def _by_hand(path: Path, table: str) -> str:
    return (
        f"replacing [{table}] in {path} would change more of it than that table (a "
        f"multi-line string or array holding a line like a [table] header?): nothing was "
        f"changed: edit the [{table}] table by hand"
    )


def _lookup(data: Mapping[str, Any], table: str) -> object:
    found: object = data
    for part in table.split("."):
        found = found.get(part) if isinstance(found, Mapping) else None
    return found


def _without(data: Mapping[str, Any], table: str) -> dict[str, Any]:
    """``data`` with ``table`` taken out, and its parents that leaves empty."""
    first, _, rest = table.partition(".")
    out = dict(data)
    if not rest:
        out.pop(first, None)
        return out
    inner = out.get(first)
    if isinstance(inner, Mapping):
        kept = _without(inner, rest)
        if kept:
            out[first] = kept
        else:
            del out[first]
    return out


def _inline_words(path: Path, table: str) -> str:
    parent, _, last = table.rpartition(".")
    return (
        f"{path} defines {table} otherwise than as a [{table}] table (inline, `{last} = "
        f"{{ ... }}` under [{parent}], or by dotted keys, `{table}.command = ...`), which this "
        f"install does not rewrite: nothing was changed: take that definition out of the file "
        "by hand (or write it as a table of its own), then run this again"
    )


def _check_toml_result(
    path: Path, table: str, old: Mapping[str, Any], merged: str, block: str
) -> None:
    """Refuse a result Codex could not read, or that changes more than ``table``."""
    try:
        new = tomllib.loads(merged)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"replacing [{table}] in {path} would leave it unreadable ({exc}): nothing was "
            f"changed: edit the [{table}] table by hand"
        ) from None
    wanted = as_entry(_lookup(tomllib.loads(block), table)) if block else None
    if as_entry(_lookup(new, table)) != wanted or _without(new, table) != _without(old, table):
        raise ConfigError(_by_hand(path, table))


def toml_table(text: str, table: str) -> dict[str, Any]:
    """``[table]`` as parsed from ``text`` (the table and its sub-tables): {} when it cannot
    be read."""
    try:
        found: object = _lookup(tomllib.loads(text), table)
    except tomllib.TOMLDecodeError:
        return {}
    return as_entry(found) or {}
