"""How long what no retry fixes is tried again: a TLS handshake that timed out is retried only
within a plain URL's short window, whatever the URL's retries (a Sentinel or Cluster URL's
long window made a ``rediss://`` URL at a plain port wait most of a minute per request).
Real servers throughout: TLS ones from ``_tls``."""

from __future__ import annotations

import time

import pytest

from redis_swarm import ConnectionFailed, Swarm
from redis_swarm._config import FAILOVER_RETRIES, Settings

from ._servers import RedisServer
from ._tls import Pki, make_pki

SWARM = "policy"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.mark.timeout(120)
def test_a_tls_handshake_timeout_fails_within_the_short_window_with_failover_retries(
    redis_server: RedisServer, pki: Pki
) -> None:
    """A rediss:// URL at a plain port (it never answers the handshake) with the retries of a
    Sentinel or Cluster URL (a ~53 s window): it was retried while another attempt fitted
    that window (~44 s with the default timeouts); now it fails as a plain URL's would, in
    about connect_timeout."""
    url = f"rediss://127.0.0.1:{redis_server.port}?ssl_ca_certs={pki.ca}&retries={FAILOVER_RETRIES}"
    settings = Settings.from_url(url)
    assert settings.retry_window_s > 50 and settings.none_answered_window_s < 6, settings
    began = time.monotonic()
    with Swarm(url, swarm=SWARM) as swarm, pytest.raises(ConnectionFailed) as caught:
        swarm.ping()
    took = time.monotonic() - began
    assert "the TLS handshake timed out" in str(caught.value), caught.value
    assert caught.value.retryable is True, caught.value
    limit = settings.connect_timeout + settings.none_answered_window_s + 1
    assert took < limit, (took, limit)
