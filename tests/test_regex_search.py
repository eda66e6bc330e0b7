"""Regex search runs on RE2, a linear-time engine: a catastrophic pattern cannot hang a reader
(issue 15.4), constructs RE2 lacks are refused with a clear error, and hits match the plain
text search's line numbers and offsets, multi-byte text included."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from redis_swarm import SearchHit, Swarm, ValidationError
from redis_swarm._ops._textview import line_starts, search_text

from ._cli import SRC

# Python's re takes about 2**41 steps on one of these lines; RE2 one pass.
EVIL = "(a+)+$"
LINES = "".join(f"{'a' * 40}! line {i}\n" for i in range(2000)) + "the end: aaaa\n"


@pytest.fixture
def core(redis_url: str) -> Iterator[Swarm]:
    swarm = Swarm(redis_url, swarm="test")
    yield swarm
    swarm.close()


def test_a_catastrophic_pattern_is_linear(core: Swarm) -> None:
    core.publish_context("evil", LINES, source="test")
    started = time.monotonic()
    hits = core.search_context("evil", EVIL, regex=True)
    assert time.monotonic() - started < 2
    assert [h.line for h in hits] == [2001] and hits[0].text == "the end: aaaa"


def test_what_re2_lacks_is_refused_with_what_to_do(core: Swarm) -> None:
    core.publish_context("o", "one\ntwo\n", source="test")
    for pattern in (r"(?<=o)ne", r"t(?=w)", r"(o)\1", r"(?>one)"):
        with pytest.raises(ValidationError, match=r"RE2.*lookbehind.*instead of a regex"):
            core.search_context("o", pattern, regex=True)
    with pytest.raises(ValidationError, match="not a valid regular expression"):
        core.search_context("o", "(", regex=True)


def test_past_re2_repetition_bounds_is_refused_naming_them(core: Swarm) -> None:
    """Python accepts these; RE2 caps counts at 1000 (nested ones multiplied) and its
    compiled size: the message names that, not lookaround or backreferences."""
    core.publish_context("o", "one\ntwo\n", source="test")
    for pattern in ("a{1001}", "a{2,1001}", "(a{10}){101}"):
        with pytest.raises(ValidationError, match=r"repeats more than .*RE2.* at most 1,000") as e:
            core.search_context("o", pattern, regex=True)
        assert "lookbehind" not in str(e.value) and "backreferences" not in str(e.value)
    with pytest.raises(ValidationError, match=r"compiles to more than .*RE2") as e:
        core.search_context("o", r"\pL{1000}", regex=True)
    assert "not a valid regular expression" not in str(e.value)
    assert core.search_context("o", "(o){1000}|t(w)", regex=True)[0].line == 2  # at the cap


def test_hits_and_offsets_match_plain_search_on_multibyte_text() -> None:
    text = "".join(f"{'é' * (i % 7)}ça {i} — naïve {'✓' * (i % 3)}\n" for i in range(300))
    starts = line_starts(text)
    plain = search_text(text, starts, "naïve", regex=False, max_hits=200, around=1)
    regex = search_text(text, starts, r"na.ve", regex=True, max_hits=200, around=1)
    assert regex == plain and len(plain) == 200
    anchored = search_text(text, starts, r"^é{6}ça", regex=True, max_hits=200, around=0)
    assert [h.line for h in anchored] == [i + 1 for i in range(300) if i % 7 == 6]
    ends = search_text(text, starts, r"✓✓$", regex=True, max_hits=5, around=0)
    assert [h.line for h in ends] == [3, 6, 9, 12, 15]
    insensitive = search_text(text, starts, r"(?i)ÇA 29\b", regex=True, max_hits=5, around=0)
    assert [h.line for h in insensitive] == [30]


def test_the_cli_answers_a_catastrophic_pattern(core: Swarm, redis_url: str) -> None:
    core.publish_context("evil", LINES, source="test")
    env = {**os.environ, "PYTHONPATH": SRC, "SWARM_URL": redis_url, "SWARM_NAME": "test"}
    argv = [sys.executable, "-m", "redis_swarm", "context", "search", "evil", EVIL, "--regex"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "2001: the end: aaaa"
    argv[-2:] = [r"(?<=a)!", "--regex"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode != 0 and "RE2" in done.stderr and "Traceback" not in done.stderr


CASES = "Retry later\nretry now\nRETRY ÉTÉ\nété\nΣΊΣΥΦΟΣ\nplain (A+) text\nİstanbul\n"


@pytest.mark.parametrize("regex", [False, True], ids=["plain", "re2"])
def test_ignore_case_finds_either_case_and_the_default_does_not(regex: bool) -> None:
    starts = line_starts(CASES)

    def hits(pattern: str, around: int = 0, **kwargs: bool) -> list[SearchHit]:
        return search_text(
            CASES, starts, pattern, regex=regex, max_hits=50, around=around, **kwargs
        )

    def lines(pattern: str, **kwargs: bool) -> list[int]:
        return [h.line for h in hits(pattern, **kwargs)]

    assert lines("retry") == [2]  # case-sensitive unless asked: scripts rely on it
    assert lines("retry", ignore_case=True) == [1, 2, 3]
    assert lines("été", ignore_case=True) == [3, 4]
    assert lines("σίσυφος", ignore_case=True) == [5]  # the final sigma folds with the others
    # a hit's offsets are the original text's, whatever folding did to lengths
    hit = hits("ÉTÉ", around=1, ignore_case=True)[1]
    assert hit.line == 4 and hit.text == "été" and hit.before == ("RETRY ÉTÉ",)


def test_ignore_case_on_plain_text_takes_the_pattern_literally() -> None:
    starts = line_starts(CASES)

    def lines(pattern: str) -> list[int]:
        found = search_text(
            CASES, starts, pattern, regex=False, max_hits=5, around=0, ignore_case=True
        )
        return [h.line for h in found]

    assert lines("(a+)") == [6]
    assert lines(".") == []


def test_ignore_case_stays_linear(core: Swarm) -> None:
    core.publish_context("evil", LINES.upper(), source="test")
    started = time.monotonic()
    hits = core.search_context("evil", EVIL, regex=True, ignore_case=True)
    assert time.monotonic() - started < 2
    assert [h.line for h in hits] == [2001] and hits[0].text == "THE END: AAAA"
    assert core.search_context("evil", "the END", ignore_case=True)[0].line == 2001
    assert core.search_context("evil", "the END") == []
    with pytest.raises(ValidationError, match="ignore_case must be true or false"):
        core.search_context("evil", "x", ignore_case="yes")  # type: ignore[arg-type]
