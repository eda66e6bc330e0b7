"""The quick probe of an outage (``RequestWatch._probed``) asks on a handle of its own with
short timeouts and no retry (``Settings.with_timeouts``), and its words name the pool's URL as
the user gave it: not the probe's options, never a password."""

from __future__ import annotations

import pytest

from redis_swarm import ConfigError, Settings, Swarm
from redis_swarm._runner.request_watch import PROBE_TIMEOUT_S, RequestWatch

from ._servers import free_port


class _Watch(RequestWatch):
    """A watch of its own over ``swarm``, its lines kept."""

    def __init__(self, swarm: Swarm) -> None:
        self.swarm = swarm
        self.lines: list[str] = []
        self._set_up_watch()

    def _note(self, line: str) -> None:
        self.lines.append(line)


def test_the_probe_names_the_pools_url_not_its_own_options() -> None:
    """Nothing listens at the URL's port: the probe says it cannot reach Redis there, naming
    the URL as the pool's handle has it (its password masked, its own timeout kept)."""
    port = free_port()
    with Swarm(f"redis://:s3cret@127.0.0.1:{port}/0?socket_timeout=5", swarm="probe") as swarm:
        said = _Watch(swarm)._probed()
        shown = swarm.settings.url
    assert shown == f"redis://:***@127.0.0.1:{port}/0?socket_timeout=5"
    assert f"cannot reach Redis at {shown}:" in said, said
    assert "s3cret" not in said, said
    assert "retries=" not in said and "connect_timeout=" not in said, said


def test_settings_with_timeouts_are_shown_as_those_they_were_made_from() -> None:
    settings = Settings.from_url("redis://user:s3cret@127.0.0.1:7000/2?socket_timeout=5")
    quick = settings.with_timeouts(
        retries=0, socket_timeout=PROBE_TIMEOUT_S, connect_timeout=PROBE_TIMEOUT_S
    )
    assert quick.url == settings.url == "redis://user:***@127.0.0.1:7000/2?socket_timeout=5"
    assert (quick.retries, quick.socket_timeout, quick.connect_timeout) == (0, 1.0, 1.0)
    # (what connects is the settings themselves: their own timeouts, the password)
    assert quick.render_url(mask=False) == (
        "redis://user:s3cret@127.0.0.1:7000/2?retries=0&socket_timeout=1&connect_timeout=1"
    )
    assert quick != settings
    # Settings made from them otherwise are shown as they are.
    other = quick.replace(db=3)
    assert other.url == (
        "redis://user:***@127.0.0.1:7000/3?retries=0&socket_timeout=1&connect_timeout=1"
    )
    with pytest.raises(ConfigError, match="unknown setting 'shown_as'"):
        Settings.from_url("redis://127.0.0.1:7000", shown_as="redis://elsewhere:1")
