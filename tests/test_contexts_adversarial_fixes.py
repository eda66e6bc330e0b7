"""Fixes of an adversarial run of the contexts: a chunk write landing after gc gave up on its
publish, chunks a publish reuses checked for existence and length, an empty file replacing a
context, callers' parameter names in the seed API's refusals, repair hints quoted for the
shell, the file named in a refusal of UTF-16 text, a binary context's preview."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import (
    ConfigError,
    Conflict,
    CorruptRecord,
    Limits,
    Swarm,
    ValidationError,
)
from redis_swarm._keys import Keys
from redis_swarm._ops import _context_gc as gcops
from redis_swarm._ops import _context_store as store
from redis_swarm._ops import contexts as context_ops
from redis_swarm._protocol import Batch, Call
from redis_swarm.roles import RedisSwarmCoordinator, SwarmMemoryShard

from ._cli import Cli
from ._handles import FakeClock
from ._invariants import check_swarm
from ._raw import raw_client

KEYS = Keys("test")


def _text(n_lines: int, tag: str) -> str:
    return "".join(f"{tag} line {i}: {i * 7919 % 1000}\n" for i in range(n_lines))


def _chunks(url: str) -> set[str]:
    with raw_client(url) as r:
        return {k.decode() for k in r.scan_iter("rs:chunk:*")}


@pytest.fixture
def small(redis_url: str) -> Iterator[tuple[Swarm, FakeClock]]:
    clock = FakeClock()
    with Swarm(
        redis_url, swarm="test", limits=Limits(context_chunk_bytes=1024), clock=clock
    ) as swarm:
        yield swarm, clock


# --- 1. a chunk write that lands after gc gave up on its publish


def _runs(step: Any, script: str) -> bool:
    items = step.items if isinstance(step, Batch) else (step,)
    return any(isinstance(i, Call) and i.script == script for i in items)


def test_a_chunk_write_landing_after_gc_released_its_publish_leaves_nothing(
    small: tuple[Swarm, FakeClock], redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race, by hand: gc (grace 0) gives up on a publish between its lookup of the chunks
    and their writes, releases its token from them, and forgets it only after the flip; the
    writes land in between and hold the token again. The flip says Conflict, and nothing is
    left that no kept version uses (on HEAD the chunks stayed, held by a forgotten token)."""
    swarm, _ = small
    swarm.publish_context("o", _text(60, "v1"), source="a")
    before = _chunks(redis_url)
    real = context_ops._publish_chunks
    given_up: list[int] = []

    def racing(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        gen = real(ctx, *args, **kwargs)
        reply: Any = None
        error: BaseException | None = None
        forget: list[str] = []
        while True:
            try:
                step = gen.throw(error) if error is not None else gen.send(reply)
            except StopIteration as stop:
                return stop.value
            error = None
            if _runs(step, "chunk_put"):
                # gc gives up on the publish and releases its holds: the writes are on their way
                taken = yield gcops._step(ctx, "take", 0, gcops.GC_BUDGET, ())
                given_up.append(int(taken[0]))
                holds = gcops.took(taken[1:])
                yield from gcops.release(ctx.keys, holds)
                forget = list(holds)
            try:
                reply = yield step
            except Exception as exc:
                error = exc
                continue
            if _runs(step, "context_publish"):
                yield gcops._step(ctx, "take", 0, 0, forget)  # gc forgets what it released

    monkeypatch.setattr(context_ops, "_publish_chunks", racing)
    with pytest.raises(Conflict, match="gave up the publish"):
        swarm.publish_context("o", _text(60, "v2"), source="a")
    monkeypatch.undo()
    assert given_up == [1]
    assert _chunks(redis_url) == before  # the late writes' chunks went with their token
    with raw_client(redis_url) as r:
        check_swarm(r, "test")  # no chunk held by a token gc cannot find
    assert swarm.gc(grace_s=0).holds_released == 0
    assert swarm.get_context("o") == _text(60, "v1")


# --- 2. chunks a publish reuses: stored, at their length


@pytest.mark.parametrize("damage", ["deleted", "cut short"])
def test_an_unchanged_republish_stays_one_round_trip_and_repair_mends_its_chunks(
    small: tuple[Swarm, FakeClock], redis_url: str, damage: str
) -> None:
    """Publishing the current version again writes nothing and reads no chunk (one round
    trip, as designed: tests/test_slow_links.py): a chunk deleted or cut short by hand is
    found by a read, whose error names the repair, and ``repair=True`` sends it again."""
    swarm, _ = small
    text = _text(80, "tri")
    first = swarm.publish_context("tri", text, source="a")
    with raw_client(redis_url) as r:
        key = sorted(_chunks(redis_url))[0]
        if damage == "deleted":
            r.delete(key)
        else:
            r.hset(key, "data", r.hget(key, "data")[:-3])
    assert not swarm.publish_context("tri", text, source="a").changed
    # (A read of the version by its hash reads the chunks: the current one's copy would not.)
    with Swarm(redis_url, swarm="test") as fresh, pytest.raises(CorruptRecord, match="repair"):
        fresh.get_context("tri", version=first.version)
    assert swarm.publish_context("tri", text, source="a", repair=True).changed
    with Swarm(redis_url, swarm="test") as fresh:
        assert fresh.get_context("tri", version=first.version) == text
    with raw_client(redis_url) as r:
        check_swarm(r, "test")


def test_an_older_kept_version_missing_a_chunk_is_sent_again_when_made_current(
    small: tuple[Swarm, FakeClock], redis_url: str
) -> None:
    swarm, _ = small
    old, new = _text(80, "old"), _text(80, "new")
    swarm.publish_context("k", old, source="a")
    old_chunks = _chunks(redis_url)
    swarm.publish_context("k", new, source="a")
    with raw_client(redis_url) as r:
        r.delete(sorted(old_chunks)[1])
    back = swarm.publish_context("k", old, source="a")
    assert back.changed
    with Swarm(redis_url, swarm="test") as fresh:
        assert fresh.get_context("k", version=back.version) == old
    with raw_client(redis_url) as r:
        check_swarm(r, "test")


def test_the_cli_republish_with_repair_mends_a_deleted_chunk(
    cli: Cli, redis_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "notes.md"
    path.write_text(_text(30_000, "tri"))  # > 1 MiB: two chunks
    cli("context", "publish", str(path), "--owner", "tri")
    with raw_client(redis_url) as r:
        r.delete(sorted(_chunks(redis_url))[0])
    assert "unchanged" in cli("context", "publish", str(path), "--owner", "tri").stdout
    out = cli("context", "publish", str(path), "--owner", "tri", "--repair")
    assert out.stdout.startswith("published (every chunk sent again) tri version"), out
    with Swarm(redis_url, swarm="test") as fresh:  # (a read of its chunks, with no cache)
        assert fresh.get_context("tri", version=fresh.context_info("tri").version) == (
            path.read_text()
        )


# --- 3. an empty file does not silently replace a context


def test_empty_content_replaces_a_context_only_when_allowed(swarm: Swarm, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    assert swarm.publish_context("fresh", "", source="").size_bytes == 0  # none yet: fine
    assert not swarm.publish_context("fresh", empty, source="").changed  # empty onto empty
    swarm.publish_context("x", "notes\n", source="a")
    for content in ("", b"", empty):
        with pytest.raises(ValidationError) as info:
            swarm.publish_context("x", content, source="")
        said = str(info.value)
        assert "the content is empty (0 bytes)" in said and "6-byte context of 'x'" in said
        assert "allow_empty=True" in said and "--allow-empty" in said
    assert swarm.get_context("x") == "notes\n"
    assert swarm.publish_context("x", empty, source="", allow_empty=True).size_bytes == 0
    assert swarm.get_context("x") == ""


def test_the_cli_refuses_an_empty_file_over_a_context_unless_allowed(
    cli: Cli, tmp_path: Path
) -> None:
    (tmp_path / "notes.md").write_text("notes\n")
    (tmp_path / "empty.txt").write_bytes(b"")
    cli("context", "publish", str(tmp_path / "notes.md"), "--owner", "x")
    for file in (str(tmp_path / "empty.txt"), "/dev/null"):
        out = cli("context", "publish", file, "--owner", "x", expect=2)
        assert "the content is empty (0 bytes)" in out.stderr and "--allow-empty" in out.stderr
    assert cli("context", "get", "x").stdout == "notes\n"
    cli("context", "publish", "-", "--owner", "x", "--allow-empty", input=b"")
    assert cli("context", "get", "x").stdout == ""


# --- 4. messages


def test_the_seed_api_names_its_callers_parameters(redis_url: str) -> None:
    with RedisSwarmCoordinator(url=redis_url, swarm="words") as v1:
        with pytest.raises(ValidationError, match=r"^context_capacity must be an integer"):
            v1.register_agent("worker", context_capacity=-5)
        with pytest.raises(ValidationError, match=r"^max_age_seconds must be a number"):
            v1.cleanup_stale_agents(-5)


def test_lines_that_are_not_integers_are_named_so(swarm: Swarm) -> None:
    swarm.publish_context("l", "a\nb\n", source="a")
    with pytest.raises(ValidationError, match="two integers"):
        swarm.read_context("l", lines=(1.0, 2))  # type: ignore[arg-type]


def test_a_negative_copy_bound_is_refused() -> None:
    # (refused as the limits are made, not at the first publish)
    with pytest.raises(ConfigError, match="context_copy_bytes must be an integer of at"):
        Limits(context_copy_bytes=-1)


@pytest.mark.parametrize("regex", [False, True])
def test_a_pattern_with_a_lone_surrogate_is_refused_either_way(swarm: Swarm, regex: bool) -> None:
    swarm.publish_context("s", "a\N{GRINNING FACE}b\n", source="a")
    with pytest.raises(ValidationError, match="lone surrogate"):
        swarm.search_context("s", "\ud83d", regex=regex)


# --- 5. repair hints built from the source


@pytest.mark.parametrize(
    ("source", "file"),
    [
        ("-rf.md", "./-rf.md"),
        ("my notes (v2).md", "'my notes (v2).md'"),
        ("it's.md", "'it'\"'\"'s.md'"),
        ("notes.md", "notes.md"),
        ("stdin", "-"),
        ("https://example.com/a.md", "FILE"),
        ("mcp:shard-1", "FILE"),
    ],
)
def test_the_repair_command_quotes_the_source_for_the_shell(source: str, file: str) -> None:
    info = dataclasses.replace(
        store.parse_manifest(
            '{"owner": "srcx", "version": "ab", "size_bytes": 0, "tokens_est": 0, '
            '"chunks": 0, "source": "", "media_type": "text/plain", "total_lines": 0, '
            '"parts": []}'
        ).info,
        source=source,
    )
    assert store.repair_command(info) == f"swarm context publish {file} --owner srcx --repair"


def test_a_file_name_with_a_newline_is_told_to_name_its_source(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "a\nb.md"
    path.write_text("notes\n")
    out = cli("context", "publish", str(path), "--owner", "nl", expect=2)
    assert "a control character (U+000A)" in out.stderr and "--source NAME" in out.stderr
    cli("context", "publish", str(path), "--owner", "nl", "--source", "ab.md")


# --- 6. the file-input rule and the seed's preview


def test_a_utf16_file_is_refused_naming_it_and_its_byte_order_mark(
    cli: Cli, tmp_path: Path
) -> None:
    path = tmp_path / "u16.txt"
    path.write_bytes("notes\n".encode("utf-16"))  # FF FE first
    out = cli("context", "publish", str(path), "--owner", "u", expect=2)
    assert (
        "the context from 'u16.txt' is not UTF-8 text (it begins with a UTF-16 byte order "
        "mark (bytes FF FE))" in " ".join(out.stderr.split())
    ), out


def test_a_binary_context_has_no_silent_empty_preview(redis_url: str) -> None:
    with SwarmMemoryShard(specialization="bin", url=redis_url, swarm="bin") as shard:
        shard.swarm.publish_context(
            shard.agent_id, b"\x89PNG\xff", source="p.png", media_type="application/octet-stream"
        )
        with pytest.raises(ValidationError, match="not UTF-8 text"):
            shard.get_context_for_worker()
        shard.load_context("the notes\n", "notes.md")
        assert shard.get_context_for_worker()["context_preview"] == "the notes\n"
        shard.swarm.publish_context(shard.agent_id, "newer\n", source="n.md")
        assert shard.get_context_for_worker()["context_preview"] == "newer\n"
