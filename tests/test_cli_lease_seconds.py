"""`--lease` (and `--next-lease`) take what the Python API and `--jsonl`'s lease_s take: a
number of seconds from the core's MIN_LEASE_S (1 ms) to its MAX_LEASE_S (30 days), where the
CLI took whole seconds from 1 only; below the minimum, one usage line saying the range."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest

from redis_swarm import Swarm
from redis_swarm._codec import readable_number
from redis_swarm._validate import MAX_LEASE_S, MIN_LEASE_S
from redis_swarm.cli import main

from ._cli import Cli

WORKER = "w-lease"
RANGE = f"from {readable_number(MIN_LEASE_S)} to {readable_number(MAX_LEASE_S)}"


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as s:
        yield s


def test_post_takes_a_fraction_of_a_second_down_to_the_core_s_minimum(
    cli: Cli, swarm: Swarm
) -> None:
    for given, stored in (("0.5", 0.5), ("2.25", 2.25), (f"{MIN_LEASE_S:g}", MIN_LEASE_S)):
        posted = cli.json("task", "post", "q", "x", "--lease", given)
        assert posted["lease_s"] == stored
        assert swarm.get_task(posted["id"]).lease_s == stored
    # (as a --jsonl line's lease_s, the same range)
    lines = '{"description": "a", "lease_s": 0.5}\n'
    assert cli.json("task", "post", "q", "--jsonl", "-", input=lines)["items"][0]["lease_s"] == 0.5


def test_claim_renew_and_the_next_lease_take_a_fraction_of_a_second(cli: Cli, swarm: Swarm) -> None:
    swarm.post_task("q", "one")
    swarm.post_task("q", "two")
    claimed = cli.json("task", "claim", "q", "--worker", WORKER, "--lease", "0.25")
    assert claimed["lease_deadline"] - claimed["claimed_at"] == 250
    renewed = cli.json("task", "renew", claimed["id"], "--token", claimed["token"],
                       "--lease", "60.5")  # fmt: skip
    assert 60_500 <= renewed["lease_deadline"] - claimed["claimed_at"] < 70_000
    out = cli.json(
        "task", "report", claimed["id"], "--token", claimed["token"], "--summary", "s",
        "--claim-next", "q", "--next-lease", "1.5",
    )  # fmt: skip
    following = out["next"]
    assert following["lease_deadline"] - following["claimed_at"] == 1_500


@pytest.mark.parametrize(
    "command",
    [
        ("task", "post", "q", "x", "--lease"),
        ("task", "claim", "q", "--worker", WORKER, "--lease"),
        ("task", "renew", "t-01m97c9y0g386gvs8n", "--token", "1.x", "--lease"),
        (
            "task",
            "report",
            "t-01m97c9y0g386gvs8n",
            "--token",
            "1.x",
            "--summary",
            "s",
            "--claim-next",
            "q",
            "--next-lease",
        ),
        ("run", "--queue", "q", "--exec", "true", "--lease"),
        ("serve", "lib", "--exec", "cat", "--lease"),
    ],
    ids=["post", "claim", "renew", "report", "run", "serve"],
)
@pytest.mark.parametrize("lease", ["0", "0.0005", "-1", "nan", "2592000.5"])
def test_a_lease_outside_the_core_s_range_is_refused_saying_the_range(
    cli: Cli, command: tuple[str, ...], lease: str
) -> None:
    out = cli(*command, lease, expect=2)
    assert f"is not a number of seconds {RANGE}" in out.stderr, out
    assert "Traceback" not in out.stderr


def test_every_lease_option_takes_the_core_s_range() -> None:
    """Every command's --lease and --next-lease, wherever it is defined: the core's bounds,
    not a copy of them (``LEASE_SECONDS``)."""
    found = []
    ctx = click.Context(main)
    for name in main.list_commands(ctx):
        command = main.get_command(ctx, name)
        commands = [command]
        if isinstance(command, click.Group):
            commands = [command.get_command(ctx, sub) for sub in command.list_commands(ctx)]
        for each in commands:
            assert each is not None
            for param in each.params:
                if isinstance(param, click.Option) and {"--lease", "--next-lease"} & set(
                    param.opts
                ):
                    found.append(f"{name} {each.name} {param.opts[0]}")
                    kind = param.type
                    assert isinstance(kind, click.types.FloatParamType), found[-1]
                    # (as the command line gives it: a string)
                    assert kind(f"{MIN_LEASE_S:g}", param, ctx) == MIN_LEASE_S
                    assert kind(f"{MAX_LEASE_S:g}", param, ctx) == MAX_LEASE_S
                    with pytest.raises(click.BadParameter):
                        kind(f"{MIN_LEASE_S / 2:g}", param, ctx)
    assert len(found) >= 6, found
