"""A publish checks bytes under a text media type as UTF-8 a piece at a time: the same
refusals as decoding them whole (the first bad byte named), a character split between two
pieces read whole, and memory bounded by the piece, not by the payload."""

from __future__ import annotations

import tracemalloc

import pytest

from redis_swarm import Swarm, ValidationError
from redis_swarm._ops import contexts

# The piece size (its name is the module's; the old code had none: any size shows the same).
PIECE: int = getattr(contexts, "_TEXT_CHECK_PIECE", 1 << 18)


def _first_bad(raw: bytes) -> int | None:
    """Where ``raw.decode`` says the first byte that is not UTF-8 is."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start
    return None


def _refusal(raw: bytes, media_type: str = "text/plain") -> str | None:
    try:
        contexts._check_text(raw, media_type)
    except ValidationError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"a" * (PIECE - 1) + b"\xff" + b"b" * 10, id="bad-byte-last-of-piece"),
        pytest.param(b"a" * PIECE + b"\xff", id="bad-byte-first-of-next"),
        # A 3-byte character begun in one piece, its next byte bad in the next.
        pytest.param(b"a" * (PIECE - 1) + b"\xe2" + b"A" * 10, id="broken-across"),
        pytest.param(b"a" * (PIECE - 2) + b"\xe2\x82" + b"(" * 10, id="broken-after-2"),
        # A lone surrogate (UTF-8 refuses it), split between pieces.
        pytest.param(b"a" * (PIECE - 1) + b"\xed\xa0\x80" + b"z", id="surrogate-across"),
        # A truncated character at the very end, in the second piece.
        pytest.param(b"a" * (PIECE + 5) + b"\xf0\x9f\x98", id="truncated-end"),
        pytest.param("é".encode() * PIECE + b"\xc3", id="truncated-end-multibyte"),
        # Another encoding (Latin-1), its first bad byte past the first pieces.
        pytest.param(b"x" * (2 * PIECE + 7) + "café".encode("latin-1"), id="latin-1"),
    ],
)
def test_a_bad_byte_is_named_where_decoding_whole_names_it(raw: bytes) -> None:
    bad = _first_bad(raw)
    assert bad is not None
    said = _refusal(raw)
    assert said is not None and f"(byte {bad:,} is not)" in said, said
    assert said.startswith("the context is not UTF-8 text"), said


@pytest.mark.parametrize("before", [1, 2, 3])
def test_a_character_split_between_pieces_is_accepted(before: int) -> None:
    """Each of a 4-byte character's first 1, 2 or 3 bytes ends a piece: it is read whole."""
    raw = b"a" * (PIECE - before) + "😀".encode() + "研究".encode() * 5
    assert _first_bad(raw) is None
    assert _refusal(raw) is None
    assert _refusal(b"") is None


def test_a_publish_refuses_the_bad_byte_across_a_piece_and_keeps_the_good(swarm: Swarm) -> None:
    split = b"a" * (PIECE - 1) + "😀".encode() + b"b" * 100
    assert swarm.publish_context("utf8-split", split, source="t").size_bytes == len(split)
    assert swarm.get_context("utf8-split") == split.decode()
    broken = b"a" * (PIECE - 1) + b"\xe2" + b"A" * 100
    with pytest.raises(ValidationError, match=rf"\(byte {PIECE - 1:,} is not\)"):
        swarm.publish_context("utf8-split", broken, source="t")
    # Not text: not checked.
    swarm.publish_context("utf8-blob", broken, source="t", media_type="application/octet-stream")


def test_the_check_of_a_32_mib_payload_allocates_far_less_than_it() -> None:
    """Decoding whole made the payload's text (32 MiB of ASCII, 4x that of emoji) at once."""
    size = 32 << 20
    for raw in (b"x" * size, "😀".encode() * (size // 4)):
        tracemalloc.start()
        try:
            assert _refusal(raw) is None
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 4 << 20, f"{peak:,} bytes at peak to check {len(raw):,}"
    bad = b"x" * size + b"\xff"
    tracemalloc.start()
    try:
        said = _refusal(bad)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert said is not None and f"(byte {size:,} is not)" in said
    assert peak < 4 << 20, f"{peak:,} bytes at peak to refuse {len(bad):,}"
