"""TLS for tests: a throwaway PKI made with ``cryptography`` and TLS-only redis-servers.

``make_pki(dir)`` writes a CA, a server certificate for 127.0.0.1/localhost, a client
certificate, a second (wrong) CA and a server certificate for a wrong host name, all signed
in a fraction of a second (EC P-256 keys). ``TlsServers`` starts Debian's TLS-enabled
redis-server with ``--port 0 --tls-port N`` and the ``tls-auth-clients`` mode asked for.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ._servers import RedisServer, ServerFactory, _spawn, _wait_ready, free_port, system_redis

AuthClients = Literal["yes", "no", "optional"]


@dataclass(frozen=True)
class Pki:
    """Paths of the PEM files of the test PKI."""

    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    wrong_ca: Path
    wrong_host_cert: Path
    wrong_host_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "redis-swarm tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return builder.not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(
        now + datetime.timedelta(days=2)
    )


def _ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    name = _name(common_name)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return _validity(builder).sign(key, hashes.SHA256()), key


def _leaf(
    common_name: str,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    *,
    server: bool,
    dns: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = ca
    key = _key()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return _validity(builder).sign(ca_key, hashes.SHA256()), key


def make_pki(folder: Path) -> Pki:
    """Write the whole test PKI under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = _ca("redis-swarm test CA")
    wrong_ca = _ca("some other CA")
    server = _leaf("localhost", ca, server=True, dns=("localhost",), ips=("127.0.0.1", "::1"))
    client = _leaf("swarm-worker", ca, server=False)
    wrong_host = _leaf("redis.example.com", ca, server=True, dns=("redis.example.com",))
    pki = Pki(
        dir=folder,
        ca=folder / "ca.crt",
        server_cert=folder / "server.crt",
        server_key=folder / "server.key",
        client_cert=folder / "client.crt",
        client_key=folder / "client.key",
        wrong_ca=folder / "wrong-ca.crt",
        wrong_host_cert=folder / "wrong-host.crt",
        wrong_host_key=folder / "wrong-host.key",
    )
    _write_cert(pki.ca, ca[0])
    _write_cert(pki.wrong_ca, wrong_ca[0])
    for (cert, key), cert_path, key_path in (
        (server, pki.server_cert, pki.server_key),
        (client, pki.client_cert, pki.client_key),
        (wrong_host, pki.wrong_host_cert, pki.wrong_host_key),
    ):
        _write_cert(cert_path, cert)
        _write_key(key_path, key)
    return pki


def make_stranger_client(folder: Path) -> tuple[Path, Path]:
    """A client certificate and its key, signed by a CA that no test server trusts (made
    here, its key thrown away): the paths of the certificate and of the key."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = _leaf("stranger", _ca("a CA nobody trusts"), server=False)
    cert_path, key_path = folder / "stranger.crt", folder / "stranger.key"
    _write_cert(cert_path, cert)
    _write_key(key_path, key)
    return cert_path, key_path


@dataclass
class TlsServer(RedisServer):
    """A redis-server that listens only on TLS."""

    pki: Pki | None = None
    auth_clients: AuthClients = "no"

    @property
    def url(self) -> str:
        """The rediss:// URL (with the test CA; no client certificate)."""
        assert self.pki is not None
        return f"rediss://127.0.0.1:{self.port}?ssl_ca_certs={self.pki.ca}"

    def url_with_client_cert(self) -> str:
        assert self.pki is not None
        return f"{self.url}&ssl_certfile={self.pki.client_cert}&ssl_keyfile={self.pki.client_key}"

    def client(self) -> redis.Redis:
        """An admin client: verifies the chain (not the host name, so that it also reaches the
        wrong-host server) and presents the client certificate."""
        assert self.pki is not None
        return redis.Redis(
            host="127.0.0.1",
            port=self.port or 0,
            ssl=True,
            ssl_ca_certs=str(self.pki.ca),
            ssl_certfile=str(self.pki.client_cert),
            ssl_keyfile=str(self.pki.client_key),
            ssl_check_hostname=False,
        )


def start_tls_server(
    factory: ServerFactory,
    pki: Pki,
    *,
    auth_clients: AuthClients = "no",
    cert: Path | None = None,
    key: Path | None = None,
    protocols: str | None = None,
) -> TlsServer:
    """A TLS-only server (``--port 0``) presenting ``cert`` (the good server cert by default);
    ``protocols``: its ``tls-protocols`` (e.g. ``TLSv1.2``; default: the server's)."""
    binary = system_redis(tls=True)
    workdir = factory.new_dir()
    port = free_port()
    args = [
        binary,
        "--dir", str(workdir),
        "--save", "",
        "--appendonly", "no",
        "--port", "0",
        "--bind", "127.0.0.1",
        "--tls-port", str(port),
        "--tls-cert-file", str(cert or pki.server_cert),
        "--tls-key-file", str(key or pki.server_key),
        "--tls-ca-cert-file", str(pki.ca),
        "--tls-auth-clients", auth_clients,
    ]  # fmt: skip
    if protocols is not None:
        args += ["--tls-protocols", protocols]
    server = TlsServer(
        _spawn(args, workdir), workdir, port=port, args=args, pki=pki, auth_clients=auth_clients
    )
    factory.servers.append(server)
    _wait_ready(server)
    return server
