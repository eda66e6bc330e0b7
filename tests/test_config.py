from __future__ import annotations

import re
from pathlib import Path

import pytest

from redis_swarm import ConfigError, Settings, ValidationError


def test_embedded_default_and_home() -> None:
    s = Settings.from_url()
    assert s.kind == "embedded" and s.swarm == "default"
    s = Settings.from_url("embedded:///srv/swarm", swarm="team-a")
    assert s.home == Path("/srv/swarm") and s.swarm == "team-a"
    assert Settings.from_url("embedded", home="/x").home == Path("/x")


def test_redis_url_with_auth_and_db() -> None:
    s = Settings.from_url("redis://worker:s3cret@10.0.0.5:6380/2")
    assert (s.kind, s.host, s.port, s.db) == ("standalone", "10.0.0.5", 6380, 2)
    assert (s.username, s.password, s.ssl) == ("worker", "s3cret", False)
    assert "s3cret" not in repr(s) and "s3cret" not in s.url
    assert "***" in s.url
    assert s.render_url(mask=False) == "redis://worker:s3cret@10.0.0.5:6380/2"


def test_rediss_options() -> None:
    s = Settings.from_url(
        "rediss://h:6390?ssl_ca_certs=/ca.pem&ssl_certfile=/c.pem&ssl_keyfile=/k.pem"
        "&ssl_cert_reqs=optional"
    )
    assert s.ssl and s.ssl_ca_certs == "/ca.pem" and s.ssl_certfile == "/c.pem"
    assert s.ssl_keyfile == "/k.pem" and s.ssl_cert_reqs == "optional"


def test_unix_cluster_sentinel() -> None:
    s = Settings.from_url("unix:///tmp/r.sock?db=3")
    assert (s.kind, s.path, s.db) == ("unix", "/tmp/r.sock", 3)
    c = Settings.from_url("redis+cluster://:pw@h1:7000,h2:7001")
    assert c.kind == "cluster" and c.nodes == (("h1", 7000), ("h2", 7001)) and c.password == "pw"
    t = Settings.from_url("redis+sentinel://s1:26379,s2:26380/mymaster/1")
    assert t.kind == "sentinel" and t.service_name == "mymaster" and t.db == 1
    assert len(t.nodes) == 2


def test_is_local() -> None:
    assert Settings.from_url("embedded").is_local
    assert Settings.from_url("redis://localhost").is_local
    assert not Settings.from_url("redis://redis.example.com").is_local
    # every loopback spelling, as the web faces judge one (_net.is_loopback): 127.0.0.2 and
    # a .localhost name were taken for far servers, their contexts compressed for nothing
    assert Settings.from_url("redis://127.0.0.2:6390").is_local
    assert Settings.from_url("redis://redis.localhost:6390").is_local
    assert Settings.from_url("redis://[::1]:6390").is_local


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("foo://x", "unsupported URL scheme 'foo'"),
        ("", "empty"),
        ("redis://h:abc", "port 'abc'"),
        ("redis://h:99999", "out of range"),
        ("redis://h/xyz", "database 'xyz'"),
        ("redis://h?ssl_ca_certs=/x", "unknown option"),
        ("rediss://h?ssl_cert_reqs=maybe", "ssl_cert_reqs"),
        ("unix://", "no socket path"),
        ("redis+sentinel://h:1", "no service name"),
        ("redis://a:1,b:2", "several hosts"),
        ("embedded://relative", "absolute home"),
        ("localhost:6379", "needs '://' after the scheme"),
        ("rediss//h:6380", "needs '://' after the scheme"),
        ("rediss://h?ssl_keyfile=/k.pem", "give the certificate too (ssl_certfile=...)"),
    ],
)
def test_bad_urls_name_the_problem(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_url(url)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_url_error_masks_password() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_url("redis://u:topsecret@h:notaport")
    assert "topsecret" not in str(info.value)


@pytest.mark.parametrize("name", ["", "a:b", "a{b}", "a b", "x" * 65, "é"])
def test_bad_swarm_names(name: str) -> None:
    with pytest.raises(ValidationError):
        Settings.from_url("embedded", swarm=name)


@pytest.mark.parametrize(
    ("url", "durability", "compression"),
    [
        ("embedded?durability=strict", "strict", "auto"),
        ("embedded:///tmp/swarm-home?compression=never", "normal", "never"),
        ("redis://h:1/2?durability=strict&retries=30", "strict", "auto"),
        ("unix:///run/redis.sock?db=2&durability=strict&compression=always", "strict", "always"),
        ("redis+cluster://a:1,b:2?durability=strict", "strict", "auto"),
        (
            "rediss+sentinel://a:1/mymaster?compression=always&ssl_cert_reqs=none",
            "normal",
            "always",
        ),
    ],
)
def test_every_url_sets_durability_and_compression(
    url: str, durability: str, compression: str
) -> None:
    settings = Settings.from_url(url)
    assert (settings.durability, settings.compression) == (durability, compression)
    # an explicit setting wins over the URL's
    assert Settings.from_url(url, durability="normal").durability == "normal"


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("redis://h?durability=maybe", "durability must be 'normal' or 'strict'"),
        ("embedded?compression=zip", "compression must be 'auto', 'always' or 'never'"),
        ("embedded?db=3", "unknown option 'db'"),
        ("unix:///x.sock?retries=3", "unknown option 'retries'"),
    ],
)
def test_bad_behaviour_options_name_the_problem(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        Settings.from_url(url)


@pytest.mark.parametrize(
    ("url", "advice"),
    [
        ("redis://127.0.0.1:6379/-1", "name one from 0 (Redis's default has 16, 0 to 15)"),
        ("redis://127.0.0.1:6379/0?socket_timeout=-1", "write socket_timeout=N, N a number from 0"),
    ],
)
def test_a_negative_database_or_option_says_what_to_write(url: str, advice: str) -> None:
    with pytest.raises(ConfigError, match="is negative") as refused:
        Settings.from_url(url)
    assert advice in str(refused.value)
