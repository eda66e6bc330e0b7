"""``swarm doctor``'s repair of an inbox key of another type (``redis-cli -u URL DEL KEY``) can
be pasted when the agent's name is hostile: the key was shown Python-quoted (``'...\\x1b...'``:
safe to show, but redis-cli took the backslashes as they are and deleted nothing), and a name
with a single quote in it broke the shell's quoting. Now such a key is written for
``redis-cli --quoted-input``: printable ASCII only, each other byte ``\\xNN``, which redis-cli
decodes. The command is run as the warning gives it, against a real server."""

from __future__ import annotations

import re
import shlex
import subprocess
from typing import Any

import pytest

from redis_swarm._keys import Keys
from redis_swarm._ops._stream_health import DamagedStream

from ._cli import Cli

K = Keys("test")  # (the swarm of the ``cli`` fixture)
REPAIR = re.compile(r"as a shard, coordinator or admin user: (redis-cli -u URL .*?) \(it holds")


def _printable_ascii(text: str) -> bool:
    return all(0x20 <= ord(c) < 0x7F for c in text)


@pytest.mark.parametrize(
    "agent",
    [
        "ag\x1b[2Jx",  # a screen clear
        "it's",  # a quote: the shell's single quotes end there
        'é\u202ex\\y"$(true)',  # UTF-8, a bidi override, redis-cli's and the shell's specials
    ],
)
def test_the_del_of_a_hostile_inbox_key_pastes_as_shown(
    raw: Any, cli: Cli, redis_url: str, agent: str
) -> None:
    raw.zadd(K.presence, {agent: 9_999_999_999_999})
    raw.set(K.inbox(agent), "not a stream")
    report = cli("doctor", "--json", expect=None).json()
    (warning,) = [w for w in report["warnings"] if "is not a stream" in w]
    match = REPAIR.search(warning)
    assert match, warning
    command = match.group(1)
    assert _printable_ascii(command), command  # (nothing a terminal acts on)
    done = subprocess.run(
        command.replace("URL", shlex.quote(redis_url), 1),
        shell=True,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == "1", (command, done)
    assert raw.exists(K.inbox(agent)) == 0


def test_a_key_no_command_line_gives_is_said_so() -> None:
    """A key that is no UTF-8 text (a lone surrogate) has no redis-cli word: said so."""
    stream = DamagedStream("inbox", "rs:{x}:inbox:\udc80", "", 0, "\udc80", wrong_type=True)
    assert "from a program (the key is no UTF-8 text" in stream.warning
    assert "redis-cli -u URL" not in stream.warning
