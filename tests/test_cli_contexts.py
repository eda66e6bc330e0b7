"""``swarm context ...`` against a real server: human and JSON output, stdin, errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from blake3 import blake3

from redis_swarm import Limits, SearchHit, Swarm
from redis_swarm._codec import byte_size
from redis_swarm._context_records import grep_groups
from redis_swarm._validate import MAX_AROUND

from ._cli import Cli, run_swarm, subprocess_env

TEXT = "".join(f"line {i}: {'alpha' if i % 10 == 0 else 'beta'}\n" for i in range(1, 201))


def test_publish_from_file_then_info_get_versions(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_text(TEXT)
    out = cli("context", "publish", str(path), "--owner", "shard-a")
    version = blake3(TEXT.encode()).hexdigest()
    # (people see a version as its first 12 digits, as every other view shows it, and
    # `context info` whole; JSON keeps it whole everywhere; a prefix is taken back)
    assert out.stdout.startswith(f"published shard-a version {version[:12]}: ")
    info = cli.json("context", "info", "shard-a")
    assert info["version"] == version
    assert info["source"] == "notes.md"
    assert info["size_bytes"] == len(TEXT)
    assert info["total_lines"] == 200
    human = cli("context", "info", "shard-a").stdout
    assert version in human and "notes.md" in human
    assert cli("context", "get", "shard-a").stdout == TEXT
    data = cli.json("context", "get", "shard-a")
    assert data["text"] == TEXT and data["info"]["version"] == version
    out_file = tmp_path / "copy.md"
    cli("context", "get", "shard-a", "-o", str(out_file))
    assert out_file.read_text() == TEXT
    versions = cli.json("context", "versions", "shard-a")
    assert [v["version"] for v in versions["items"]] == [version]
    table = cli("context", "versions", "shard-a").stdout
    assert "notes.md" in table and version[:12] in table and version not in table
    assert cli.json("context", "info", "shard-a", "--version", version[:12])["version"] == version
    listing = cli.json("context", "list")
    assert [c["owner"] for c in listing["items"]] == ["shard-a"]
    assert "shard-a" in cli("context", "list").stdout


def test_publish_from_stdin_with_owner_from_env(cli: Cli) -> None:
    out = cli.json(
        "context", "publish", "-", "--source", "notes.md", input=TEXT,
        env={"SWARM_AGENT": "shard-b"},
    )  # fmt: skip
    assert out["owner"] == "shard-b" and out["source"] == "notes.md"
    assert cli("context", "get", "shard-b").stdout == TEXT


def test_publish_needs_an_owner(cli: Cli) -> None:
    out = cli("context", "publish", "-", input="x", expect=2)
    assert "--owner" in out.stderr


def test_read_lines_and_bytes(cli: Cli) -> None:
    cli("context", "publish", "-", "--owner", "s", input=TEXT)
    out = cli("context", "read", "s", "--lines", "10:12")
    assert out.stdout == "line 10: alpha\nline 11: beta\nline 12: beta\n"
    assert "lines 10-12 of 200" in out.stderr
    part = cli.json("context", "read", "s", "--lines", "199:+5")
    assert part["start_line"] == 199 and part["end_line"] == 200
    assert part["text"] == "line 199: beta\nline 200: alpha\n"
    assert cli("context", "read", "s", "--lines", "7").stdout == "line 7: beta\n"
    part = cli.json("context", "read", "s", "--offset", "0", "--length", "6")
    assert part["text"] == "line 1"
    whole = cli("context", "read", "s")
    assert whole.stdout == TEXT


@pytest.mark.parametrize("lines", ["0:3", "5:2", "a:b", "3-4"])
def test_read_bad_ranges_are_usage_errors(cli: Cli, lines: str) -> None:
    cli("context", "publish", "-", "--owner", "s", input=TEXT)
    out = cli("context", "read", "s", "--lines", lines, expect=2)
    assert "--lines" in out.stderr
    # every bad range says how to write a good one
    assert f"{lines!r} is not a range of lines" in out.stderr
    assert "use FIRST:LAST, FIRST:+COUNT or LINE (1-based)" in out.stderr


def test_read_past_the_end_is_one_clear_error(cli: Cli) -> None:
    cli("context", "publish", "-", "--owner", "s", input=TEXT)
    out = cli("context", "read", "s", "--lines", "500:510", expect=2)
    assert out.stderr.startswith("error: line 500 is past the end")
    assert out.stderr.count("\n") == 1
    cli("context", "publish", "-", "--owner", "one", input="a single line\n")
    out = cli("context", "read", "one", "--lines", "3:4", expect=2)
    assert out.stderr.rstrip().endswith("has 1 line")


def test_search_plain_and_regex(cli: Cli) -> None:
    cli("context", "publish", "-", "--owner", "s", input=TEXT)
    out = cli("context", "search", "s", "alpha", "--max-hits", "2", "--around", "1")
    assert out.stdout.splitlines() == [
        "9- line 9: beta",
        "10: line 10: alpha",
        "11- line 11: beta",
        "--",
        "19- line 19: beta",
        "20: line 20: alpha",
        "21- line 21: beta",
    ]
    hits = cli.json("context", "search", "s", r"line 1\d0:", "--regex", "--around", "0")
    assert [h["line"] for h in hits["items"]] == [100, 110, 120, 130, 140, 150, 160, 170, 180, 190]
    assert hits["more"] is False
    # a list cut at --max-hits says so, so that a script counting the lines is not misled
    cut = cli.json("context", "search", "s", r"line 1\d0:", "--regex", "--max-hits", "10")
    assert len(cut["items"]) == 10 and cut["more"] is False
    cut = cli.json("context", "search", "s", r"line 1\d0:", "--regex", "--max-hits", "9")
    assert [h["line"] for h in cut["items"]][-1] == 180 and cut["more"] is True
    told = cli("context", "search", "s", r"line 1\d0:", "--regex", "--max-hits", "9")
    assert "more lines match past these 9: raise --max-hits (up to 1000)" in told.stderr
    none = cli("context", "search", "s", "gamma")
    assert none.stdout == "" and "no match" in none.stderr


def test_search_ignores_case_with_i(cli: Cli) -> None:
    cli("context", "publish", "-", "--owner", "s", input="Retry once\nno\nretry twice\n")
    assert cli("context", "search", "s", "retry", "--around", "0").stdout == "3: retry twice\n"
    for flag in ("-i", "--ignore-case"):
        out = cli("context", "search", "s", "RETRY", flag, "--around", "0")
        assert out.stdout.splitlines() == ["1: Retry once", "3: retry twice"]
    hits = cli.json("context", "search", "s", "^R.TRY", "--regex", "-i", "--around", "0")
    assert [h["line"] for h in hits["items"]] == [1, 3]
    missed = cli("context", "search", "s", "RETRY")
    assert missed.stdout == "" and "add -i to ignore case" in missed.stderr


def test_search_shows_each_line_once_as_grep_does(cli: Cli) -> None:
    """Hits whose context windows touch or overlap share one group: no line twice, and a
    line that matched is shown as a hit even where it is another hit's context."""
    text = "a\nretry one\nretry two\nb\nc\nd\ne\nretry three\nf\n"
    cli("context", "publish", "-", "--owner", "g", input=text)
    out = cli("context", "search", "g", "retry", "--around", "2")
    assert out.stdout.splitlines() == [
        "1- a",
        "2: retry one",
        "3: retry two",
        "4- b",
        "5- c",
        "6- d",
        "7- e",
        "8: retry three",
        "9- f",
    ]
    out = cli("context", "search", "g", "retry", "--around", "1")
    assert out.stdout.splitlines() == [
        "1- a", "2: retry one", "3: retry two", "4- b", "--", "7- e", "8: retry three", "9- f",
    ]  # fmt: skip


def test_unknown_owner_is_not_found(cli: Cli) -> None:
    out = cli("context", "get", "nobody", expect=1)
    assert out.stderr.startswith("error: ") and "nobody" in out.stderr
    out = cli("--json", "context", "info", "nobody", expect=1)
    assert '"error": "NotFound"' in out.stderr


def test_oversized_context_is_refused_and_nothing_changes(cli: Cli, tmp_path: Path) -> None:
    from redis_swarm import Limits

    cli("context", "publish", "-", "--owner", "s", input=TEXT)
    big = tmp_path / "big.txt"
    with big.open("wb") as f:
        f.truncate(Limits().max_context_bytes + 1)
    out = cli("context", "publish", str(big), "--owner", "s", expect=2)
    assert "limit" in out.stderr
    out = cli(
        "context", "publish", "-", "--owner", "s", input=b"x" * (64 * 1024 * 1024 + 10), expect=2
    )
    assert "limit" in out.stderr
    assert cli("context", "get", "s").stdout == TEXT
    assert len(cli.json("context", "versions", "s")["items"]) == 1


def test_publish_missing_file_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    out = cli("context", "publish", str(tmp_path / "nope.md"), "--owner", "s", expect=2)
    assert "no such file" in out.stderr


def test_bad_owner_name_is_one_line(cli: Cli) -> None:
    out = cli("context", "publish", "-", "--owner", "bad owner!", input="x", expect=2)
    assert out.stderr.startswith("error: owner 'bad owner!' contains ' '")


def test_grep_groups_takes_hits_in_any_order() -> None:
    """The grouping a face renders search hits with: line order whatever the order given."""
    hits = [
        SearchHit(line=5, text="hit five", before=("four",), after=("six",)),
        SearchHit(line=2, text="hit two", before=("one",), after=("three",)),
        SearchHit(line=9, text="hit nine", before=("eight",), after=()),
    ]
    shown = [[(n, hit, text) for n, hit, text in group] for group in grep_groups(hits)]
    assert shown == [
        [(1, False, "one"), (2, True, "hit two"), (3, False, "three"), (4, False, "four"),
         (5, True, "hit five"), (6, False, "six")],
        [(8, False, "eight"), (9, True, "hit nine")],
    ]  # fmt: skip


def test_grep_groups_leave_out_context_an_earlier_page_showed() -> None:
    """``after_line``: the context lines through it are not shown again; a hit always is,
    and a gap left by a line taken out splits the group, as grep prints a gap."""
    hits = [
        SearchHit(line=3, text="hit three", before=("two",), after=("four",)),
        SearchHit(line=6, text="hit six", before=("five",), after=("seven",)),
    ]
    shown = [[(n, hit) for n, hit, _ in group] for group in grep_groups(hits, after_line=5)]
    assert shown == [[(3, True)], [(6, True), (7, False)]]
    assert grep_groups(hits, after_line=7) == [[(3, True, "hit three")], [(6, True, "hit six")]]


# One line of 1.2 MB (600,000 two-byte characters, over two chunks); lines around a 600 KB
# line (so that a page is cut inside it, in the middle of a character).
HUGE_LINE = "é" * 600_000
AROUND_A_LONG_LINE = (
    "".join(f"{i:05d} σ short line\n" for i in range(1, 3000))
    + "long " + "σ" * 300_000 + " end\n"
    + "".join(f"{i:05d} after\n" for i in range(3001, 9000))
    + "no final newline"
)  # fmt: skip


def _follow_hints(cli: Cli, owner: str, *args: str) -> str:
    """What ``context read`` prints from ``args`` on, following each header's "continue
    with" options literally, to the last read."""
    text = ""
    for _ in range(100):
        out = cli("context", "read", owner, *args)
        text += out.stdout
        go_on = re.search(r"continue with ([^)]*)\)", out.stderr)
        if go_on is None:
            return text
        args = tuple(go_on.group(1).split())
    raise AssertionError("the hints never came to an end")


@pytest.mark.parametrize(
    ("text", "start", "want"),
    [
        (HUGE_LINE, (), slice(None)),
        (HUGE_LINE, ("--lines", "1"), slice(None)),
        (HUGE_LINE, ("--offset", "5"), slice(4, None)),  # widened to the character at 4
        (AROUND_A_LONG_LINE, (), slice(None)),
        (AROUND_A_LONG_LINE, ("--lines", "2999:+5"), slice(2998 * 20, None)),
        (AROUND_A_LONG_LINE, ("--offset", "5"), slice(5, None)),
        (AROUND_A_LONG_LINE, ("--offset", "100", "--length", "700000"), slice(100, 700_100)),
        (AROUND_A_LONG_LINE, ("--lines", "3002:8000"), slice(None)),
    ],
)
def test_following_the_continue_hints_reads_every_byte_once(
    cli: Cli, text: str, start: tuple[str, ...], want: slice
) -> None:
    """A page is cut at 256 KiB; when the cut is inside a line (or of a byte range) the
    header points on by bytes from the cut, not to the next line, which skipped the rest of
    the line."""
    cli("context", "publish", "-", "--owner", "t", input=text)
    raw = text.encode()
    if start == ("--lines", "3002:8000"):  # by lines, cut at line ends: up to line 8000
        lines = text.splitlines(keepends=True)
        expected = "".join(lines[3001:8000])
    else:
        expected = raw[want].decode()
    assert _follow_hints(cli, "t", *start) == expected


def test_a_cut_inside_a_line_says_where_in_bytes(cli: Cli) -> None:
    cli("context", "publish", "-", "--owner", "t", input=AROUND_A_LONG_LINE)
    out = cli("context", "read", "t", "--offset", "5")
    cut = 5 + len(out.stdout.encode())
    assert f"continue with --offset {cut})" in out.stderr
    assert "bytes 5-" in out.stderr and "of 2999" not in out.stderr
    whole = cli("context", "read", "t", "--lines", "1:3005")
    assert "continue with --lines " in whole.stderr and whole.stdout.endswith("\n")


def test_read_into_a_pipe_is_exact(cli: Cli, redis_url: str, tmp_path: Path) -> None:
    """No newline is added after a last line that has none (nor to CRLF text): a pipe gets
    the bytes, as JSON's text says."""
    cli("context", "publish", "-", "--owner", "crlf", input=b"line1\r\nline2\r\nline3")
    env = subprocess_env(redis_url, "test", tmp_path)
    for args in ((), ("--lines", "2:3"), ("--offset", "7")):
        done = run_swarm(["context", "read", "crlf", *args], env)
        assert done.returncode == 0, done
        assert done.stdout == b"line1\r\nline2\r\nline3"[len(b"line1\r\n") if args else 0 :]


def test_read_edges(cli: Cli) -> None:
    with Swarm(cli.url, swarm=cli.swarm) as swarm:
        swarm.publish_context("empty", "", source="empty.txt")
    for args in ((), ("--lines", "1"), ("--offset", "0")):
        out = cli("context", "read", "empty", *args)
        assert out.stdout == "" and "the context is empty" in out.stderr, args
    out = cli("context", "read", "empty", "--lines", "2", expect=2)
    assert "line 2 is past the end" in out.stderr and "has 0 lines" in out.stderr
    cli("context", "publish", "-", "--owner", "s", input=TEXT)
    end = cli.json("context", "read", "s", "--offset", str(len(TEXT)))
    assert (end["text"], end["start_line"], end["end_line"], end["total_lines"]) == (
        "", 200, 200, 200,
    )  # fmt: skip
    at_end = cli("context", "read", "s", "--offset", str(len(TEXT)))
    assert at_end.stdout == "" and "the context ends there" in at_end.stderr
    out = cli("context", "read", "s", "--lines", "1:+0", expect=2)
    assert "'1:+0' is not a range of lines (a count of 0 is no line)" in out.stderr
    out = cli("context", "search", "s", "alpha", "--around", str(MAX_AROUND + 1), expect=2)
    assert "--around" in out.stderr and f"0<=x<={MAX_AROUND}" in out.stderr


def test_stdin_over_the_limit_names_the_limit(cli: Cli) -> None:
    limit = Limits().max_context_bytes
    out = cli("context", "publish", "-", "--owner", "o", input=b"x" * (limit + 1), expect=2)
    assert f"the context is more than the limit of {limit:,} bytes" in out.stderr
    assert f"{limit + 1:,}" not in out.stderr


def test_version_hint_reads_once(cli: Cli) -> None:
    cli("context", "publish", "-", "--owner", "s", input=TEXT)
    out = cli("context", "get", "s", "--version", "5415716", expect=2)
    assert "give at least 8 characters of the hex hash shown by swarm context versions s" in (
        out.stderr
    )
    assert "shown shown" not in out.stderr


def test_sizes_are_decimal_and_counts_have_separators(cli: Cli) -> None:
    assert [byte_size(n) for n in (0, 999, 1000, 100_000, 3_445_516, 999_960, None)] == [
        "0 B", "999 B", "1 KB", "100 KB", "3.4 MB", "1 MB", "",
    ]  # fmt: skip
    cli("context", "publish", "-", "--owner", "s", input="x" * 99_999 + "\n")
    info = cli("context", "info", "s").stdout
    assert "100 KB (100,000 bytes)" in info and "25,000" in info
    for listing in (cli("context", "list").stdout, cli("context", "versions", "s").stdout):
        assert "100 KB" in listing and "25,000" in listing and "25000" not in listing


def test_get_json_refuses_bytes_it_cannot_carry(cli: Cli) -> None:
    data = b"PK\x03\x04\xff\xfe binary"
    cli("context", "publish", "-", "--owner", "bin", "--media-type", "application/zip", input=data)
    out = cli("context", "get", "bin", "--json", expect=2)
    assert '"error": "ValidationError"' in out.stderr and "not UTF-8 text (byte 4" in out.stderr
    assert "drop --json" in out.stderr and out.stdout == ""
    cli("context", "publish", "-", "--owner", "txt", input="naïve ✓")
    assert cli.json("context", "get", "txt")["text"] == "naïve ✓"
