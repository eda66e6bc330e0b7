"""Messages a TLS/ACL tour found misleading, each against real servers: a plain URL of any
kind to a TLS port names the TLS scheme; a client certificate that expired, or that is not
made for clients, and a server certificate out of its dates, are each named; a rediss:// URL
without ssl_ca_certs says the system's CA store was used; ``swarm doctor`` names no binary
the server does not, says which replicas are up, and warns of a server anyone gets into;
publishing unchanged content says so."""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from redis_swarm import ConnectionFailed, Settings, Swarm, apply_role

from ._cli import Cli
from ._servers import RedisServer, ServerFactory, _wait_ready, free_port, system_redis
from ._tls import (
    Pki,
    TlsServer,
    _ca,
    _key,
    _name,
    _write_cert,
    _write_key,
    make_pki,
    start_tls_server,
)

SWARM = "tour"
ANYONE = "lets anyone in without a password"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_server(servers: ServerFactory, pki: Pki) -> Iterator[TlsServer]:
    server = start_tls_server(servers, pki, auth_clients="optional")
    yield server
    server.stop()


def _refusal(url: str) -> str:
    # (a cluster URL connects as the handle is made)
    with pytest.raises(ConnectionFailed) as info, Swarm(url, swarm=SWARM) as swarm:
        swarm.ping()
    return str(info.value)


# --- 1. a plain URL of any kind to a TLS port


@pytest.mark.parametrize("scheme", ["redis", "redis+cluster", "redis+sentinel"])
def test_a_plain_url_to_a_tls_port_names_its_tls_scheme(tls_server: TlsServer, scheme: str) -> None:
    """Before, only redis:// was told to use rediss://: the cluster and sentinel URLs said
    no node (no sentinel) answered, with no word of TLS."""
    service = "/mymaster" if scheme == "redis+sentinel" else ""
    message = _refusal(f"{scheme}://127.0.0.1:{tls_server.port}{service}?retries=0")
    twin = scheme.replace("redis", "rediss", 1)
    assert f"use {twin}:// with ssl_ca_certs" in message, message


# --- 2. certificates out of their dates, or not made for their use


def _certificate(
    pki: Pki, name: str, *, server: bool, days: tuple[int, int], usage: x509.ObjectIdentifier
) -> tuple[Path, Path]:
    """A certificate signed by a CA of its own, which ``pki.ca`` is replaced by for the
    servers that check it: written next to the PKI, valid from ``days[0]`` to ``days[1]``
    days from now, for ``usage``. The paths of the certificate and of its key."""
    ca_cert, ca_key = _tour_ca(pki)
    key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=days[0]))
        .not_valid_after(now + datetime.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    cert_path, key_path = pki.dir / f"{name}.crt", pki.dir / f"{name}.key"
    _write_cert(cert_path, builder.sign(ca_key, hashes.SHA256()))
    _write_key(key_path, key)
    return cert_path, key_path


_CAS: dict[Path, tuple[x509.Certificate, ec.EllipticCurvePrivateKey]] = {}


def _tour_ca(pki: Pki) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA of this module's own certificates (``pki.dir / tour-ca.crt``), made once."""
    if pki.dir not in _CAS:
        _CAS[pki.dir] = _ca("tour CA")
        _write_cert(pki.dir / "tour-ca.crt", _CAS[pki.dir][0])
    return _CAS[pki.dir]


@pytest.fixture(scope="module")
def tour_pki(pki: Pki) -> Pki:
    """The PKI with this module's CA as its CA (and a server and a client certificate it
    signed): servers started with it trust only it."""
    server_cert, server_key = _certificate(
        pki, "tour-server", server=True, days=(-1, 2), usage=ExtendedKeyUsageOID.SERVER_AUTH
    )
    client_cert, client_key = _certificate(
        pki, "tour-client", server=False, days=(-1, 2), usage=ExtendedKeyUsageOID.CLIENT_AUTH
    )
    return Pki(
        dir=pki.dir,
        ca=pki.dir / "tour-ca.crt",
        server_cert=server_cert,
        server_key=server_key,
        client_cert=client_cert,
        client_key=client_key,
        wrong_ca=pki.wrong_ca,
        wrong_host_cert=pki.wrong_host_cert,
        wrong_host_key=pki.wrong_host_key,
    )


@pytest.mark.parametrize(
    ("days", "usage", "expected"),
    [
        ((-3, -1), ExtendedKeyUsageOID.CLIENT_AUTH, "the client certificate has expired: renew it"),
        (
            (-1, 2),
            ExtendedKeyUsageOID.SERVER_AUTH,
            "the client certificate is not made for client authentication (extendedKeyUsage "
            "clientAuth): reissue it",
        ),
    ],
    ids=["expired", "not-for-clients"],
)
def test_a_client_certificate_refused_for_what_it_is_says_so(
    servers: ServerFactory,
    tour_pki: Pki,
    days: tuple[int, int],
    usage: x509.ObjectIdentifier,
    expected: str,
) -> None:
    """Both were told to check the files and the server's CA, which are right. TLS 1.2:
    the server's alert comes in the handshake (under 1.3 it may be lost to its close)."""
    server = start_tls_server(servers, tour_pki, auth_clients="yes", protocols="TLSv1.2")
    cert, key = _certificate(tour_pki, f"client-{days[1]}-{usage.dotted_string}", server=False,
                             days=days, usage=usage)  # fmt: skip
    try:
        message = _refusal(f"{server.url}&ssl_certfile={cert}&ssl_keyfile={key}&retries=1")
    finally:
        server.stop()
    assert expected in message, message
    assert "tls-ca-cert-file, " not in message  # (not the files-and-CA advice)


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ((-3, -1), "the server's certificate has expired"),
        ((1, 3), "the server's certificate is not valid yet"),
    ],
    ids=["expired", "not-yet-valid"],
)
def test_a_server_certificate_out_of_its_dates_says_which(
    servers: ServerFactory, tour_pki: Pki, days: tuple[int, int], expected: str
) -> None:
    server = start_tls_server(servers, tour_pki)
    cert, key = _certificate(tour_pki, f"server{days[0]}", server=True, days=days,
                             usage=ExtendedKeyUsageOID.SERVER_AUTH)  # fmt: skip
    admin = server.client()
    admin.config_set("tls-cert-file", str(cert), "tls-key-file", str(key))  # (both at once)
    admin.close()
    try:
        message = _refusal(f"{server.url}&retries=0")
    finally:
        server.stop()
    assert expected in message, message


# --- 3. no ssl_ca_certs: the system's CA store was used


def test_no_ssl_ca_certs_says_the_system_store_was_used(tls_server: TlsServer) -> None:
    """It said "check ssl_ca_certs in the URL", of a URL that has none."""
    message = _refusal(f"rediss://127.0.0.1:{tls_server.port}")
    assert "the URL gives no ssl_ca_certs, so this machine's system CA store was used" in message
    assert "add ?ssl_ca_certs=/path/ca.crt" in message and "check ssl_ca_certs" not in message


# --- 4. doctor's binary: what the server says, never the client's PATH


def test_doctor_names_no_binary_the_server_does_not(tmp_path: Path) -> None:
    """A server started by name reports a path that does not exist; another redis-server
    first on the client's PATH (here a stand-in of another version) was named as the
    server's binary, contradicting the version row."""
    binary = system_redis()
    started_in = tmp_path / "started-here"
    started_in.mkdir()
    other = tmp_path / "other-bin"
    other.mkdir()
    stand_in = other / "redis-server"
    stand_in.write_text("#!/bin/sh\necho 'Redis server v=6.2.14'\n")
    stand_in.chmod(0o755)
    port = free_port()
    env = {**os.environ, "PATH": f"{os.path.dirname(binary)}{os.pathsep}{os.environ['PATH']}"}
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    proc = subprocess.Popen(
        args, cwd=started_in, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    server = RedisServer(proc, started_in, port=port, args=args)
    try:
        _wait_ready(server)
        cli = Cli(server.url)
        client_path = {"PATH": f"{other}{os.pathsep}{os.environ['PATH']}"}
        report = cli.json("doctor", env=client_path)
        human = " ".join(cli("doctor", env=client_path).stdout.split())
    finally:
        server.stop()
    assert report["binary"] is None
    assert f"the server reports version {report['version']}" in report["binary_note"]
    assert str(started_in / "redis-server") in report["binary_note"]
    assert str(stand_in) not in human and str(stand_in) not in str(report)


# --- 5. doctor's cluster row: which are up


def test_the_cluster_row_says_how_many_replicas_are_up(cluster_url: str) -> None:
    """It said "3 replica(s), 3 up", read as three nodes up."""
    out = Cli(cluster_url)("doctor").stdout
    assert "3 masters, 3 replicas, 3 of them up;" in " ".join(out.split()), out


# --- 6. doctor warns of a server anyone gets into


def _warnings(url: str) -> list[str]:
    report = Cli(url, swarm=SWARM).json("doctor")
    assert report["ok"] is True, report
    warnings: list[str] = report.get("warnings", [])
    return warnings


def _own_address() -> str | None:
    """This machine's address off loopback (the one its default route leaves by), if any."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # (UDP: nothing is sent)
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_doctor_warns_of_anonymous_access_over_the_network(servers: ServerFactory) -> None:
    """A URL with no user to a host off loopback, let in: whoever else reaches it gets in."""
    address = _own_address()
    if address is None:
        pytest.skip("this machine has no address off loopback")
    server = servers.start(extra=["--bind", "127.0.0.1", address, "--protected-mode", "no"])
    try:
        said = [w for w in _warnings(f"redis://{address}:{server.port}") if ANYONE in w]
    finally:
        server.stop()
    assert len(said) == 1 and f"over the network ({address})" in said[0], said
    assert "docs/security.md" in said[0] and "ACL SETUSER default off" in said[0]
    assert "swarm acl" in said[0]


def test_doctor_warns_of_anonymous_access_beyond_loopback(servers: ServerFactory) -> None:
    """A loopback URL to a server that listens beyond loopback without protected mode."""
    server = servers.start(extra=["--bind", "0.0.0.0", "--protected-mode", "no"])
    try:
        said = [w for w in _warnings(server.url) if ANYONE in w]
    finally:
        server.stop()
    assert len(said) == 1 and "0.0.0.0" in said[0], said


def test_doctor_does_not_warn_of_a_local_server(
    servers: ServerFactory, redis_url: str, tls_server: TlsServer
) -> None:
    """Loopback only (TLS or not), or shielded by protected mode: the normal local case."""
    assert not [w for w in _warnings(redis_url) if ANYONE in w]
    assert not [w for w in _warnings(tls_server.url) if ANYONE in w]
    shielded = servers.start(extra=["--bind", "0.0.0.0", "--protected-mode", "yes"])
    try:
        version = shielded.client().info("server")["redis_version"]
        if int(str(version).split(".")[0]) >= 7:  # (before 7, a bind set lifts protection)
            assert not [w for w in _warnings(shielded.url) if ANYONE in w]
    finally:
        shielded.stop()


# --- 7. publishing what is published already


def test_publishing_unchanged_content_says_unchanged(
    redis_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("# notes\n")
    cli = Cli(redis_url, swarm=SWARM)
    first = cli("context", "publish", str(notes), "--owner", "shard-1").stdout
    assert first.startswith("published shard-1 version ")
    version = first.split()[3].rstrip(":")
    again = cli("context", "publish", str(notes), "--owner", "shard-1").stdout
    assert again.startswith(f"unchanged: shard-1 is at version {version}"), again
    # a worker may not publish: its no-op is refused as a publish is
    spec = apply_role(Settings.from_url(redis_url, swarm=SWARM), "worker", "tour-worker").user
    worker = Cli(f"redis://{spec.user}:{spec.password}@127.0.0.1:{redis_server.port}", SWARM)
    said = worker("context", "publish", str(notes), "--owner", "shard-1", expect=None)
    assert said.code == 1 and said.stdout == "", said
    assert "may not run this operation's function" in said.stderr, said
    notes.write_text("# notes, changed\n")
    assert cli("context", "publish", str(notes), "--owner", "shard-1").stdout.startswith(
        "published shard-1 version "
    )
