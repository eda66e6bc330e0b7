"""Stored text printed into a pipe or a file is exact (docs/cli.md): click stripped what
looked like an ANSI escape there (``context read``, ``context search``, an answer, a message
body), changing the bytes an agent reads and their offsets, while letting other escapes
through. And a search that found nothing names the pattern as it was typed."""

from __future__ import annotations

from ._cli import Cli

TEXT = "line1 \x1b[31mred\x1b[0m end\nline2 \x1b]0;title\x07 plain\n"


def test_a_context_read_into_a_pipe_is_byte_exact(cli: Cli) -> None:
    cli("context", "publish", "-", "--owner", "ansi", input=TEXT)
    assert cli("context", "read", "ansi").stdout == TEXT


def test_a_search_prints_the_matching_lines_exactly(cli: Cli) -> None:
    cli("context", "publish", "-", "--owner", "ansi", input=TEXT)
    out = cli("context", "search", "ansi", "red", "--around", "0")
    assert "1: line1 \x1b[31mred\x1b[0m end\n" in out.stdout, out


def test_a_message_body_into_a_pipe_is_exact(cli: Cli) -> None:
    cli("agents", "register", "bob", "--role", "worker")
    sent = cli.json("msg", "send", "bob", "look \x1b[1mhere\x1b[0m", "--from", "amy")
    out = cli("msg", "show", sent["id"], "--agent", "bob")
    assert out.stdout.endswith("look \x1b[1mhere\x1b[0m\n"), out


def test_no_match_names_the_pattern_as_typed(cli: Cli) -> None:
    cli("context", "publish", "-", "--owner", "plain", input="a  b\n")
    out = cli("context", "search", "plain", r"a\s+c", "--regex")
    assert r"no match for 'a\s+c'" in out.stderr, out
