"""``swarm doctor`` on a server it cannot reach knocks on every address of the URL together:
each silent address waits up to a second, and six silent cluster nodes, knocked on one after
another, cost the report six seconds. Knocked on together they cost one, and the report still
lists them in the URL's order, in the same words."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

from redis_swarm._config import Settings
from redis_swarm._net import KNOCK_TIMEOUT_S, knock

from ._cli import Cli
from ._servers import free_port

SILENT = 6
_NO_ANSWER = f"no answer within {KNOCK_TIMEOUT_S:g} s: a firewall"
_REFUSED = "refuses connections: nothing listens on that port"


@contextlib.contextmanager
def _silent_ports(count: int) -> Iterator[list[int]]:
    """Ports that take no connection and refuse none: each listens with a backlog of 0 that
    connections nobody accepts have filled, so the kernel drops every further SYN unanswered."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            listener = stack.enter_context(socket.socket())
            listener.bind(("127.0.0.1", 0))
            listener.listen(0)
            port = listener.getsockname()[1]
            for _ in range(8):  # (until one is not taken: the backlog is full)
                filler = stack.enter_context(socket.socket())
                filler.settimeout(0.2)
                try:
                    filler.connect(("127.0.0.1", port))
                except TimeoutError:
                    break
            else:
                raise AssertionError(f"port {port}'s backlog never filled")
            ports.append(port)
        yield ports


def test_silent_nodes_cost_one_wait_not_one_each() -> None:
    with _silent_ports(SILENT) as ports:
        url = "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in ports)
        started = time.monotonic()
        reached = knock(Settings.from_url(url))
        elapsed = time.monotonic() - started
    assert list(reached) == [f"127.0.0.1:{port}" for port in ports]
    assert all(met.startswith(_NO_ANSWER) for met in reached.values()), reached
    assert elapsed < SILENT * KNOCK_TIMEOUT_S / 2, f"{SILENT} silent nodes took {elapsed:.1f} s"


def test_the_doctor_lists_the_addresses_in_the_urls_order() -> None:
    """Silent nodes among refusing ones (whose answers come back first): the report follows
    the URL, not the order the answers came in, and the silent nodes add one wait to the
    doctor's own tries (connect_timeout each), not one each."""
    connect_timeout = 0.2
    with _silent_ports(SILENT) as silent:
        refusing = [free_port() for _ in range(2)]  # (free: nothing listens there)
        order = [silent[0], refusing[0], *silent[1:4], refusing[1], *silent[4:]]
        addresses = [f"127.0.0.1:{port}" for port in order]
        options = f"?connect_timeout={connect_timeout}&retries=0"
        cli = Cli("redis+cluster://" + ",".join(addresses) + options)
        started = time.monotonic()
        report = cli("doctor", "--json", expect=1).json()
        elapsed = time.monotonic() - started
    assert list(report["reached"]) == addresses
    for port, met in zip(order, report["reached"].values(), strict=True):
        assert met.startswith(_NO_ANSWER if port in silent else _REFUSED), (port, met)
    assert report["ok"] is False
    tries = SILENT * connect_timeout  # (the doctor's connection, before it knocks)
    assert elapsed < tries + SILENT * KNOCK_TIMEOUT_S / 2, f"the doctor took {elapsed:.1f} s"
