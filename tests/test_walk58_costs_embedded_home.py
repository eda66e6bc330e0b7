"""The embedded server's notes name its home in what stops it, the default home too:
``'swarm --home DIR down' stops it``. ``Swarm("embedded")`` started from Python (which reads
no environment: the default home) said ``'swarm down' stops it``, and in a shell whose
``SWARM_HOME`` names another home that command stopped the other server. Real servers."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from redis_swarm import Settings, Swarm
from redis_swarm._embedded import EmbeddedServer

from ._cli import Cli


def test_the_started_note_of_the_default_home_names_it(
    swarm_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # (this test's home taken for the default one, as ~/.local/share/redis-swarm is)
    monkeypatch.setattr("redis_swarm._embedded.DEFAULT_HOME", swarm_home)
    other = swarm_home.parent / "o"
    with Swarm(Settings.from_url("embedded", home=swarm_home)) as swarm:
        swarm.ping()
    note = capsys.readouterr().err
    down = f"swarm --home {shlex.quote(str(swarm_home))} down"
    assert f"'{down}' stops it" in note, note
    assert "'swarm down'" not in note, note
    # the command it names stops that server, in a shell whose SWARM_HOME names another
    EmbeddedServer(other).ensure_running(say=None)
    try:
        Cli("embedded", env={"SWARM_HOME": str(other)})(*shlex.split(down)[1:])
        assert not EmbeddedServer(swarm_home).is_running()
        assert EmbeddedServer(other).is_running()
    finally:
        EmbeddedServer(other).stop()
