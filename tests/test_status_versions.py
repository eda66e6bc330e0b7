"""A context version as people see it: ``swarm status`` shows the short form every human view
shows (``short_version``), its JSON the whole version; the short form is a version to ask
for."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from redis_swarm import Swarm
from redis_swarm._printable import SHORT_VERSION, short_version

from ._cli import Cli


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def test_status_shows_a_context_version_short_and_its_json_whole(cli: Cli, swarm: Swarm) -> None:
    version = swarm.publish_context("shard-a", "hello\n", source="notes.md").version
    assert len(version) > SHORT_VERSION

    [line] = [row for row in cli("status").stdout.splitlines() if "shard-a" in row]
    assert line.split()[:2] == ["shard-a", short_version(version)]
    assert version not in line

    [context] = cli.json("status")["contexts"]
    assert context["version"] == version
    # what the table shows is a version the commands that ask for one take
    shown = cli.json("context", "info", "shard-a", "--version", short_version(version))
    assert shown["version"] == version
