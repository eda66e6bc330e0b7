"""A secret written into a URL where no Redis URL takes one (a '?' forgotten before
&password=..., a ';' or '#' inside the value, a percent-encoded '=') is refused when the URL is
read, the URL shown masked from the secret's '=' on: no error, no Settings' URL or repr, and
no command (status, prompt, mcp install, doctor) shows any piece of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from redis_swarm import ConfigError, Settings
from redis_swarm._config import check_sentinel_service, mask_url

from ._cli import Cli

# The secret, and the pieces of it a URL cut in two may show (the database 'CRET' of
# /my&password=SE/CRET, the 'cdSECRET' after a ';' or '#').
SECRET = "SECRET"
_PIECES = ("SECRET", "CRET", "cdSE")
_URLS = [
    # a Sentinel service name that swallowed the options (its '?' forgotten): parsed, and
    # shown by Settings.url, repr, swarm prompt and swarm mcp install
    f"redis+sentinel://127.0.0.1:1/mymaster&password={SECRET}",
    f"redis+sentinel://127.0.0.1:1/mymaster%26password%3D{SECRET}",
    f"redis+sentinel://127.0.0.1:1/mymaster%2526password%253D{SECRET}",
    f"redis+sentinel://127.0.0.1:1/password={SECRET}",
    f"redis+sentinel://127.0.0.1:1/mymaster&password={SECRET}/0",
    "redis+sentinel://127.0.0.1:1/my&password=SE/CRET",
    # the value of a secret option runs to the end of the URL: a ';' or '#' ends nothing
    f"redis://127.0.0.1:1/0?password=ab;cd{SECRET}",
    f"redis://127.0.0.1:1/0?password=ab#cd{SECRET}",
    f"redis://127.0.0.1:1/0?password=ab&cd{SECRET}",
    f"redis://127.0.0.1:1/0?retries=3;password={SECRET}",
    f"redis://127.0.0.1:1/0?durability=strict;password={SECRET}",
    f"rediss://127.0.0.1:1/0?ssl_ca_certs=/ca.pem;password={SECRET}",
    f"redis://127.0.0.1:1/0#password={SECRET}",
    # a percent-encoded '=' in the option's name, or an encoded name
    f"redis://127.0.0.1:1/0?password%3D{SECRET}",
    f"redis://127.0.0.1:1/0?password%253D{SECRET}",
    f"redis://127.0.0.1:1/0?pass%77ord={SECRET}",
    f"redis://127.0.0.1:1/0?password%25%33%44{SECRET}",  # (%3D, its characters encoded)
    # options before any '?': in the database, the port, the host list, a path
    f"redis://127.0.0.1:1/0&password={SECRET}",
    f"redis://127.0.0.1:1&password={SECRET}",
    f"redis://127.0.0.1:password={SECRET}",
    f"redis+cluster://127.0.0.1:1/password={SECRET}",
    f"redis+cluster://127.0.0.1:1,password={SECRET}",
    f"unix:///tmp/r.sock;password={SECRET}",
    f"unix:///tmp/r.sock?db=1;password={SECRET}",
    f"embedded?max_connections=3;password={SECRET}",
]


def _no_piece(text: str) -> bool:
    return not any(piece in text for piece in _PIECES)


@pytest.mark.parametrize("url", _URLS)
def test_a_secret_option_anywhere_is_refused_when_read_and_shown_masked(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_url(url)
    message = str(info.value)
    assert _no_piece(message) and "***'" in message, message  # (masked to the URL's end)
    assert "as an option, which a Redis URL does not take" in message, message
    if not url.startswith("embedded"):
        assert "go before the host" in message and "p%40ss%3Aw%2Frd" in message, message
    assert _no_piece(mask_url(url)), mask_url(url)


def test_the_error_says_the_form_with_the_password_before_the_host() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_url(f"redis+sentinel://h:26379/mymaster&password={SECRET}")
    message = str(info.value)
    assert "'redis+sentinel://h:26379/mymaster&password=***'" in message, message
    assert "redis+sentinel://[USER:PASSWORD@]HOST:PORT" in message, message
    with pytest.raises(ConfigError, match="the embedded server takes no password"):
        Settings.from_url(f"embedded?password={SECRET}")


def test_an_option_after_the_secret_is_shown_when_it_is_one_a_url_takes() -> None:
    assert mask_url("redis://h/0?password=ab;cd&retries=3") == "redis://h/0?password=***&retries=3"
    assert mask_url("redis://h/0?password=ab&cdSECRET") == "redis://h/0?password=***"
    assert mask_url("redis://h/0?password=&retries=3") == "redis://h/0?password=&retries=3"


def test_settings_made_otherwise_never_show_or_keep_such_a_name() -> None:
    """Settings built without a URL (a library user's own) show the secret masked, and
    refuse it as soon as they are checked (replace, a client's connection)."""
    built = [
        Settings(kind="sentinel", nodes=(("h", 1),), service_name=f"m&password={SECRET}"),
        Settings(kind="sentinel", nodes=(("h", 1),), service_name=f"token={SECRET}"),
        Settings(kind="standalone", ssl=True, ssl_ca_certs=f"/ca.pem;password={SECRET}"),
        Settings(kind="unix", path=f"/tmp/r.sock;pass={SECRET}"),
    ]
    for settings in built:
        assert _no_piece(f"{settings.url} {settings!r}"), settings.url
        with pytest.raises(ConfigError) as info:
            settings.replace(db=1)
        assert _no_piece(str(info.value)) and "as an option" in str(info.value), info.value
    with pytest.raises(ConfigError) as info:
        check_sentinel_service(built[0])
    assert _no_piece(str(info.value)) and "cannot be a Sentinel service name" in str(info.value)


def test_valid_names_and_paths_still_parse() -> None:
    sentinel = Settings.from_url("redis+sentinel://u:p%26w%3Dx@h:26379/my.master-1_x/2")
    assert sentinel.service_name == "my.master-1_x" and sentinel.password == "p&w=x"
    assert sentinel.url == "redis+sentinel://u:***@h:26379/my.master-1_x/2"
    # a directory whose name holds 'auth=' is a path, no option
    unix = Settings.from_url("unix:///run/auth=1/redis.sock")
    assert unix.path == "/run/auth=1/redis.sock"
    assert Settings.from_url(unix.url) == unix
    certs = Settings.from_url("rediss://h:1?ssl_ca_certs=/etc/token=1/ca.pem")
    assert certs.ssl_ca_certs == "/etc/token=1/ca.pem" and Settings.from_url(certs.url) == certs


def test_a_password_holding_an_at_sign_raw_or_encoded() -> None:
    raw = Settings.from_url(f"redis://:pa@ss{SECRET}@127.0.0.1:1")
    assert raw.password == f"pa@ss{SECRET}" and raw.url == "redis://:***@127.0.0.1:1/0"
    encoded = Settings.from_url(f"redis://user:p%40ss{SECRET}@127.0.0.1:1")
    assert encoded.password == f"p@ss{SECRET}" and encoded.url == "redis://user:***@127.0.0.1:1/0"
    assert _no_piece(repr(raw) + repr(encoded))
    with pytest.raises(ConfigError) as info:  # (and another mistake after it)
        Settings.from_url(f"redis://:pa@ss{SECRET}@127.0.0.1:notaport")
    assert _no_piece(str(info.value)), info.value


_COMMANDS = [
    ("status",),
    ("status", "--json"),
    ("prompt", "worker"),
    ("mcp", "install", "--client", "codex"),
    ("doctor", "--quick", "--json"),
]


@pytest.mark.parametrize("url", [_URLS[0], _URLS[1], _URLS[5], _URLS[6], _URLS[13]])
def test_no_command_shows_a_piece_of_the_secret(url: str, tmp_path: Path) -> None:
    cli = Cli(url, swarm="edges", env={"HOME": str(tmp_path)})
    for args in _COMMANDS:
        out = cli(*args, expect=None)
        said = out.stdout + out.stderr
        assert out.code != 0 and _no_piece(said), (args, said)
        assert "***" in said, (args, said)
    assert not (tmp_path / ".codex").exists()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("rediss://h:6380?ssl_keyfile=/k.pem&ssl_password=SECRET", "a client key's passphrase"),
        ("redis+sentinel://h:26379/mymaster?sentinel_password=SECRET", "sentinels are reached"),
    ],
)
def test_a_secret_that_is_no_redis_password_is_not_sent_to_redis_by_the_advice(
    url: str, says: str
) -> None:
    """Told 'a user name and password go before the host', a user would have sent a key's
    passphrase (or a sentinel's password) to Redis as its AUTH password (a review's catch)."""
    with pytest.raises(ConfigError) as caught:
        Settings.from_url(url)
    said = str(caught.value)
    assert says in said and "go before the host" not in said and "SECRET" not in said, said
