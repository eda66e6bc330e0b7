"""What the third fresh-clone walkthrough found:

1. ``SwarmMemoryShard`` and ``RedisSwarmCoordinator`` refused ``redis_username=`` (and the
   shard ``redis_db=``), which docs/seed.md says every seed class takes: a shard on a
   per-role ACL user could connect only with ``url=``.
2. A context that is not UTF-8 published as ``text/markdown`` without a word; only its
   readers refused it later.
3. ``Swarm.from_env`` took no ``cache=``.
4. An ambiguous version prefix did not say which versions it begins; a too-short one was
   called "not a context version".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis

from redis_swarm import (
    AsyncSwarm,
    ContextCache,
    RedisSwarmCoordinator,
    Settings,
    SonnetCoordinator,
    Swarm,
    SwarmMemoryShard,
    ValidationError,
    apply_role,
)

from ._cli import Cli
from ._servers import RedisServer

ACL_SWARM = "walk3"


# --- 1. every seed class takes the same connection keywords


def test_seed_classes_connect_as_an_acl_user(acl_server: RedisServer) -> None:
    admin = Settings.from_url(acl_server.url, swarm=ACL_SWARM)
    shard_user = apply_role(admin, "shard", "walk3-shard").user
    coord_user = apply_role(admin, "coordinator", "walk3-coord").user
    assert shard_user.password and coord_user.password
    where: dict[str, Any] = {
        "redis_host": "127.0.0.1",
        "redis_port": acl_server.port,
        "swarm": ACL_SWARM,
    }
    with SwarmMemoryShard(
        specialization="acl",
        redis_username=shard_user.user,
        redis_password=shard_user.password,
        redis_db=0,
        **where,
    ) as shard:
        assert shard.load_context("held by an ACL user\n", "acl.md").size_bytes == 20
        with (
            RedisSwarmCoordinator(
                redis_username=coord_user.user, redis_password=coord_user.password, **where
            ) as v1,
            SonnetCoordinator(
                redis_username=coord_user.user, redis_password=coord_user.password, **where
            ) as sonnet,
        ):
            assert v1.get_context(shard.agent_id) == "held by an ACL user\n"
            assert sonnet.get_swarm_status()["total_shards"] == 1
    # The user named is the one connected as: another user's password is refused.
    with pytest.raises(Exception, match=r"(?i)password|auth"):
        SwarmMemoryShard(
            redis_username=coord_user.user, redis_password=shard_user.password, **where
        )
    # A keyword no role takes is still refused, by its name.
    with pytest.raises(TypeError, match="redis_user"):
        SwarmMemoryShard(redis_host="127.0.0.1", redis_user="shard")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="redis_user"):
        RedisSwarmCoordinator(redis_host="127.0.0.1", redis_user="c")  # type: ignore[call-arg]


def test_the_shard_takes_redis_db(redis_server: RedisServer) -> None:
    assert redis_server.port is not None
    raw = redis.Redis(port=redis_server.port, db=3)
    try:
        raw.flushdb()
        with SwarmMemoryShard(
            "127.0.0.1", redis_server.port, "db3", redis_db=3, swarm="walk3-db"
        ) as shard:
            shard.load_context("in db 3\n", "db.md")
        assert any(b"walk3-db" in key for key in raw.scan_iter())
        raw.flushdb()
    finally:
        raw.close()


# --- 3. Swarm.from_env takes the constructor's cache (and limits, clock)


def test_from_env_takes_a_disk_cache(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWARM_URL", redis_url)
    folder = tmp_path / "cache"
    cache = ContextCache(directory=folder)
    with Swarm.from_env(swarm="walk3-env", cache=cache, clock=lambda: 1_800_000_000_000) as swarm:
        version = swarm.publish_context("lib", "kept on disk\n", source="lib.md").version
        assert swarm.get_context("lib") == "kept on disk\n"
        assert swarm.context_info("lib").created_at == 1_800_000_000_000
    assert cache.hits >= 1 and any(version in p.name for p in folder.rglob("*"))

    async def body() -> None:
        async with AsyncSwarm.from_env(swarm="walk3-env", cache=cache) as swarm:
            hits = cache.hits
            assert await swarm.get_context("lib") == "kept on disk\n"
            assert cache.hits == hits + 1

    import anyio

    anyio.run(body)


# --- 4. a version prefix that is ambiguous, or too short


def _two_texts_sharing_a_version_prefix() -> tuple[str, str]:
    """Two texts whose versions (BLAKE3) begin with the same 8 hex digits (a birthday
    search: some 80,000 hashes)."""
    from blake3 import blake3

    seen: dict[str, str] = {}
    for i in range(2_000_000):
        text = f"version {i}\n"
        prefix = blake3(text.encode()).hexdigest()[:8]
        if prefix in seen:
            return seen[prefix], text
        seen[prefix] = text
    raise AssertionError("no two versions share 8 hex digits")  # pragma: no cover


def test_an_ambiguous_prefix_lists_the_versions_it_begins(swarm: Swarm, cli: Cli) -> None:
    first, second = _two_texts_sharing_a_version_prefix()
    versions = [swarm.publish_context("lib", t, source="lib.md").version for t in (first, second)]
    prefix = versions[0][:8]
    assert versions[1].startswith(prefix)
    with pytest.raises(ValidationError, match="ambiguous") as info:
        swarm.get_context("lib", version=prefix)
    for version in versions:
        assert version[:12] in str(info.value)
    assert "swarm context versions lib" in str(info.value)
    out = cli("context", "get", "lib", "--version", prefix, expect=2)
    assert "it begins 2 kept versions" in out.stderr and versions[1][:12] in out.stderr
    assert "swarm context versions lib" in out.stderr
    # One more character than they share tells them apart.
    shared = next(i for i, (a, b) in enumerate(zip(*versions, strict=True)) if a != b)
    assert swarm.get_context("lib", version=versions[1][: shared + 1]) == second


def test_a_too_short_prefix_is_called_too_short(swarm: Swarm, cli: Cli) -> None:
    version = swarm.publish_context("lib", "short\n", source="lib.md").version
    with pytest.raises(ValidationError, match="is too short: give at least 8 characters"):
        swarm.get_context("lib", version=version[:4])
    out = cli("context", "get", "lib", "--version", version[:7], expect=2)
    assert f"version {version[:7]!r} is too short" in out.stderr
    assert "not a context version" not in out.stderr
    assert "swarm context versions lib" in out.stderr
    # Not hex at all: still not a version.
    out = cli("context", "get", "lib", "--version", "zz", expect=2)
    assert "'zz' is not a context version" in out.stderr
    assert swarm.get_context("lib", version=version[:8]) == "short\n"


# --- 2. a context that is not UTF-8 is refused as text at publish, not at its first read

BINARY = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


def test_bytes_that_are_not_text_are_refused_under_a_text_media_type(
    swarm: Swarm, tmp_path: Path
) -> None:
    path = tmp_path / "bin.dat"
    path.write_bytes(BINARY)
    for content in (BINARY, path):
        for media_type in ("text/markdown", "text/plain; charset=utf-8", "application/json"):
            with pytest.raises(ValidationError) as info:
                swarm.publish_context("x", content, source="bin.dat", media_type=media_type)
            said = str(info.value)
            assert "not UTF-8 text (byte 0 is not)" in said and repr(media_type) in said
            assert "get_parent_context" in said and "'application/octet-stream'" in said
    with pytest.raises(ValidationError, match="not UTF-8"):  # the default: text/markdown
        swarm.publish_context("x", BINARY, source="bin.dat")
    with pytest.raises(Exception, match="no context"):  # nothing was stored
        swarm.context_info("x")
    # Given as what it is, it publishes, and reads as bytes.
    png = swarm.publish_context("x", path, source="bin.dat", media_type="image/png")
    assert png.media_type == "image/png"
    assert swarm.get_context_bytes("x") == BINARY
    # UTF-8 bytes are text under any media type.
    swarm.publish_context("t", "naïve ✓\n".encode(), source="t.md")
    assert swarm.get_context("t") == "naïve ✓\n"


def test_the_cli_refuses_a_binary_file_published_as_markdown(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "bin.dat"
    path.write_bytes(BINARY)
    out = cli("context", "publish", str(path), "--owner", "x", expect=2)
    assert "not UTF-8 text" in out.stderr and "--media-type" in out.stderr
    assert "published" not in out.stdout
    assert cli.json("context", "list") == {"items": []}  # nothing was stored
    out = cli(
        "context", "publish", str(path), "--owner", "x", "--media-type", "application/octet-stream"
    )
    assert "published x" in out.stdout


@pytest.mark.parametrize(
    "media_type", ["application/pdf; charset=binary", "application/octet-stream; charset=binary"]
)
def test_charset_binary_is_not_text(swarm: Swarm, media_type: str) -> None:
    """What ``file -bi`` says of a binary file (it was refused as text, the escape the
    refusal names among them)."""
    info = swarm.publish_context("x", BINARY, source="b.pdf", media_type=media_type)
    assert info.media_type == media_type and swarm.get_context_bytes("x") == BINARY


def test_a_lone_surrogate_is_told_a_way_that_is_not_refused(swarm: Swarm) -> None:
    """It said "publish bytes", which the text refusal then refused under the default
    media type."""
    with pytest.raises(ValidationError) as info:
        swarm.publish_context("x", "a\udcff", source="x")
    said = str(info.value)
    assert "media_type='application/octet-stream'" in said, said
    raw = "a\udcff".encode(errors="surrogatepass")
    swarm.publish_context("x", raw, source="x", media_type="application/octet-stream")
    assert swarm.get_context_bytes("x") == raw


def test_other_text_encodings_are_told_to_convert(swarm: Swarm) -> None:
    with pytest.raises(ValidationError) as info:
        swarm.publish_context("x", "naïve".encode("utf-16"), source="x", media_type="text/plain")
    assert "Only UTF-8 is read as text: convert it (e.g. iconv -t UTF-8)" in str(info.value)
