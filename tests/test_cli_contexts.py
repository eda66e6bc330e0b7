"""``swarm context ...`` against a real server: human and JSON output, stdin, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from blake3 import blake3

from redis_swarm import SearchHit
from redis_swarm._models import grep_groups

from ._cli import Cli

TEXT = "".join(f"line {i}: {'alpha' if i % 10 == 0 else 'beta'}\n" for i in range(1, 201))


def test_publish_from_file_then_info_get_versions(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_text(TEXT)
    out = cli("context", "publish", str(path), "--owner", "shard-a")
    version = blake3(TEXT.encode()).hexdigest()
    assert out.stdout.startswith(f"published shard-a version {version}")
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
    assert "notes.md" in cli("context", "versions", "shard-a").stdout
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
    out = cli("context", "read", "s", "--lines", "500:510", expect=1)
    assert out.stderr.startswith("error: line 500 is past the end")
    assert out.stderr.count("\n") == 1
    cli("context", "publish", "-", "--owner", "one", input="a single line\n")
    out = cli("context", "read", "one", "--lines", "3:4", expect=1)
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
    out = cli("context", "publish", str(big), "--owner", "s", expect=1)
    assert "limit" in out.stderr
    out = cli(
        "context", "publish", "-", "--owner", "s", input=b"x" * (64 * 1024 * 1024 + 10), expect=1
    )
    assert "limit" in out.stderr
    assert cli("context", "get", "s").stdout == TEXT
    assert len(cli.json("context", "versions", "s")["items"]) == 1


def test_publish_missing_file_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    out = cli("context", "publish", str(tmp_path / "nope.md"), "--owner", "s", expect=2)
    assert "no such file" in out.stderr


def test_bad_owner_name_is_one_line(cli: Cli) -> None:
    out = cli("context", "publish", "-", "--owner", "bad owner!", input="x", expect=1)
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
