"""``swarm watch`` on an 80-column line: one agent with a long name has that name cut, not
every column squeezed to a letter (rich squeezes every column alike when a row is wider than
the line: ``state``, ``seen`` and ``specialization`` were lost); ``--json`` keeps it whole."""

from __future__ import annotations

import json

from redis_swarm import Swarm

from ._cli import Cli

LONG = "w" * 60 + "-end"  # 64 characters: the longest agent name


def test_a_long_agent_name_is_cut_and_the_other_columns_stay_readable(
    cli: Cli, redis_url: str
) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        swarm.register("worker", name=LONG, specialization="invoices", model="claude-haiku")
        swarm.register("worker", name="short-1", specialization="search", model="gpt5")
    out = cli("watch", "--once", env={"COLUMNS": "80"}).stdout
    lines = out.splitlines()
    table = lines[lines.index("Agents") + 1 :]
    table = table[: table.index("")]  # (the header line above is one the view wraps at will)
    assert len(table) == 3 and all(len(line) <= 80 for line in table), out
    [heading] = [line for line in lines if line.startswith("agent ")]
    for column in ("role", "specialization", "model", "state", "seen", "task"):
        assert column in heading.split(), out  # each heading whole
    [short] = [line for line in lines if line.startswith("short-1 ")]
    assert short.split()[1:5] == ["worker", "search", "gpt5", "alive"], out
    [long] = [line for line in lines if line.startswith("wwww")]
    name = long.split()[0]
    assert name.endswith("…") and LONG.startswith(name[:-1]) and len(name) >= 8, out
    assert long.split()[1:5] == ["worker", "invoices", "claude-haiku", "alive"], out
    # the snapshot (--json) keeps every name whole
    snap = json.loads(cli("--json", "watch", "--once").stdout)
    assert LONG in [a["id"] for a in snap["agents"]]


def test_names_that_fit_are_not_cut(cli: Cli, redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        swarm.register("worker", name="haiku_worker_1a2b3c4d", model="haiku")
    out = cli("watch", "--once", env={"COLUMNS": "80"}).stdout
    assert "haiku_worker_1a2b3c4d " in out and "…" not in out, out
