"""The context tools: read a shared context by pages, lines or search; publish one (shards)."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult
from pydantic import Field

from ... import _hints as hints
from ..._codec import dumps
from ..._context_records import ContextSlice, GrepLine, SearchHit, grep_groups
from ..._errors import NotFound, SwarmError, ValidationError
from ..._validate import DEFAULT_AROUND, MAX_AROUND, MAX_HITS, check_name
from .._budget import client_len, clip, encode_cursor, same_filters
from .._render import cursor_offset, not_text, plain, render_group
from .._roles import EVERYONE, SHARD, tool
from ._base import ContextOwner, ContextVersion, ToolsBase

__all__ = ["ContextTools"]

T = TypeVar("T")

_NO_END = 2**31 - 1  # read_context_lines without ``end``: up to the end, as much as fits

_DAMAGED = (
    "the context cursor is damaged: pass the next_cursor of the previous page unchanged, or "
    "omit it to start at page 1"
)


def _from_cursor(part: ContextSlice, offset: int, inside: int | None) -> ContextSlice:
    """The page at a cursor's ``offset``, from ``part``, read from the character before it:
    refused unless the offset is where a page ended (the start of a line, or inside the line
    ``inside`` the cursor names: a line longer than a page), so that an edited cursor cuts
    no line and no character."""
    first = part.text[:1]
    skipped = len(first.encode())
    starts_line = first == "\n"
    if (
        not first
        or part.offset + skipped != offset
        or offset >= part.size_bytes
        or not (starts_line or part.start_line == inside)
    ):
        raise ValidationError(
            f"the context cursor is damaged: byte {offset} of version {part.version} is not "
            "where a page of it ends (a line's start); pass the next_cursor of the previous "
            "page unchanged, or omit it to start at page 1"
        )
    return dataclasses.replace(
        part,
        text=part.text[1:],
        offset=offset,
        length=part.length - skipped,
        start_line=part.start_line + starts_line,
    )


class ContextTools(ToolsBase):
    """Reading (every role) and publishing (shards) contexts."""

    @tool(roles=EVERYONE, read_only=True)
    async def get_context(
        self,
        ctx: Context,
        owner: ContextOwner = None,
        cursor: Annotated[
            str | None, Field(description="next_cursor of the previous page; omit for page 1.")
        ] = None,
        version: ContextVersion = None,
    ) -> CallToolResult:
        """Read a shared context page by page, in order (each page fits one tool result).
        A context can be far larger than your window: prefer search_context and
        read_context_lines for the parts you need; page through it only to read it all."""
        session = await self._session(ctx)
        offset, inside = 0, None
        if cursor:
            state = self._decode("context", cursor)
            same_filters("get_context", state, {"o": ("owner", owner), "v": ("version", version)})
            owner, version, at = state.get("o"), state.get("v"), state.get("c")
            if not (isinstance(owner, str) and isinstance(version, str) and isinstance(at, int)):
                raise ValidationError(_DAMAGED)
            offset, inside = at, state.get("l")
        owner = session.context_owner(owner)
        if not cursor:  # (a cursor pages a context that is text)
            info = await self._read(self.swarm.context_info, owner, version)
            if not info.is_text:  # (its bytes are no page of text: where to write them)
                return self._result(not_text(info))
        size = self.budget.body_chars
        read = self._read if not cursor else self._paged("get_context")
        # From a cursor, the character before its offset too: it says where the page starts.
        back = 1 if offset else 0
        part = await read(
            self.swarm.read_context,
            owner,
            offset=offset - back,
            length=size + back,
            max_bytes=size + back,
            version=version,
        )
        if back:
            part = _from_cursor(part, offset, inside)
        session.read_versions[owner] = part.version
        page, consumed = part.text, part.length
        at_end = part.offset + part.length >= part.size_bytes
        newline = -1 if at_end else page.rfind("\n", len(page) // 2)
        if newline >= 0:  # end the page on a whole line
            page = page[: newline + 1]
            consumed = len(page.encode())
        last_line = part.start_line + page.count("\n") - (1 if page.endswith("\n") else 0)
        header: dict[str, Any] = {
            "owner": owner,
            "version": part.version,
            "lines": [part.start_line, max(part.start_line, last_line)],
            "total_lines": part.total_lines,
            "bytes": [part.offset, part.offset + consumed],
            "total_bytes": part.size_bytes,
        }
        if at_end and newline < 0:
            header["next"] = "this is the last page"
        else:
            # (no newline to end on: the next page goes on inside the line, which it says)
            inside_line = last_line if newline < 0 else None
            next_cursor = self._context_cursor(
                owner, part.version, part.offset + consumed, inside_line
            )
            left = -(-(part.size_bytes - part.offset - consumed) // size)
            header["next_cursor"] = next_cursor
            header["next"] = (
                f"about {left} more page(s): call get_context(cursor={dumps(next_cursor)})"
            )
        return self._result(header, page)

    @tool(roles=EVERYONE, read_only=True)
    async def read_context_lines(
        self,
        start: Annotated[int, Field(ge=1, description="First line, 1-based.")],
        ctx: Context,
        end: Annotated[
            int | None, Field(ge=1, description="Last line, inclusive; default: as many as fit.")
        ] = None,
        owner: ContextOwner = None,
        version: ContextVersion = None,
    ) -> CallToolResult:
        """Read lines start..end of a shared context (e.g. around a search_context hit, or
        the range your task names). Returns as many lines as fit one result and says where
        to continue."""
        session = await self._session(ctx)
        owner = session.context_owner(owner)
        if end is not None and end < start:
            # (as the SDK's checks of one argument are said: StrictTool says a core error so)
            raise ValidationError(f"end ({end}) is before start ({start}): pass start <= end")
        part = await self._read(
            self.swarm.read_context,
            owner,
            # (no end: as far as it goes, never before start: a start past it is said so)
            lines=(start, end if end is not None else max(start, _NO_END)),
            max_bytes=self.budget.body_chars,
            version=version,
        )
        session.read_versions[owner] = part.version
        header: dict[str, Any] = {
            "owner": owner,
            "version": part.version,
            "lines": [part.start_line, part.end_line],
            "total_lines": part.total_lines,
        }
        wanted = min(end or part.total_lines, part.total_lines)
        if part.end_line == start and part.truncated and not part.text.endswith("\n"):
            # One line longer than a whole result: its rest is on the next get_context page.
            rest = self._context_cursor(owner, part.version, part.offset + part.length, start)
            header["next"] = (
                f"line {start} is longer than one result: read on with "
                f"get_context(cursor={dumps(rest)}), or from line {start + 1} with "
                f"read_context_lines(owner={dumps(owner)}, start={start + 1})"
            )
        elif part.end_line < wanted:
            more = f", end={end}" if end is not None else ""
            header["next"] = (
                f"lines {part.end_line + 1}..{wanted} did not fit: call read_context_lines("
                f"owner={dumps(owner)}, start={part.end_line + 1}{more})"
            )
        elif part.end_line >= part.total_lines:
            header["next"] = "this is the end of the context"
        return self._result(header, part.text)

    # Long for its signature: one annotated parameter is one field of the tool's schema.
    @tool(roles=EVERYONE, read_only=True)
    async def search_context(
        self,
        ctx: Context,
        pattern: Annotated[
            str | None,
            Field(description="Text to find (or a regex with regex=true); not with a cursor."),
        ] = None,
        owner: ContextOwner = None,
        # (None: left out, which a cursor's own value then stands for; without one, the
        # default the description says: so that a cursor can tell a value given from none.)
        regex: Annotated[
            bool | None,
            Field(
                description="Pattern is a regex (RE2: no lookaround or backreferences); "
                "default false."
            ),
        ] = None,
        ignore_case: Annotated[
            bool | None,
            Field(
                description="Letters match in either case ('retry' finds 'Retry'); default false."
            ),
        ] = None,
        around: Annotated[
            int | None,
            Field(
                ge=0,
                le=MAX_AROUND,
                description=f"Lines shown around each hit; default {DEFAULT_AROUND}.",
            ),
        ] = None,
        max_hits: Annotated[int, Field(ge=1, le=200, description="Hits per page.")] = 30,
        cursor: Annotated[
            str | None, Field(description="next_cursor of the previous page of hits.")
        ] = None,
        version: ContextVersion = None,
    ) -> CallToolResult:
        """Find lines of a shared context (grep-like, with line numbers and lines around
        each hit). The cheap way to work from a context larger than your window: search,
        then read_context_lines around the hits you need."""
        session = await self._session(ctx)
        skip = shown_through = 0
        if cursor:
            state = self._decode("search", cursor)
            skip = cursor_offset(state, "s")
            shown_through = cursor_offset(state, "l")
            # (how it matches and shows is of the listing too: another regex, case or
            # around would page hits counted under the cursor's)
            same_filters(
                "search_context",
                state,
                {"p": ("pattern", pattern), "o": ("owner", owner), "v": ("version", version),
                 "r": ("regex", regex), "i": ("ignore_case", ignore_case),
                 "a": ("around", around)},
            )  # fmt: skip
            owner, version = state.get("o", owner), state.get("v", version)
            pattern, regex = state.get("p", pattern), bool(state.get("r", regex))
            ignore_case = bool(state.get("i", ignore_case))
            around = cursor_offset(state, "a") if "a" in state else around
        regex, ignore_case = bool(regex), bool(ignore_case)
        around = DEFAULT_AROUND if around is None else around
        if not isinstance(pattern, str):
            raise ValidationError("give pattern: the text (or regex=true: the RE2 regex) to find")
        owner = session.context_owner(owner)
        if skip >= MAX_HITS:
            raise ValidationError(
                f"only the first {MAX_HITS} hits can be listed: narrow the pattern, and search "
                "anew without the cursor"
            )
        if version is None:
            info = await self._read(self.swarm.context_info, owner)
            version = info.version
        search = self._read if not cursor else self._paged("search_context with the pattern")
        hits = await search(
            self.swarm.search_context,
            owner,
            pattern,
            regex=regex,
            max_hits=min(skip + max_hits + 1, MAX_HITS),
            around=around,
            version=version,
            ignore_case=ignore_case,
        )
        session.read_versions[owner] = version
        blocks, shown, last_line = self._hit_blocks(hits[skip : skip + max_hits], shown_through)
        end = skip + shown
        header: dict[str, Any] = {
            "owner": owner,
            "version": version,
            "pattern": pattern,
            "hits": [skip + 1, end] if blocks else [],
        }
        if len(hits) > end:
            next_cursor = encode_cursor(
                "search",
                {
                    "o": owner,
                    "v": version,
                    "p": pattern,
                    "r": regex,
                    "i": ignore_case,
                    "a": around,
                    "s": end,
                    "l": last_line,
                },
            )
            header["next_cursor"] = next_cursor
            header["next"] = (
                f"more hits: call search_context(cursor={dumps(next_cursor)}), or narrow the "
                "pattern"
            )
        elif end == MAX_HITS:
            header["next"] = f"only the first {MAX_HITS} hits can be listed: narrow the pattern"
        elif not blocks:
            header["next"] = (
                "no match: try another pattern, or regex=true"
                if ignore_case
                else "no match: try ignore_case=true, another pattern, or regex=true"
            )
        return self._result(header, "\n--\n".join(blocks))

    def _paged(self, fresh: str) -> Callable[..., Awaitable[Any]]:
        """``_read`` for a call that goes on from a cursor: the version the cursor pages,
        pruned since by newer publishes, is refused with the way to start again (``fresh``:
        the call without the cursor), not with the core's (a version the caller did not
        pass)."""

        async def read(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
            try:
                return await self.sessions.read(fn, *args, **kwargs)
            except NotFound as exc:
                said = str(exc)
                if hints.CURRENT_VERSION not in said:
                    raise self._error(exc) from exc
                again = (
                    f"this cursor pages that version, so it cannot go on: call {fresh} "
                    "again without the cursor to start over on the current version"
                )
                raise ToolError(f"NotFound: {said.replace(hints.CURRENT_VERSION, again)}") from exc
            except SwarmError as exc:
                raise self._error(exc) from exc

        return read

    def _hit_blocks(
        self, hits: Sequence[SearchHit], shown_through: int
    ) -> tuple[list[str], int, int]:
        """As many of ``hits`` as fit one result, as grep shows them (hits whose lines touch
        share a block, each line once, none of the context lines through ``shown_through``
        that an earlier page showed; a first hit too big alone is cut to fit), how many hits
        the blocks hold and the last line they show."""

        def groups(n: int) -> list[list[GrepLine]]:
            return grep_groups(hits[:n], after_line=shown_through)

        def rendered(n: int) -> list[str]:
            return [render_group(group) for group in groups(n)]

        def fits(n: int) -> bool:  # 3: the "--" line between blocks
            return sum(client_len(block) + 3 for block in rendered(n)) <= self.budget.body_chars

        # The most hits that fit (a hit more never shortens the text): a binary search.
        shown, most = 0, len(hits)
        while shown < most:
            middle = (shown + most + 1) // 2
            shown, most = (middle, most) if fits(middle) else (shown, middle - 1)
        cut = not shown and bool(hits)
        shown = 1 if cut else shown
        made = groups(shown)
        blocks = [render_group(group) for group in made]
        if cut:  # (its lines after the cut were not seen: the next page may show them)
            blocks = [clip("\n--\n".join(blocks), self.budget.body_chars, "narrow `around`")]
            return blocks, 1, max(shown_through, hits[0].line)
        return blocks, shown, max([shown_through] + [group[-1].number for group in made])

    @tool(roles=SHARD)
    async def publish_context(
        self,
        ctx: Context,
        text: Annotated[str | None, Field(description="The context itself.")] = None,
        path: Annotated[
            str | None,
            Field(
                description="Or a file to publish, on this MCP server's machine, under the "
                "directory it may read (relative paths start there)."
            ),
        ] = None,
        owner: Annotated[
            str | None, Field(description="Whose context it is; default: your agent id.")
        ] = None,
        source: Annotated[str | None, Field(description="Where it comes from (a label).")] = None,
        media_type: Annotated[str, Field(description="Its media type.")] = "text/markdown",
        repair: Annotated[
            bool,
            Field(
                description="Send every chunk again, overwriting the stored bytes: what a "
                "read that reported damaged data asks for."
            ),
        ] = False,
        allow_empty: Annotated[
            bool,
            Field(
                description="Let empty content replace a context that is not empty (refused "
                "otherwise: an unset variable, a step that printed nothing)."
            ),
        ] = False,
    ) -> CallToolResult:
        """Shard, step 1: publish the context your workers will read (give text, or a path
        to a file: the better way for big contexts). Publishing again makes a new version;
        readers see the old or the new one, never a mix. Step 2: post_task / post_tasks."""
        session = await self._acting(ctx)
        if (text is None) == (path is None):
            raise ValidationError(
                "pass exactly one of text or path (a file on this server's machine)"
            )
        content: str | bytes
        if path is not None:
            limit = self.swarm.limits.max_context_bytes
            content = await self._run(self.files.read, path, limit)
        else:
            assert text is not None
            if not text.strip() and not allow_empty:  # (an unset variable, nothing printed)
                raise ValidationError(
                    "text is empty: pass the context's text, or path= a file holding it (an "
                    "empty context would replace the one published, which its readers need), "
                    "or allow_empty=true to empty it on purpose"
                )
            content = text
        owner = check_name("context owner", owner) if owner else session.agent_id
        info = await self._run(
            self.swarm.publish_context,
            owner,
            content,
            source=source or (str(path) if path else f"mcp:{session.agent_id}"),
            media_type=media_type,
            repair=repair,
            allow_empty=allow_empty,
        )
        payload = plain(info)
        if owner == session.agent_id:
            payload["next"] = (
                "post the tasks that read it with post_task or post_tasks: they name you as "
                "their parent, so their workers find this context"
            )
        else:
            payload["next"] = f"post tasks that tell their workers to read owner={dumps(owner)}"
        return self._result(payload)
