"""Seed walkthrough 5: the seed's connection keywords are never dropped (checked whatever
else is given, applied on top of the environment's URL or refused), the typed ``publish``
takes the keywords its errors name (bytes with a media type, ``allow_empty``), a file name
that is no text is refused naming ``--source``, empty stdin names ``--allow-empty``, V1's
``version`` is the source it is stored as, and a new context owner may not begin with '-'.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import (
    ConfigError,
    EphemeralWorker,
    MemoryShard,
    RedisSwarmCoordinator,
    Swarm,
    SwarmMemoryShard,
    ValidationError,
)
from redis_swarm._ops.contexts import publish_context

from ._cli import Cli
from ._servers import RedisServer, ServerFactory

SWARM = "walk5"


@pytest.fixture
def env_url(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """SWARM_URL naming the test's server (no host given to the roles), SWARM_NAME unset."""
    monkeypatch.setenv("SWARM_URL", redis_url)
    monkeypatch.delenv("SWARM_NAME", raising=False)
    return redis_url


# --- 1. the connection keywords given without redis_host


@pytest.fixture
def locked(own_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``own_server`` requiring a password, named by SWARM_URL without it."""
    client = own_server.client()
    client.flushall()
    client.config_set("requirepass", "s3cr:et@x")  # (this connection stays logged in)
    monkeypatch.setenv("SWARM_URL", own_server.url)
    try:
        yield client
    finally:
        client.config_set("requirepass", "")
        client.close()


def test_password_and_db_apply_on_top_of_swarm_url(locked: Any) -> None:
    with SwarmMemoryShard(redis_password="s3cr:et@x", redis_db=2, swarm=SWARM) as shard:
        assert shard.swarm.settings.db == 2
        shard.load_context("notes", "n.md")
    locked.select(2)
    assert locked.keys(f"*{SWARM}*"), "the shard wrote into database 2"
    locked.select(0)
    assert not locked.keys(f"*{SWARM}*")


def test_tls_applies_on_top_of_swarm_url(env_url: str) -> None:
    worker = EphemeralWorker(redis_ssl=True)  # (connects at its first call: none here)
    try:
        assert worker.swarm.settings.ssl is True
        assert worker.swarm.settings.url.startswith("rediss://127.0.0.1:")
    finally:
        worker.close()


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ({"redis_ssl": "no"}, "redis_ssl must be True or False"),
        ({"redis_ssl": 1}, "redis_ssl must be True or False"),
        ({"redis_db": -1}, "redis_db must be a database number"),
        ({"redis_db": "2"}, "redis_db must be a database number"),
        ({"redis_password": 5}, "redis_password must be a string"),
    ],
)
def test_bad_keywords_refused_without_a_host(env_url: str, given: Any, said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        SwarmMemoryShard(swarm=SWARM, **given)
    with pytest.raises(ConfigError, match=said):
        RedisSwarmCoordinator(swarm=SWARM, **given)


def test_a_login_and_db_apply_on_top_of_a_unix_url_tls_is_refused(
    servers: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A socket has a login and databases (a server of its own behind a password here),
    no TLS: redis_ssl=True on a unix URL is refused, naming it."""
    server = servers.start(unix=True)
    try:
        with server.client() as admin:
            admin.config_set("requirepass", "sock-pw-1234567890")
        monkeypatch.setenv("SWARM_URL", server.url)
        shard = SwarmMemoryShard(swarm=SWARM, redis_password="sock-pw-1234567890", redis_db=3)
        try:
            assert shard.swarm.settings.db == 3 and shard.swarm.settings.kind == "unix"
            shard.swarm.ping()
        finally:
            shard.close()
        with pytest.raises(ConfigError, match=r"redis_ssl given without redis_host.*no TLS"):
            EphemeralWorker(redis_ssl=True)
    finally:
        server.stop()


def test_login_on_the_embedded_server_refused(
    swarm_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SWARM_URL", raising=False)
    monkeypatch.setenv("SWARM_HOME", str(swarm_home))
    with pytest.raises(ConfigError, match=r"redis_password.*embedded server.*redis_host="):
        SwarmMemoryShard(redis_password="x")


def test_url_and_host_together_refused(redis_url: str) -> None:
    with pytest.raises(ConfigError, match="give it once"):
        EphemeralWorker("127.0.0.1", url=redis_url)


# --- 2. publish takes the keywords its errors name


def test_publish_options_are_the_cores() -> None:
    from redis_swarm.roles._base import PublishOptions

    core = inspect.signature(publish_context).parameters.values()
    keywords = {p.name for p in core if p.kind is p.KEYWORD_ONLY} - {"source"}
    assert set(PublishOptions.__annotations__) == keywords


def test_typed_publish_takes_bytes_with_a_media_type(env_url: str) -> None:
    with MemoryShard(swarm=SWARM) as shard:
        with pytest.raises(ValidationError, match="media_type="):
            shard.publish(b"\xff\xfe binary", "x.bin")
        info = shard.publish(b"\xff\xfe binary", "x.bin", media_type="application/octet-stream")
        assert info.media_type == "application/octet-stream"
        assert shard.swarm.get_context_bytes(shard.agent_id) == b"\xff\xfe binary"


def test_allow_empty_taken_where_its_error_names_it(env_url: str) -> None:
    with SwarmMemoryShard(swarm=SWARM) as shard:
        shard.load_context("text", "x.md")
        with pytest.raises(ValidationError, match="allow_empty=True"):
            shard.load_context("", "x.md")
        assert shard.load_context("", "x.md", allow_empty=True).size_bytes == 0
        shard.publish("text", "x.md")
        assert shard.publish("", "x.md", allow_empty=True).size_bytes == 0
    with RedisSwarmCoordinator(swarm=SWARM) as v1:
        me = v1.register_agent("shard")
        v1.update_context("text", me)
        with pytest.raises(ValidationError, match="allow_empty=True"):
            v1.update_context("", me)
        v1.update_context("", me, allow_empty=True)
        assert v1.get_context(me) == ""


def test_load_context_names_context_source(env_url: str) -> None:
    with (
        SwarmMemoryShard(swarm=SWARM) as shard,
        pytest.raises(ValidationError, match=r"^context_source ' ' is blank"),
    ):
        shard.load_context("text", " ")


# --- 3. a source that is not text


def test_library_source_not_unicode_names_source(redis_url: str) -> None:
    with (
        Swarm(redis_url, swarm=SWARM) as swarm,
        pytest.raises(ValidationError, match="source is not valid Unicode") as caught,
    ):
        swarm.publish_context("fnx", "hi", source="n\udce9.md")
    assert "--source NAME" in str(caught.value)


def test_cli_file_name_not_utf8_names_source(cli: Cli, tmp_path: Path) -> None:
    name = os.fsdecode(b"n\xe9.md")
    path = tmp_path / name
    path.write_bytes(b"hi\n")
    out = cli("context", "publish", str(path), "--owner", "fnx", expect=2)
    assert "--source NAME" in out.stderr
    assert "n\\xe9.md" in out.stderr
    assert "surrogate" not in out.stderr
    cli("context", "publish", str(path), "--owner", "fnx", "--source", "ne.md")
    assert cli("context", "info", "fnx", "--json").json()["source"] == "ne.md"


# --- 4. empty stdin


def test_empty_stdin_names_allow_empty(cli: Cli) -> None:
    out = cli("context", "publish", "-", "--owner", "fresh2", input=b"", expect=2)
    assert "--allow-empty" in out.stderr
    cli("context", "publish", "-", "--owner", "fresh2", "--allow-empty", input=b"")
    assert cli("context", "info", "fresh2", "--json").json()["size_bytes"] == 0


# --- 5. V1's version


def test_v1_version_is_the_source(env_url: str) -> None:
    with RedisSwarmCoordinator(swarm=SWARM) as v1:
        me = v1.register_agent("shard")
        v1.update_context("text", me, version="2.0")
        assert v1.swarm.context_info(me).source == "2.0"
        with pytest.raises(ValidationError, match=r"^version ' ' is blank"):
            v1.update_context("text", me, version=" ")


# --- 6. a new owner beginning with '-'


def test_new_owner_beginning_with_dash_refused(cli: Cli, redis_url: str) -> None:
    out = cli("context", "publish", "-", "--owner", "-x", input=b"text", expect=2)
    assert "begins with '-'" in out.stderr
    with (
        Swarm(redis_url, swarm="test") as swarm,
        pytest.raises(ValidationError, match="owner '-x' begins with '-'"),
    ):
        swarm.publish_context("-x", "text", source="s")
