"""Bad-input edges of the command line a fuzz found: numbers not written in ASCII digits, names
the swarm refuses, an empty --host, and a huge value repeated by an error."""

from __future__ import annotations

import json

import pytest

from ._cli import Cli

# Python's int() and float() read each of these as a number; the command line does not.
NOT_ASCII = ["1_0", "١٠", "１٠", "１０", "1_0.5", "٣.٥"]

# One option of each kind of numeric type, in commands of several modules (and of
# _dashboard.py, whose types are click's own): every one is checked where it is parsed.
NUMERIC_OPTIONS = [
    ("task", "list", "--limit"),  # paging_options: click.IntRange
    ("events", "--limit"),  # click.IntRange
    ("task", "claim", "q1", "--wait"),  # Seconds
    ("task", "report", "t-1", "--token", "1.x", "--summary", "s", "--confidence"),  # Number
    ("pipeline", "run", "--max-cost-usd"),  # _Budget
    ("a2a", "--queue", "q1", "--port"),  # listen_options
    ("watch", "--once", "--findings"),  # _dashboard.py's click.IntRange
    ("context", "read", "shard-a", "--offset"),  # click.IntRange(0)
]


@pytest.mark.parametrize("value", NOT_ASCII)
@pytest.mark.parametrize("args", NUMERIC_OPTIONS, ids=lambda a: " ".join(a[:2]))
def test_a_number_not_in_ascii_digits_is_a_usage_error(
    cli: Cli, args: tuple[str, ...], value: str
) -> None:
    out = cli(*args, value, expect=2)
    assert f"Invalid value for '{args[-1]}'" in out.stderr, out
    assert "is not written in ASCII digits: write it with 0-9 only" in out.stderr, out


def test_the_error_says_the_number_meant(cli: Cli) -> None:
    out = cli("task", "list", "--limit", "١٠", expect=2)
    assert "'١٠' is not written in ASCII digits" in out.stderr and ", as 10" in out.stderr, out
    out = cli("task", "claim", "q1", "--wait", "1_0.5", expect=2)
    assert ", as 10.5" in out.stderr, out


def test_ascii_numbers_still_work(cli: Cli) -> None:
    assert cli.json("task", "list", "--limit", " 10 ")["items"] == []
    assert cli.json("events", "--limit", "+3")["items"] == []


def test_swarm_hook_refuses_it_with_exit_1(cli: Cli) -> None:
    # (a hook's clients read exit 2 as "block")
    out = cli("hook", "Stop", "--max-tasks", "1_0", input="{}", expect=1)
    assert "is not written in ASCII digits" in out.stderr, out


def test_a_line_range_in_other_digits_is_malformed(cli: Cli) -> None:
    out = cli("context", "read", "shard-a", "--lines", "١:٣", expect=2)
    assert "is not a range of lines" in out.stderr, out


# Names the core refuses (ValidationError): a usage error, as click's own, whatever command.
BAD_NAMES = [
    ("task", "post", "bad queue", "describe it"),
    ("task", "post", "q" * 129, "describe it"),
    ("task", "post", "q1", "describe it", "--parent", "bad/agent"),
    ("task", "list", "--queue", "a:b"),
    ("msg", "send", "--from", "bob", "bad name", "hi"),
    ("agents", "register", "bad name", "--role", "worker"),
    ("context", "info", "owner with space"),
]


@pytest.mark.parametrize("args", BAD_NAMES, ids=lambda a: " ".join(a[:2]))
def test_a_name_the_core_refuses_is_a_usage_error(cli: Cli, args: tuple[str, ...]) -> None:
    out = cli(*args, expect=2)
    assert out.stderr.startswith("error: "), out
    assert "use only ASCII letters" in out.stderr or "the limit is" in out.stderr, out
    out = cli(*args, "--json", expect=2)
    assert json.loads(out.stderr)["error"] == "ValidationError", out


def test_not_found_stays_an_error(cli: Cli) -> None:
    out = cli("task", "show", "t-nosuch", "--json", expect=1)
    assert json.loads(out.stderr)["error"] == "NotFound", out


def test_swarm_hook_keeps_exit_1_for_a_refused_name(cli: Cli) -> None:
    out = cli("hook", "Stop", "--queue", "bad queue", input="{}", expect=1)
    assert "queue 'bad queue' contains ' '" in out.stderr, out


@pytest.mark.parametrize(
    "args",
    [
        ("a2a", "--queue", "q1"),
        ("mcp", "--transport", "http"),
        ("dashboard",),
    ],
    ids=lambda a: a[0],
)
@pytest.mark.parametrize("host", ["", "  "])
def test_an_empty_host_is_a_usage_error_everywhere(
    cli: Cli, args: tuple[str, ...], host: str
) -> None:
    out = cli(*args, "--host", host, expect=2)
    assert "Error: --host is empty: give the address to listen on" in out.stderr, out


HUGE = 1024 * 1024


@pytest.mark.parametrize(
    "args",
    [
        ("events", "--limit", "7" * HUGE),
        ("task", "list", "--limit=" + "x" * HUGE),
        ("task", "list", "--status", "s" * HUGE),
        ("no-such-command-" + "y" * HUGE,),
        ("task", "show", "t-1", "z " * (HUGE // 2)),
        ("task", "claim", "q1", "--wait", "9" * HUGE),
        ("events", "--limit", "line\n" * (HUGE // 5)),  # (click repeats it as its repr)
        ("no-such-command-\t" + "y" * HUGE,),
    ],
    ids=["int", "int=", "choice", "command", "extra", "seconds", "newlines", "tab"],
)
def test_an_error_repeats_a_huge_value_cut(cli: Cli, args: tuple[str, ...]) -> None:
    out = cli(*args, expect=2)
    assert len(out.stderr) < 2000, out
    assert "... (1,048,5" in out.stderr and " characters)" in out.stderr, out


def test_a_value_of_a_readable_length_is_repeated_whole(cli: Cli) -> None:
    value = "x" * 900  # (as a long path is: shown whole)
    out = cli("events", "--limit", value, expect=2)
    assert repr(value) in out.stderr and "characters)" not in out.stderr, out


def test_the_cores_error_quoting_a_huge_url_is_cut(cli: Cli) -> None:
    """A ConfigError quotes pieces of a huge --url (an option's value, the host): printed
    whole before (a review's catch), click's errors alone were cut."""
    for url in (f"redis://h:6379?retries={'x' * HUGE}", f"redis://{'h' * HUGE}:6379"):
        out = cli("--url", url, "status", expect=2)  # (a bad option: a usage error)
        assert len(out.stderr) < 2000 and " characters)" in out.stderr, out.stderr[:300]
