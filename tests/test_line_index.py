"""``line_starts`` indexes a text in pieces (``LINE_INDEX_PIECE``) so that an AsyncSwarm's worker
thread hands the GIL back to its event loop between them (one C call over 3.2 MB of short lines
held it 70-100 ms: a cold search stalled every other coroutine that long). The pieces must
not change the index: newlines on a piece's edge, at its ends, runs of them, multi-byte
characters (str and bytes offsets), with pieces of a few characters so that every case
crosses edges."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redis_swarm._ops import _textview
from redis_swarm._ops._textview import line_starts


def _expected(text: bytes | str) -> list[int]:
    newline = b"\n"[0] if isinstance(text, bytes) else "\n"
    return [0] + [i + 1 for i, c in enumerate(text) if c == newline]


TEXTS = st.text(alphabet=st.sampled_from(["a", "é", "\n", "𝄞", " "]), max_size=200)


@pytest.mark.parametrize("piece", [1, 2, 3, 7, 64, 1 << 16])
@settings(max_examples=60, deadline=None)
@given(text=TEXTS)
def test_pieces_give_the_index_of_the_whole(piece: int, text: str) -> None:
    saved = _textview.LINE_INDEX_PIECE
    _textview.LINE_INDEX_PIECE = piece
    try:
        assert list(line_starts(text)) == _expected(text)
        data = text.encode()
        assert list(line_starts(data)) == _expected(data)
    finally:
        _textview.LINE_INDEX_PIECE = saved


def test_a_big_text_of_short_lines() -> None:
    text = "".join(f"l{i}\n" for i in range(100_000)) + "no newline at the end"
    assert list(line_starts(text)) == _expected(text)
    assert list(line_starts(b"")) == [0] and list(line_starts("\n")) == [0, 1]
