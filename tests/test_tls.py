"""TLS (issue 8): verified rediss:// works; every misconfiguration is one clear, fast error."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from redis_swarm import AsyncSwarm, ConnectionFailed, PermissionDenied, Settings, Swarm
from redis_swarm.cli import main

from ._servers import RedisServer, ServerFactory
from ._tls import Pki, TlsServer, make_pki, start_tls_server
from .conftest import AsyncAsSync


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def tls_server(servers: ServerFactory, pki: Pki) -> TlsServer:
    """Client certificates optional: verified by the server when presented."""
    return start_tls_server(servers, pki, auth_clients="optional")


@pytest.fixture(scope="session")
def mtls_server(servers: ServerFactory, pki: Pki) -> TlsServer:
    """Client certificates required (mutual TLS)."""
    return start_tls_server(servers, pki, auth_clients="yes")


@pytest.fixture(scope="session")
def wrong_host_server(servers: ServerFactory, pki: Pki) -> TlsServer:
    """Presents a certificate from the right CA, but for redis.example.com."""
    return start_tls_server(servers, pki, cert=pki.wrong_host_cert, key=pki.wrong_host_key)


@pytest.fixture(params=["sync", "async"])
def connect(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A factory of Swarm (or AsyncSwarm driven through the same calls) by URL."""
    handles: list[Any] = []

    def make(url: str) -> Any:
        if request.param == "sync":
            handle: Any = Swarm(url, swarm="tls")
        else:
            handle = AsyncAsSync(lambda: AsyncSwarm(url, swarm="tls"))
        handles.append(handle)
        return handle

    yield make
    for handle in handles:
        handle.close()


def refused(connect: Any, url: str, max_s: float = 2.0) -> str:
    """The message of the ConnectionFailed raised by a ping; asserts it is one fast line."""
    swarm = connect(url)
    start = time.monotonic()
    with pytest.raises(ConnectionFailed) as info:
        swarm.ping()
    elapsed = time.monotonic() - start
    message = str(info.value)
    assert "\n" not in message
    assert elapsed < max_s, f"a hopeless TLS error was retried for {elapsed:.1f}s"
    return message


def test_verified_tls_works(connect: Any, tls_server: TlsServer) -> None:
    swarm = connect(tls_server.url)
    assert swarm.ping() >= 0
    info = swarm.server_info()  # INFO, a Lua script (EVALSHA) and CONFIG GET over TLS
    assert info.version.startswith("7.") or int(info.version.split(".")[0]) >= 7
    assert info.server_time_ms > 1_700_000_000_000
    assert swarm.settings.ssl and swarm.settings.url.startswith("rediss://")


def test_sync_data_round_trip_over_tls(tls_server: TlsServer) -> None:
    with Swarm(tls_server.url, swarm="tls") as swarm:
        client: Any = swarm.redis
        payload = b"x" * 200_000
        client.set("rs:{tls}:probe", payload)
        assert client.get("rs:{tls}:probe") == payload
        client.delete("rs:{tls}:probe")


def test_localhost_name_verifies(connect: Any, tls_server: TlsServer, pki: Pki) -> None:
    swarm = connect(f"rediss://localhost:{tls_server.port}?ssl_ca_certs={pki.ca}")
    assert swarm.ping() >= 0


def test_wrong_ca_is_refused(connect: Any, tls_server: TlsServer, pki: Pki) -> None:
    message = refused(connect, f"rediss://127.0.0.1:{tls_server.port}?ssl_ca_certs={pki.wrong_ca}")
    assert "certificate verify failed" in message and "check ssl_ca_certs" in message


def test_no_ca_uses_system_store_and_is_refused(connect: Any, tls_server: TlsServer) -> None:
    message = refused(connect, f"rediss://127.0.0.1:{tls_server.port}")
    assert "system CA store was used" in message and "add ?ssl_ca_certs=" in message


def test_wrong_host_name_is_refused(connect: Any, wrong_host_server: TlsServer) -> None:
    message = refused(connect, wrong_host_server.url)
    assert "does not name this host" in message and "127.0.0.1" in message


def test_cert_reqs_none_skips_verification(connect: Any, wrong_host_server: TlsServer) -> None:
    """Opting out is possible (and explicit): no CA, no host name check."""
    swarm = connect(f"rediss://127.0.0.1:{wrong_host_server.port}?ssl_cert_reqs=none")
    assert swarm.ping() >= 0


def test_missing_client_certificate_is_refused(connect: Any, mtls_server: TlsServer) -> None:
    # Under TLS 1.3 the server refuses after the handshake: the client sees either the alert
    # (not retried) or, when it loses the race, a bare EOF that is indistinguishable from a
    # server dying mid-stream, so that one is retried (a few seconds) before the message.
    message = refused(connect, mtls_server.url, max_s=8.0)
    assert "requires a client certificate" in message and "ssl_certfile" in message


def test_client_certificate_is_accepted(connect: Any, mtls_server: TlsServer) -> None:
    swarm = connect(mtls_server.url_with_client_cert())
    assert swarm.ping() >= 0
    assert swarm.server_info().server_time_ms > 0


def test_missing_certificate_file_is_named(connect: Any, tls_server: TlsServer) -> None:
    message = refused(
        connect, f"rediss://127.0.0.1:{tls_server.port}?ssl_ca_certs=/nonexistent.pem"
    )
    assert "ssl_ca_certs" in message


def test_plain_redis_to_a_tls_port_says_use_rediss(tls_server: TlsServer) -> None:
    settings = Settings.from_url(f"redis://127.0.0.1:{tls_server.port}", swarm="tls", retries=0)
    with Swarm(settings) as swarm, pytest.raises(ConnectionFailed) as info:
        swarm.ping()
    assert "rediss://" in str(info.value)


def test_wrong_password_fails_fast_and_masked(tls_server: TlsServer, pki: Pki) -> None:
    url = tls_server.url.replace("rediss://", "rediss://ghost:hunter2secret@")
    with Swarm(url, swarm="tls") as swarm:
        start = time.monotonic()
        with pytest.raises(PermissionDenied) as info:
            swarm.ping()
        assert time.monotonic() - start < 2.0
    assert "hunter2secret" not in str(info.value)
    assert "password" in str(info.value)


def test_doctor_over_tls(tls_server: TlsServer) -> None:
    result = CliRunner().invoke(main, ["--url", tls_server.url, "doctor", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["url"].startswith("rediss://")


def test_doctor_tls_failure_is_one_line(pki: Pki, tls_server: TlsServer, tmp_path: Path) -> None:
    url = f"rediss://127.0.0.1:{tls_server.port}?ssl_ca_certs={pki.wrong_ca}"
    result = CliRunner().invoke(main, ["--url", url, "doctor"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "check ssl_ca_certs" in lines[0]


def test_rediss_to_a_plain_port_fails_at_once_and_says_so(redis_server: RedisServer) -> None:
    """A Redis server waits for a newline that a TLS client never sends: the handshake times
    out after connect_timeout, and a retry would only wait as long again."""
    url = f"rediss://127.0.0.1:{redis_server.port}?connect_timeout=0.5"
    with Swarm(url, swarm="tls") as swarm:
        start = time.monotonic()
        with pytest.raises(ConnectionFailed) as info:
            swarm.ping()
        elapsed = time.monotonic() - start
    message = str(info.value)
    assert elapsed < 1.5, f"a handshake timeout was retried for {elapsed:.1f}s"
    assert "does not speak TLS on this port" in message
    assert "use redis://" in message and "tls-port" in message


def test_rediss_to_a_plain_port_is_hinted_at_from_asyncio(redis_server: RedisServer) -> None:
    """asyncio's connect says no more than a timeout (the handshake is inside it): the
    message says what a timeout over TLS may mean."""
    url = f"rediss://127.0.0.1:{redis_server.port}?connect_timeout=0.2&retries=1"
    swarm = AsyncAsSync(lambda: AsyncSwarm(url, swarm="tls"))
    try:
        with pytest.raises(ConnectionFailed) as info:
            swarm.ping()
    finally:
        swarm.close()
    assert "if the port speaks no TLS" in str(info.value) and "use redis://" in str(info.value)


def _files(pki: Pki, folder: Path) -> dict[str, str]:
    """What the queries below name: the test PKI's files, and a directory."""
    paths = (pki.ca, pki.client_cert, pki.client_key, pki.server_key, folder)
    return dict(zip(("ca", "cert", "key", "other_key", "dir"), map(str, paths), strict=True))


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("ssl_ca_certs={ca}&ssl_certfile={cert}", "add ssl_keyfile=PATH"),
        (
            "ssl_ca_certs={ca}&ssl_certfile={cert}&ssl_keyfile={other_key}",
            "ssl_keyfile is not the private key of the certificate in ssl_certfile",
        ),
        (
            "ssl_ca_certs={ca}&ssl_certfile={cert}&ssl_keyfile={ca}",
            "ssl_certfile must be the certificate (PEM) and ssl_keyfile its private key",
        ),
        ("ssl_ca_certs={dir}", "ssl_ca_certs={dir} is a directory: name the PEM file itself"),
        ("ssl_ca_certs={key}", "ssl_ca_certs holds no certificate"),
        ("ssl_ca_certs={ca}&ssl_certfile={dir}&ssl_keyfile={key}", "ssl_certfile={dir} is a"),
        ("ssl_ca_certs={ca}&ssl_certfile={cert}&ssl_keyfile={dir}", "ssl_keyfile={dir} is a"),
        ("ssl_ca_certs={ca}&ssl_certfile=/nonexistent.pem", "ssl_certfile=/nonexistent.pem does"),
    ],
)
def test_certificate_and_key_files_that_do_not_load_are_named(
    connect: Callable[[str], Any],
    tls_server: TlsServer,
    pki: Pki,
    tmp_path: Path,
    query: str,
    fragment: str,
) -> None:
    files = _files(pki, tmp_path)
    message = refused(
        connect, f"rediss://127.0.0.1:{tls_server.port}?{query.format(**files)}", max_s=1.0
    )
    assert fragment.format(**files) in message
    assert "cannot reach" not in message


def test_the_url_handed_to_agents_reaches_tls_as_its_user(tls_server: TlsServer, pki: Pki) -> None:
    """``swarm run`` hands its agents ``render_url(mask=False)``: it must keep the TLS options
    and carry a password that holds URL delimiters."""
    user, password = "url-agent", "p@ss:w/rd#?%&= x"
    admin = tls_server.client()
    admin.acl_setuser(
        user, enabled=True, passwords=[f"+{password}"], keys=["*"], commands=["+@all"]
    )
    try:
        given = (
            f"rediss://{user}:{quote(password, safe='')}@127.0.0.1:{tls_server.port}"
            f"?ssl_ca_certs={pki.ca}&retries=2"
        )
        handed = Settings.from_url(given, swarm="tls").render_url(mask=False)
        with Swarm(handed, swarm="tls") as swarm:
            assert swarm.ping() >= 0
            assert swarm.settings.password == password and swarm.settings.retries == 2
    finally:
        admin.acl_deluser(user)
        admin.close()
