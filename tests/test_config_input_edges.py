"""Input at the edge of a URL and of the environment: every number in ASCII digits (Python's
``int`` and ``float`` read ``1_0``, the Arabic-Indic ``١٠`` and the full-width ``１０`` as 10),
refused naming the option, the value and the number to write; a folder of a file's path named
``auth=1`` is no secret option, so a URL holding one is told its own mistake; the advice about
a client key's passphrase only for a URL that uses TLS."""

from __future__ import annotations

from pathlib import Path

import pytest

from redis_swarm import ConfigError, Settings
from redis_swarm._env import ENV_CONTEXT_CACHE_BYTES, context_cache_from_env

SECRET = "SECRET"

# (the URL, what the error names, the number it says to write)
_NUMBERS = [
    ("redis://h:1_0", "port '1_0'", "as 10"),
    ("redis://h:\u0661\u0660", "port '\u0661\u0660'", "as 10"),
    ("redis://h:\uff11\uff10", "port '\uff11\uff10'", "as 10"),
    ("redis+cluster://h:7_000,g:7000", "port '7_000'", "as 7000"),
    ("redis+sentinel://h:2637\u0669/mymaster", "port '2637\u0669'", "as 26379"),
    ("redis://h/1_0", "database '1_0'", "as 10"),
    ("rediss://h:6380/\u0661", "database '\u0661'", "as 1"),
    ("redis+sentinel://h:26379/mymaster/\uff12", "database '\uff12'", "as 2"),
    ("unix:///tmp/r.sock?db=1_0", "database '1_0'", "as 10"),
    ("redis://h?retries=1_0", "option retries='1_0'", "as 10"),
    ("redis://h?retries=\u0663", "option retries='\u0663'", "as 3"),
    ("redis://h?socket_timeout=\u0661.\u0665", "option socket_timeout='\u0661.\u0665'", "as 1.5"),
    ("redis://h?connect_timeout=1_0.5", "option connect_timeout='1_0.5'", "as 10.5"),
    (
        "embedded?max_connections=\uff13\uff10\uff10",
        "option max_connections='\uff13\uff10\uff10'",
        "as 300",
    ),
]


@pytest.mark.parametrize(("url", "names", "write"), _NUMBERS)
def test_a_number_of_a_url_not_in_ascii_digits_is_refused(url: str, names: str, write: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_url(url)
    said = str(caught.value)
    assert names in said and "is not written in ASCII digits" in said, said
    assert "write it with 0-9 only" in said and said.endswith(write), said
    fraction = "timeout" in url
    assert ("a '.' before any fraction" in said) is fraction, said
    # the same URL written as the error says parses
    number = write.removeprefix("as ")
    value = names.split("'")[1]
    fixed = Settings.from_url(url.replace(value, number))
    assert number in fixed.render_url(), fixed.render_url()


@pytest.mark.parametrize(
    ("value", "write"),
    [("\u0661\u0660M", "as 10M"), ("\uff15\uff11\uff12", "as 512"), ("1_0", "as 10")],
)
def test_the_context_cache_size_is_in_ascii_digits(value: str, write: str) -> None:
    with pytest.raises(ConfigError) as caught:
        context_cache_from_env(Path("/home"), {ENV_CONTEXT_CACHE_BYTES: value})
    said = str(caught.value)
    assert f"{ENV_CONTEXT_CACHE_BYTES}={value!r} is not written in ASCII digits" in said, said
    assert write in said and "512M, 2GiB" in said, said
    spec = context_cache_from_env(Path("/home"), {ENV_CONTEXT_CACHE_BYTES: "10M"})
    assert spec.max_bytes == 10 * 1024**2


def test_a_context_cache_size_in_ascii_digits_with_a_unit_of_another_script_names_the_unit() -> (
    None
):
    """'512 МБ' (a Cyrillic unit): its digits are ASCII, its unit is none of K, M, G, T; it
    was said "not written in ASCII digits", sending the user to fix the wrong part."""
    value = "512 \u041c\u0411"
    with pytest.raises(ConfigError) as caught:
        context_cache_from_env(Path("/home"), {ENV_CONTEXT_CACHE_BYTES: value})
    said = str(caught.value)
    assert "ASCII digits" not in said, said
    assert f"{ENV_CONTEXT_CACHE_BYTES}={value!r} is not a size" in said, said
    assert "'\u041c\u0411' is not one of K, M, G, T" in said and "512M, 2GiB" in said, said


# A folder named like an option in a file's path, and another mistake in the URL: the error
# is that mistake's (the URL still shown masked from the folder's '=').
_FOLDERS = [
    (f"unix:///run/auth={SECRET}/redis.sock?db=x", "database 'x'"),
    (f"unix:///run/token={SECRET}/redis.sock?retries=3", "unknown option 'retries'"),
    (f"rediss://h:99999?ssl_ca_certs=/etc/token={SECRET}/ca.pem", "port 99999"),
    (f"rediss://h:1?ssl_keyfile=/etc/auth={SECRET}/k.pem", "give the certificate too"),
    (f"embedded:///srv/auth={SECRET}/home?durability=fast", "durability must be"),
]


@pytest.mark.parametrize(("url", "says"), _FOLDERS)
def test_a_folder_named_like_a_secret_option_leaves_the_real_error(url: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_url(url)
    said = str(caught.value)
    assert says in said and "as an option" not in said and SECRET not in said, said
    assert "://" not in said or "=***'" in said, said  # (a URL quoted is quoted masked)


def test_a_secret_option_beside_such_a_folder_is_still_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_url(f"unix:///run/auth=1/redis.sock?password={SECRET}")
    said = str(caught.value)
    assert "gives password=... as an option" in said and SECRET not in said, said
    assert Settings.from_url("unix:///run/auth=1/redis.sock").path == "/run/auth=1/redis.sock"


@pytest.mark.parametrize(
    ("url", "tls_url"),
    [
        (
            f"redis://h:6379?ssl_password={SECRET}",
            f"rediss://h:6380?ssl_certfile=/c.pem&ssl_keyfile=/k.pem&ssl_password={SECRET}",
        ),
        (
            f"redis+cluster://h:7000?ssl_password={SECRET}",
            f"rediss+cluster://h:7000?ssl_password={SECRET}",
        ),
        (
            f"redis+sentinel://h:26379/mymaster?ssl_password={SECRET}",
            f"rediss+sentinel://h:26379/mymaster?ssl_password={SECRET}",
        ),
        (f"unix:///tmp/r.sock?ssl_password={SECRET}", None),
    ],
)
def test_the_passphrase_advice_is_for_tls_urls_only(url: str, tls_url: str | None) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_url(url)
    said = str(caught.value)
    assert "passphrase" not in said and "go before the host" not in said, said
    assert "does not use TLS" in said and "rediss://" in said and SECRET not in said, said
    if tls_url is not None:
        with pytest.raises(ConfigError) as caught:
            Settings.from_url(tls_url)
        said = str(caught.value)
        assert "a client key's passphrase is not taken" in said and SECRET not in said, said
