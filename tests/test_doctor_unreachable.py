"""``swarm doctor`` on a server it cannot reach tells more than the error that sent the user to
it: what a bare connection to each address of the URL meets (nothing listening, a name that
does not resolve, a socket file missing, or reached: the trouble is past the connection).
It said only the error again, without the "'swarm doctor' tells more" that named it."""

from __future__ import annotations

import socket
from pathlib import Path

from ._cli import Cli
from ._servers import free_port


def _closed_port() -> int:
    return free_port()  # (free: nothing listens there)


def test_a_port_nothing_listens_on_is_said_so() -> None:
    port = _closed_port()
    out = Cli(f"redis://127.0.0.1:{port}")("doctor", "--json", expect=1)
    report = out.json()
    assert report["ok"] is False
    assert report["reached"] == {
        f"127.0.0.1:{port}": "refuses connections: nothing listens on that port (is the "
        "server started?)"
    }
    assert "Connection refused;" in report["warnings"][0]  # (not "refused.;")
    assert "swarm doctor" not in report["warnings"][0]


def test_each_node_of_a_cluster_url_is_knocked_on() -> None:
    port = _closed_port()
    url = f"redis+cluster://127.0.0.1:{port},nosuchhost.invalid:7000"
    human = Cli(url)("doctor", expect=1)
    text = " ".join(human.stdout.split())
    assert f"127.0.0.1:{port} refuses connections" in text, text
    assert "nosuchhost.invalid:7000 the host name does not resolve" in text, text


def test_a_missing_socket_file_is_said_so(tmp_path: Path) -> None:
    path = tmp_path / "redis.sock"
    report = Cli(f"unix://{path}")("doctor", "--json", expect=1).json()
    assert report["reached"] == {
        str(path): "no such socket file: the server is not running there (or the path is wrong)"
    }


def test_a_port_that_accepts_and_never_answers_is_reached() -> None:
    """The connection is made (a paused or hung server, a TLS port waiting for a handshake):
    the report says the trouble is past it."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        cli = Cli(f"redis://127.0.0.1:{port}?socket_timeout=0.5&retries=0")
        report = cli("doctor", "--json", expect=1).json()
    assert report["reached"][f"127.0.0.1:{port}"].startswith(
        "accepts connections: the trouble is past the connection"
    )
    assert "Timeout reading from" in report["warnings"][0]
