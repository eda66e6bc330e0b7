"""``swarm msg`` and ``swarm agents`` as an adversarial review of their messages found them:
a signal after the inbox read took messages, a body beginning with '@', '*' as a recipient,
duplicate keys in --data, a role no agent has."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from redis_swarm import Swarm

from ._cli import Cli, subprocess_env


def test_a_signal_after_the_wait_took_messages_ends_the_read_as_it_would_have(
    redis_url: str, tmp_path: Path
) -> None:
    """``swarm msg inbox --wait 30 --json > f && use f``: a SIGTERM or Ctrl-C that arrives
    once the messages were taken (held while they are printed) no longer kills the command
    after it printed them (exit -15, -2: the caller's ``&&`` dropped what it consumed); it
    ends with exit 0, its output whole."""
    env = subprocess_env(redis_url, "test", tmp_path)
    command = [sys.executable, "-m", "redis_swarm", "--json", "msg", "inbox", "a"]
    with Swarm(redis_url, swarm="test") as s:
        s.register("worker", name="a")
        for number in (signal.SIGTERM, signal.SIGINT):
            bodies = [f"{number}-{i}:" + "x" * 8000 for i in range(20)]  # more than a pipe holds
            for body in bodies:
                s.send("a", body)
            with subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            ) as reader:
                assert reader.stdout is not None and reader.stderr is not None
                first = reader.stdout.read(1)  # printing, taken: the pipe is full
                reader.send_signal(number)
                rest = reader.stdout.read()
                reader.wait(30)
                err = reader.stderr.read().decode()
            assert reader.returncode == 0, (number, err)
            assert [m["body"] for m in json.loads(first + rest)["items"]] == bodies
            assert s.inbox("a") == []


def test_a_body_beginning_with_at_says_how_to_send_it(cli: Cli, redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as s:
        s.register("worker", name="h1")
    for args in (("send", "h1"), ("broadcast",)):
        out = cli("msg", *args, "@alice please review", "--from", "s", expect=2)
        assert "no such file: alice please review" in out.stderr
        assert "pipe it in and give - in its place" in out.stderr, out.stderr
    # and so it is sent
    sent = cli("msg", "send", "h1", "-", "--from", "s", input="@alice please review")
    assert sent.code == 0
    with Swarm(redis_url, swarm="test") as s:
        assert [m.body for m in s.inbox("h1")] == ["@alice please review"]


def test_a_star_recipient_points_to_broadcast(cli: Cli) -> None:
    out = cli("msg", "send", "*", "hi", "--from", "s", expect=2)
    assert "swarm msg broadcast BODY" in out.stderr, out.stderr
    assert "contains '*'" not in out.stderr


def test_json_with_a_key_given_twice_is_refused(cli: Cli, redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as s:
        s.register("worker", name="h1")
    out = cli("msg", "send", "h1", "hi", "--from", "s", "--data", '{"a":1,"a":2}', expect=2)
    assert 'names the key "a" twice' in out.stderr, out.stderr
    nested = cli("msg", "send", "h1", "hi", "--data", '{"b":{"c":1,"c":1}}', expect=2)
    assert 'names the key "c" twice' in nested.stderr
    with Swarm(redis_url, swarm="test") as s:
        assert s.inbox("h1") == []


def test_agents_of_a_role_nobody_has_says_so(cli: Cli, redis_url: str) -> None:
    out = cli("agents", "--role", "nosuchrole")
    assert "no agent has role 'nosuchrole' (no agent is registered)" in out.stderr, out
    with Swarm(redis_url, swarm="test") as s:
        s.register("worker", name="w1")
        s.register("shard", name="s1")
    out = cli("agents", "--role", "nosuchrole")
    assert "no agent has role 'nosuchrole' (the agents registered have: shard, worker)" in (
        out.stderr
    )
    assert out.stdout == ""
    stale = cli("agents", "--role", "worker", "--stale")
    assert "no stale agent has role 'worker'" in stale.stderr
    assert cli.json("agents", "--role", "nosuchrole") == {"items": []}
