"""The fixtures' own servers: a port taken between ``free_port`` and the server's bind (by
another test's server, run in parallel) is never mistaken for the new server."""

from __future__ import annotations

import pytest

from . import _servers
from ._servers import PortTaken, ServerFactory


def test_a_port_taken_by_another_server_is_replaced(
    servers: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = servers.start()
    ports = iter([other.port, _servers.free_port()])
    monkeypatch.setattr(_servers, "free_port", lambda: next(ports))
    server = servers.start()
    assert server.port != other.port
    client = server.client()
    try:
        assert int(client.info("server")["process_id"]) == server.proc.pid
    finally:
        client.close()


def test_a_port_the_caller_chose_is_not_replaced(servers: ServerFactory) -> None:
    other = servers.start()
    with pytest.raises(PortTaken):
        servers.start(port=other.port)
