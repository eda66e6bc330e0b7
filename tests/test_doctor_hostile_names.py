"""``swarm doctor`` prints no terminal escape a worker wrote: a worker may HINCRBY a counter
field of any name and XADD to, and ZADD into the presence set, an agent of any name
(docs/security.md, 'What Redis ACLs cannot stop'), and the doctor's ``counters`` and
``streams`` rows and its warnings named those queues, shards and agents raw: an OSC 52
clipboard write, a window title, a screen clear reached the terminal of whoever ran it. Each
control character is shown escaped (``_printable.printable``), a name that is no valid one
quoted (``shown_name``). Real server; the names written with a plain client."""

from __future__ import annotations

from typing import Any

from redis_swarm._keys import Keys
from redis_swarm._ops._stream_health import MAX_STREAM_ID

from ._cli import Cli

K = Keys("test")  # (the swarm of the ``cli`` fixture)
CLIPBOARD = "z\x1b]52;c;UFdORUQ=\x1b\\"  # an OSC 52 clipboard write, ST-terminated
TITLE = "q\x1b]0;PWNED\x07\x1b[31mRED"  # a window title, then red
CLEAR = "ag\x1b[2Jx"  # a screen clear
NEWLINE = "n\nwarning: all is well"  # a line of the doctor's own, forged


def _raw_controls(text: str) -> list[str]:
    """Every C0 (but newline and tab) and C1 control character, and DEL, in ``text``."""
    return [c for c in text if (ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0]


def _forge(raw: Any) -> None:
    """What a worker's user may write (its ACL allows each of these commands)."""
    raw.hincrby(K.counts, f"shard:{CLIPBOARD}|pending", -1)
    raw.hincrby(K.counts, f"{TITLE}|pending", 1)
    raw.hincrby(K.counts, f"{NEWLINE}|pending", 1)
    raw.xadd(K.inbox(CLEAR), {"a": "b"}, id=MAX_STREAM_ID)
    raw.zadd(K.presence, {CLEAR: 9_999_999_999_999})


def test_doctor_shows_every_control_character_of_a_stored_name_escaped(raw: Any, cli: Cli) -> None:
    _forge(raw)
    out = cli("doctor", expect=None)
    shown = out.stdout + out.stderr
    assert "counters" in out.stdout and "streams" in out.stdout, out
    assert "warning:" in out.stdout, out
    assert not _raw_controls(shown), _raw_controls(shown)
    flat = " ".join(shown.split())  # (the table wraps long rows)
    # Each name named, escaped: the clipboard write's shard, the titled queue, the agent.
    assert "shard 'z\\x1b]52;c;UFdORUQ=\\x1b\\\\' pending: -1" in flat, flat
    assert "\\x1b]0;PWNED\\x07" in flat, flat
    assert "\\x1b[2Jx" in flat, flat
    assert "inbox of agent 'ag\\x1b[2Jx'" in flat, flat
    # A name holding a line break starts no line of its own (quoted: shown_name).
    assert not any(line.startswith("warning: all is well") for line in shown.splitlines())
    assert "'n\\nwarning: all is well'" in flat, flat


def test_doctor_json_names_them_as_they_are(raw: Any, cli: Cli) -> None:
    """JSON output stays JSON: its encoder escapes control characters; the names are those
    stored, in the core's words (``shown_name``: quoted, escaped)."""
    _forge(raw)
    out = cli("doctor", "--json", expect=None)
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout
    report = out.json()
    assert "'ag\\x1b[2Jx'" in report["streams"], report["streams"]
    assert "\\x1b]0;PWNED\\x07" in report["counters"], report["counters"]
    assert any("the inbox of agent 'ag\\x1b[2Jx'" in w for w in report["warnings"])


def test_a_recount_names_a_forged_queue_escaped(raw: Any, cli: Cli) -> None:
    """``--recount`` sets a forged queue's counter back, and its row names the queue."""
    raw.hincrby(K.counts, f"{TITLE}|pending", 3)
    out = cli("doctor", "--recount", expect=None)
    shown = out.stdout + out.stderr
    assert "counters_recounted" in out.stdout, out
    assert not _raw_controls(shown), _raw_controls(shown)
    assert "\\x1b]0;PWNED\\x07" in " ".join(shown.split()), shown
