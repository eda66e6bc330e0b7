"""Connection URLs: what ``render_url`` writes parses back to the same settings (the URL the
runner hands its agents), and no error about a URL ever shows a piece of its password."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redis_swarm import ConfigError, Settings
from redis_swarm._config import user_may_be_secret

# Characters that mean something in a URL, over-represented among any others.
_DELIMITERS = ":/?#@%[]+&=; \"'\\\t\n"
_text = st.text(st.sampled_from(_DELIMITERS) | st.characters(codec="utf-8"), min_size=1)
_path = _text.map(lambda text: "/" + text)
_seconds = st.floats(min_value=0, max_value=1e6, allow_nan=False)
_hosts = st.tuples(
    st.sampled_from(["127.0.0.1", "::1", "redis.example.com", "h-1"]),
    st.integers(1, 65535),
)


@st.composite
def _settings(draw: st.DrawFn) -> Settings:
    """Any Settings a URL can carry: every kind, options, users and passwords."""
    kind = draw(st.sampled_from(["embedded", "unix", "standalone", "cluster", "sentinel"]))
    values: dict[str, object] = {
        "kind": kind,
        "durability": draw(st.sampled_from(["normal", "strict"])),
        "compression": draw(st.sampled_from(["auto", "always", "never"])),
    }
    if kind == "embedded":
        return Settings(**values, home=Path(draw(_path)))  # type: ignore[arg-type]
    values["username"] = draw(st.none() | _text)
    values["password"] = draw(st.none() | _text)
    values["db"] = draw(st.integers(0, 15)) if kind != "cluster" else 0
    if kind == "unix":
        return Settings(**values, path=draw(_path))  # type: ignore[arg-type]
    ssl = draw(st.booleans())
    values["ssl"] = ssl
    if ssl:
        values["ssl_ca_certs"] = draw(st.none() | _path)
        values["ssl_certfile"] = draw(st.none() | _path)
        if values["ssl_certfile"] is not None:
            values["ssl_keyfile"] = draw(st.none() | _path)
        values["ssl_cert_reqs"] = draw(st.sampled_from(["required", "optional", "none"]))
    values["retries"] = draw(st.integers(0, 100))
    values["socket_timeout"] = draw(_seconds)
    values["connect_timeout"] = draw(_seconds)
    if kind == "standalone":
        values["host"], values["port"] = draw(_hosts)
    else:
        values["nodes"] = tuple(draw(st.lists(_hosts, min_size=1, max_size=3)))
    if kind == "sentinel":
        # (a name no Sentinel can have is refused when the URL is read: check_sentinel_service)
        values["service_name"] = draw(st.from_regex(r"[A-Za-z0-9._-]+", fullmatch=True))
    return Settings(**values)  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None)
@given(_settings())
def test_a_rendered_url_parses_back_to_the_same_settings(original: Settings) -> None:
    url = original.render_url(mask=False)
    assert Settings.from_url(url) == original, url
    # the masked URL carries everything else
    masked = original.replace(password="***" if original.password else None)
    if user_may_be_secret(original.username, original.password):  # (shown as a password)
        masked = masked.replace(username="***")
    assert Settings.from_url(original.url) == masked


def test_the_url_an_agent_gets_keeps_tls_options_and_encodes_the_password() -> None:
    given_url = (
        "rediss://legal-worker:p%40ss%3Aw%2Frd%23%3F@127.0.0.1:6380"
        "?ssl_ca_certs=/tmp/tls/ca.crt&ssl_certfile=/tmp/tls/agent.crt"
        "&ssl_keyfile=/tmp/tls/agent.key&retries=40&connect_timeout=2.5&durability=strict"
    )
    original = Settings.from_url(given_url)
    assert original.password == "p@ss:w/rd#?"
    url = original.render_url(mask=False)
    assert url.startswith("rediss://legal-worker:p%40ss%3Aw%2Frd%23%3F@127.0.0.1:6380/0?")
    for option in given_url.split("?")[1].split("&"):
        assert option in url
    assert Settings.from_url(url) == original
    # the masked one keeps the options too (a copy-paste command needs them), not the password
    assert "***@" in original.url and "ssl_ca_certs=/tmp/tls/ca.crt" in original.url


def test_defaults_stay_out_of_the_url() -> None:
    assert Settings.from_url("redis://h").render_url() == "redis://h:6379/0"
    assert Settings.from_url("redis+cluster://a:1").render_url() == "redis+cluster://a:1"
    assert Settings.from_url("redis+cluster://a:1?retries=6").render_url() == (
        "redis+cluster://a:1?retries=6"
    )


MARK = "Zq7MARKq7Z"


@pytest.mark.parametrize(
    "url",
    [
        # the tour's cases: no '://', and raw delimiters in the password
        f"rediss//legal-worker:{MARK}@127.0.0.1:6380",
        f"redis://w2:aa@bb:{MARK}/cc@127.0.0.1:38123",
        f"redis://w2:{MARK}#x@127.0.0.1:38123",
        f"redis://w2:#{MARK}@127.0.0.1:38123",
        f"redis://w2:{MARK}?x@127.0.0.1:38123",
        f"redis://w2:x/{MARK}@127.0.0.1:38123",
        f"redis://w2:12/{MARK}@127.0.0.1",
        f"redis://w2:12?{MARK}=1@h",
        f"redis://w2:12?retries={MARK}@h",
        f"redis://w2:12?durability={MARK}@h",
        f"redis://{MARK}:12#@h",
        # the whole userinfo is hidden when the URL does not parse: the user may be the secret
        f"rediss//{MARK}:pw@h",
        f"{MARK}:pw@h",
        f"{MARK}@h://x",
        f"foo://{MARK}:pw@h",
        f"redis:{MARK}:pw@h",
        f"unix://w2:{MARK}/x@/tmp/r.sock",
        f"redis+sentinel://w2:12/{MARK}@h:26379/m",
        f"redis+sentinel://w2:{MARK}/x@h:26379/m/1",
        f"redis+cluster://w2:{MARK}/x@h:1,h:2",
        f"embedded://w2:{MARK}@x",
        f"redis://w2:{MARK}@h:notaport",
        f"redis://w2:{MARK}@h/notadb",
    ],
)
def test_a_bad_url_never_shows_its_userinfo(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_url(url)
    message = str(info.value)
    assert MARK.lower() not in message.lower()
    assert "\n" not in message


def test_a_password_with_raw_delimiters_is_told_to_percent_encode() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_url(f"redis://w2:aa@bb:{MARK}/cc@127.0.0.1:38123")
    assert "percent-encoded" in str(info.value) and "p%40ss%3Aw%2Frd" in str(info.value)
    assert "'redis://***@127.0.0.1:38123'" in str(info.value)
    with pytest.raises(ConfigError, match="needs '://' after the scheme"):
        Settings.from_url(f"rediss//legal-worker:{MARK}@127.0.0.1:6380")


_SCHEMES = ["redis://", "rediss://", "rediss//", "redis:", "redis+cluster://", "unix://", ""]
_TAILS = ["127.0.0.1:6379", "h:notaport", "h", "[::1]:1", "a:1,b:2", "/tmp/r.sock", ""]
_AFTER = ["", "/0", "/x", "/svc/1", "?retries=x", "?ssl_ca_certs=/x", "?bogus=1", "#f"]


@settings(max_examples=600, deadline=None)
@given(
    st.sampled_from(_SCHEMES),
    st.none() | st.text(st.sampled_from("abc:/?#@%"), max_size=4),
    st.text(st.sampled_from("ab1:/?#@%&="), max_size=6),
    st.text(st.sampled_from("ab1:/?#@%&="), max_size=6),
    st.sampled_from(_TAILS),
    st.sampled_from(_AFTER),
)
def test_no_url_shows_its_password(
    scheme: str, user: str | None, before: str, after: str, tail: str, rest: str
) -> None:
    """Whatever a password holds, and whatever is wrong around it: the error, or the URL of
    the settings it parses to, never holds a piece of it."""
    password = before + MARK + after
    url = f"{scheme}{user or ''}:{password}@{tail}{rest}"
    try:
        parsed = Settings.from_url(url)
        shown = f"{parsed.url} {parsed!r}"
    except ConfigError as exc:
        shown = str(exc)
    assert MARK.lower() not in shown.lower(), url


def test_a_unix_socket_path_may_hold_an_at_sign() -> None:
    """A file's path may hold '@' (/run/user@1000): it is no password that ran on."""
    plain = Settings.from_url("unix:///run/user@1000/redis.sock")
    assert plain.path == "/run/user@1000/redis.sock" and plain.password is None
    assert Settings.from_url(plain.render_url(mask=False)) == plain
    with_auth = Settings.from_url("unix://u:p@/tmp/x%40y.sock")  # (with a user: encoded)
    assert with_auth.path == "/tmp/x@y.sock" and with_auth.password == "p"


def test_a_raw_bracket_in_a_password_is_a_plain_error_without_the_password() -> None:
    with pytest.raises(ConfigError, match=r"percent-encoded") as caught:
        Settings.from_url("redis://u:pa[SECRET@127.0.0.1:1/0")
    assert "SECRET" not in str(caught.value)
