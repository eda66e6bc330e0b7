"""A bad-input tour of the CLI and the API: endless or oversized `-`/@FILE inputs are refused
at a bound (not read until memory runs out), blank reasons and profile fields are refused,
a sweep cannot remove live agents, --host is shown safely, and wrong types are named."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from redis_swarm import ConfigError, Swarm, TaskStatus, ValidationError
from redis_swarm._models import BEAT_EVERY_S
from redis_swarm._validate import MAX_CAPACITY_TOKENS, MAX_DESCRIPTION_CHARS
from redis_swarm.cli import main
from redis_swarm.cli._common import MAX_INPUT_BYTES, UTF8_MAX_BYTES

from ._cli import Cli

# B1: every command that reads a `-` or @FILE argument stops at its bound on an endless one.
ENDLESS = [
    ("ask", "--timeout", "1", "--", "shard1", "@/dev/zero"),
    ("msg", "broadcast", "--", "@/dev/zero"),
    ("msg", "send", "--", "alice", "@/dev/zero"),
    ("msg", "send", "--data", "@/dev/zero", "--", "alice", "hi"),
    ("task", "post", "q1", "@/dev/zero"),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args", ENDLESS, ids=lambda a: " ".join(a[:2]))
def test_an_endless_file_is_refused_at_a_bound(cli: Cli, args: tuple[str, ...]) -> None:
    out = cli(*args, env={"SWARM_AGENT": "bob"}, expect=2)
    assert "/dev/zero is larger than" in out.stderr, out
    assert "bytes" in out.stderr and "swarm context publish" in out.stderr, out


@pytest.mark.timeout(60)
def test_an_endless_stdin_is_refused_at_the_global_bound(cli: Cli) -> None:
    with open("/dev/zero", "rb") as zero:
        result = CliRunner().invoke(
            main, ["msg", "broadcast", "--", "-"], input=zero, env={**cli.env, "SWARM_AGENT": "bob"}
        )
    assert result.exit_code == 2, result.output
    assert f"stdin is larger than {MAX_INPUT_BYTES:,} bytes" in result.stderr


def test_a_file_one_byte_over_the_global_bound_is_refused_unread(cli: Cli, tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    with big.open("wb") as f:  # sparse: no disk, and refused by its size before any read
        f.truncate(MAX_INPUT_BYTES + 1)
    out = cli("msg", "send", "--", "alice", f"@{big}", env={"SWARM_AGENT": "bob"}, expect=2)
    assert f"is larger than {MAX_INPUT_BYTES:,} bytes" in out.stderr, out


def test_a_description_file_one_byte_over_its_own_bound_is_refused(
    cli: Cli, tmp_path: Path
) -> None:
    limit = UTF8_MAX_BYTES * MAX_DESCRIPTION_CHARS
    over = tmp_path / "over.txt"
    over.write_bytes(b"a" * (limit + 1))
    out = cli("task", "post", "q1", f"@{over}", expect=2)
    assert f"over.txt is larger than {limit:,} bytes" in out.stderr, out


# B3: a failure needs its reason.
@pytest.mark.parametrize("error", ["", "   "])
def test_a_blank_failure_reason_is_refused(swarm: Swarm, error: str) -> None:
    t = swarm.post_task("q1", "do it")
    [held] = swarm.claim("q1", worker="w", n=1)
    with pytest.raises(ValidationError, match="say why the task failed"):
        swarm.fail(held.id, held.token, error)
    assert swarm.get_task(t.id).status is TaskStatus.CLAIMED


def test_the_cli_says_the_cores_refusal_of_a_blank_failure_reason(cli: Cli) -> None:
    posted = cli.json("task", "post", "q1", "do it")
    held = cli.json("task", "claim", "q1", "--worker", "w")
    task = held[0] if isinstance(held, list) else held
    out = cli("task", "fail", posted["id"], "--token", task["token"], "--error", "  ", expect=2)
    assert "say why the task failed" in out.stderr, out


# B4: a profile's fields are names or absent; capacity is bounded.
@pytest.mark.parametrize("field", ["model", "specialization"])
@pytest.mark.parametrize("value", ["", "   "])
def test_a_blank_profile_field_is_refused(swarm: Swarm, field: str, value: str) -> None:
    with pytest.raises(ValidationError, match=f"{field} is blank"):
        swarm.register("worker", name="a1", **{field: value})  # type: ignore[arg-type]


def test_capacity_tokens_is_bounded(swarm: Swarm, cli: Cli) -> None:
    with pytest.raises(ValidationError, match="capacity_tokens must be an integer from 1"):
        swarm.register("worker", name="a1", capacity_tokens=MAX_CAPACITY_TOKENS + 1)
    assert swarm.register("worker", name="a2", capacity_tokens=MAX_CAPACITY_TOKENS)
    out = cli(
        "agents", "register", "a3", "--role", "worker",
        "--capacity-tokens", "99999999999999999999", expect=2,
    )  # fmt: skip
    assert "--capacity-tokens" in out.stderr, out


# B5: a sweep's --stale-after cannot be shorter than a live agent's silence.
def test_sweep_refuses_a_stale_after_below_the_beat_interval(cli: Cli) -> None:
    cli("agents", "register", "live", "--role", "worker")
    out = cli("agents", "sweep", "--stale-after", "0", expect=2)
    assert f"{BEAT_EVERY_S:g} s a live agent may be silent" in out.stderr, out
    ids = [a["id"] for a in cli.json("agents")["items"]]
    assert "live" in ids
    cli("agents", "sweep", "--stale-after", f"{BEAT_EVERY_S:g}")
    assert "live" in [a["id"] for a in cli.json("agents")["items"]]


# B6: --host is checked for emptiness and shown safely.
def test_a2a_refuses_an_empty_host(cli: Cli) -> None:
    pytest.importorskip("a2a")
    out = cli("a2a", "--queue", "q1", "--host", "", expect=None)
    assert out.code != 0
    assert "--host is empty" in out.stderr, out


@pytest.mark.parametrize("host", ["evil\nhost", "h" * 10_000])
def test_a2a_shows_a_bad_host_escaped_and_cut(cli: Cli, host: str) -> None:
    pytest.importorskip("a2a")
    out = cli("a2a", "--queue", "q1", "--host", host, expect=None)
    assert out.code != 0
    # (refused as a host this machine cannot listen on: as it is with a token)
    line = next(x for x in out.stderr.splitlines() if "cannot listen on --host" in x)
    assert "\x1b" not in out.stderr and "\u202e" not in out.stderr, out
    assert "evil\nhost" not in out.stderr
    assert len(line) < 400, line


# B7: wrong types are named.
@pytest.mark.parametrize("url", [123, b"redis://localhost:1"])
def test_a_non_string_url_is_named(url: object) -> None:
    with pytest.raises(ConfigError, match=f"must be a string, got {type(url).__name__}"):
        Swarm(url)  # type: ignore[arg-type]


def test_claim_of_bytes_says_bytes(swarm: Swarm) -> None:
    with pytest.raises(ValidationError, match="got bytes"):
        swarm.claim(b"q1", worker="w")  # type: ignore[arg-type]


def test_a_bytes_description_is_named(swarm: Swarm) -> None:
    with pytest.raises(ValidationError, match="description must be a string, got bytes"):
        swarm.post_task("q1", b"d")  # type: ignore[arg-type]
