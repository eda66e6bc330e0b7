"""``swarm doctor`` warns of a server that keeps the swarm in memory only (``appendonly no``
and ``save ''``: a restart loses every task, lease and finding), says RDB snapshots alone in
its ``persistence`` row (a crash loses the writes since the last one: no warning), and is
silent with AOF on, as the embedded server runs. The test servers run with no persistence at
all, as a server started bare (``redis-server --save '' --appendonly no``) does."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from ._cli import Cli
from ._servers import RedisServer, ServerFactory

# How the warning starts (the rest says what to do).
IN_MEMORY_ONLY = "the server keeps the swarm in memory only (appendonly no, save '')"


@pytest.fixture
def bare(servers: ServerFactory) -> Iterator[RedisServer]:
    server = servers.start()  # --save '' --appendonly no
    try:
        yield server
    finally:
        server.stop()


def _warned(report: dict[str, Any]) -> list[str]:
    return [w for w in report.get("warnings", []) if w.startswith(IN_MEMORY_ONLY)]


def test_a_server_without_persistence_is_warned_of(bare: RedisServer) -> None:
    cli = Cli(bare.url)
    report = cli.json("doctor")
    assert report["ok"] is True  # (a warning: a swarm may be meant to be thrown away)
    assert report["persistence"] == "none: no AOF, no RDB snapshots (see the warnings)"
    (warning,) = _warned(report)
    assert "a restart or a crash loses every task" in warning
    assert "CONFIG SET appendonly yes" in warning and "CONFIG REWRITE" in warning
    human = " ".join(cli("doctor").stdout.split())
    assert f"warning: {IN_MEMORY_ONLY}" in human


def test_rdb_snapshots_alone_are_said_in_the_row_and_aof_is_silent(bare: RedisServer) -> None:
    cli = Cli(bare.url)
    with contextlib.closing(bare.client()) as admin:
        admin.config_set("save", "3600 1")
        report = cli.json("doctor")
        assert _warned(report) == []
        assert report["persistence"] == (
            "rdb snapshots only (save 3600 1): a crash loses the writes since the last one"
        )
        admin.config_set("save", "")
        admin.config_set("appendonly", "yes")
        report = cli.json("doctor")
        assert _warned(report) == [] and report["persistence"] == "aof everysec"
