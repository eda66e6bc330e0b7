"""The result budget of the MCP server: page cuts, cursors, and the spill of oversized results."""

from __future__ import annotations

import pytest

from redis_swarm import ConfigError, ValidationError
from redis_swarm.mcp_server._budget import (
    Budget,
    Spill,
    clip,
    cut,
    decode_cursor,
    encode_cursor,
    estimate_tokens,
)


def test_budget_in_tokens_and_chars() -> None:
    budget = Budget()
    assert budget.tokens == 8_000
    assert budget.chars == 32_000
    assert budget.body_chars < budget.chars
    assert estimate_tokens("x" * 32_000) == 8_000
    assert estimate_tokens("x" * 32_001) == 8_001
    with pytest.raises(ConfigError, match="at least 500"):
        Budget(100)


def test_cut_ends_pages_on_whole_lines() -> None:
    text = "".join(f"line {i:04d}\n" for i in range(1000))  # 10 chars a line
    end = cut(text, 0, 95)
    assert end == 90 and text[end - 1] == "\n"
    assert cut(text, 0, 10_000_000) == len(text)
    # A single line longer than a page is split where it must be.
    long_line = "x" * 500
    assert cut(long_line, 0, 100) == 100
    # A newline only in the first half of the page is not worth losing half a page for.
    assert cut("a\n" + "b" * 300, 0, 100) == 100


def test_clip_says_what_was_left_out() -> None:
    assert clip("short", 100, "why") == "short"
    clipped = clip("y" * 1000, 200, "read it with get_context")
    assert len(clipped) <= 200
    assert "clipped" in clipped and "read it with get_context" in clipped


def test_cursor_round_trip_and_refusals() -> None:
    cursor = encode_cursor("context", {"o": "shard-1", "v": "abc", "c": 123, "l": 9})
    assert cursor.startswith("context.")
    assert decode_cursor("context", cursor) == {"o": "shard-1", "v": "abc", "c": 123, "l": 9}
    with pytest.raises(ValidationError, match="not a findings cursor"):
        decode_cursor("findings", cursor)
    with pytest.raises(ValidationError, match="damaged"):
        decode_cursor("context", "context.!!!not-base64!!!")
    with pytest.raises(ValidationError, match="not a context cursor"):
        decode_cursor("context", "garbage")


def test_spill_pages_a_large_document_within_the_budget() -> None:
    budget = Budget(1_000)
    document = "".join(f"row {i}: {'z' * (i % 90)}\n" for i in range(2_000))
    spill = Spill()
    first, header = spill.paginate(document, budget)
    pages = [first]
    assert header["page"] == 1 and header["pages"] > 1
    assert "next_page(cursor=" in header["next"]
    while "next_cursor" in header:
        page, header = spill.page(header["next_cursor"])
        pages.append(page)
    assert header["page"] == header["pages"] == len(pages)
    assert "".join(pages) == document
    assert all(len(p) <= budget.body_chars for p in pages)


def test_spill_small_document_is_one_page_and_stores_nothing() -> None:
    spill = Spill()
    page, header = spill.paginate("small", Budget())
    assert page == "small" and header == {"page": 1, "pages": 1}
    assert len(spill) == 0


def test_spill_forgets_old_entries_with_a_clear_error() -> None:
    budget = Budget(500)
    spill = Spill(max_entries=2)
    cursors = [spill.paginate("w" * 10_000, budget)[1]["next_cursor"] for _ in range(3)]
    assert len(spill) == 2
    with pytest.raises(ValidationError, match="repeat the call"):
        spill.page(cursors[0])
    assert spill.page(cursors[2])[1]["page"] == 2
    with pytest.raises(ValidationError, match="not a page cursor"):
        spill.page("context.e30")


def test_spill_expires_unused_pages() -> None:
    spill = Spill(ttl_s=0.0)
    _, header = spill.paginate("q" * 10_000, Budget(500))
    with pytest.raises(ValidationError, match="expired"):
        spill.page(header["next_cursor"])
