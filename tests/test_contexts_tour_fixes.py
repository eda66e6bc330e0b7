"""A user tour of contexts, its catches (real redis-server):

1. Damaged chunk bytes could not be repaired: a publish reused every stored chunk, so the
   fix the error named did nothing and the damage reached every owner publishing the same
   text. ``publish --repair`` sends every chunk again, the error names that command, and a
   chunk of the wrong length is sent again by any publish.
2. A publish a ``gc --grace 0`` gave up blamed its own slowness past the default grace.
3. A plan's context file that is not UTF-8 passed ``pipeline check`` and crashed the run.
4. read, search and MCP pages turned bytes that are not UTF-8 into U+FFFD silently.
5. The whole version's hash failing was reported as a "chunk" named by the version hash.
6. A pruned MCP cursor said to leave out a version the caller never passed.
7. ``context get -o`` into a missing directory fetched the whole context, then printed Errno.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from redis_swarm import Conflict, Limits, Swarm, ValidationError
from redis_swarm._errors import SwarmError
from redis_swarm._ops import contexts as context_ops
from redis_swarm._pipeline import load_plan
from redis_swarm._pipeline.run import Pipeline
from redis_swarm.mcp_server import build_server

from ._cli import Cli
from ._handles import FakeClock
from ._raw import raw_client
from .mcp_server._helpers import connect
from .test_pipeline_plan import EXAMPLE, claude_on_path, write

TEXT = "".join(f"line {i}: {'alpha' if i % 10 == 0 else 'beta'}\n" for i in range(1, 3001))
COLD = {"SWARM_CONTEXT_CACHE": "off"}


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def _cold(url: str) -> Swarm:
    """A reader with nothing cached that reads the chunks (no copy of the version whole)."""
    return Swarm(url, swarm="test", limits=Limits(context_copy_bytes=0))


def _chunk_keys(url: str) -> list[bytes]:
    with raw_client(url) as r:
        return sorted(r.scan_iter("rs:chunk:*"))


def _damage(url: str, change: Any) -> None:
    """``change`` applied to the stored bytes of the first chunk (an HSET of its data)."""
    key = _chunk_keys(url)[0]
    with raw_client(url) as r:
        r.hset(key, "data", change(r.hget(key, "data")))


def _flip_a_byte(data: bytes) -> bytes:
    return data[:10] + bytes([data[10] ^ 0x01]) + data[11:]


# --- 1. repair


def test_publish_repair_overwrites_damaged_chunks(cli: Cli, redis_url: str, tmp_path: Path) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text(TEXT)
    cli("context", "publish", str(notes), "--owner", "shard-a", "--compression", "none")
    _damage(redis_url, _flip_a_byte)
    refused = cli("context", "read", "shard-a", "--lines", "1:3000", expect=None, env=COLD)
    assert refused.code != 0 and "damaged data" in refused.stderr
    # The message names the command that repairs it, with the owner and the file.
    assert "swarm context publish notes.md --owner shard-a --repair" in refused.stderr
    assert "unchanged" in cli("context", "publish", str(notes), "--owner", "shard-a").stdout
    repaired = cli("context", "publish", str(notes), "--owner", "shard-a", "--repair").stdout
    assert repaired.startswith("published (every chunk sent again) shard-a version")
    assert cli("context", "get", "shard-a", env=COLD).stdout == TEXT
    assert cli("context", "read", "shard-a", "--lines", "1:3000", env=COLD).stdout == TEXT
    # The chunks are shared by content: another owner's publish of the text reads them whole.
    cli("context", "publish", str(notes), "--owner", "shard-b", "--compression", "none")
    assert cli("context", "get", "shard-b", env=COLD).stdout == TEXT


def test_repair_of_another_owners_damaged_chunks_through_the_api(
    swarm: Swarm, redis_url: str
) -> None:
    swarm.publish_context("a", TEXT, source="a.md", compression="none")
    _damage(redis_url, _flip_a_byte)
    # Another owner publishing the same text reuses the damaged chunk: refused on read...
    swarm.publish_context("b", TEXT, source="b.md", compression="none")
    with _cold(redis_url) as cold, pytest.raises(SwarmError, match="damaged"):
        cold.get_context("b")
    # ... until a publish with repair sends every chunk again: every owner's reads are whole.
    info = swarm.publish_context("b", TEXT, source="b.md", compression="none", repair=True)
    assert info.version == swarm.context_info("a").version
    with _cold(redis_url) as cold:
        assert cold.get_context("a") == TEXT and cold.get_context("b") == TEXT


def test_an_mcp_shard_repairs_what_an_mcp_worker_found_damaged(
    swarm: Swarm, redis_url: str
) -> None:
    """The refusal says how to repair over MCP too, and publish_context takes ``repair``."""
    swarm.publish_context("shard-m", TEXT, source="mcp:shard-m", compression="none")
    _damage(redis_url, _flip_a_byte)

    async def body() -> None:
        with _cold(redis_url) as cold:
            async with connect(build_server(cold, role="worker")) as worker:
                said = await worker.error("get_context", owner="shard-m")
                assert "damaged data" in said and "publish_context with repair=true" in said
        async with connect(build_server(swarm, role="shard", name="shard-m")) as shard:
            # A plain publish reuses the damaged chunk; repair sends it again.
            await shard("publish_context", text=TEXT, source="mcp:shard-m")
            with _cold(redis_url) as cold, pytest.raises(SwarmError, match="damaged"):
                cold.get_context("shard-m")
            await shard("publish_context", text=TEXT, source="mcp:shard-m", repair=True)
        with _cold(redis_url) as cold:
            assert cold.get_context("shard-m") == TEXT

    anyio.run(body)


def test_a_chunk_cut_short_is_sent_again_by_any_publish(swarm: Swarm, redis_url: str) -> None:
    """chunk_acquire trusts a stored chunk only when it is as long as the one sent."""
    swarm.publish_context("a", TEXT, source="a.md", compression="none")
    _damage(redis_url, lambda data: data[:-5])
    swarm.publish_context("b", TEXT, source="b.md", compression="none")  # no repair
    with _cold(redis_url) as cold:
        assert cold.get_context("b") == TEXT and cold.get_context("a") == TEXT


# --- 2. a publish a gc with a short grace gave up


def test_a_publish_a_short_grace_gc_gave_up_says_so(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    flip = context_ops._flip

    def gc_first(*args: Any, **kwargs: Any) -> Any:
        with Swarm(redis_url, swarm="test", clock=clock) as other:
            assert other.gc(grace_s=0).publishes_given_up == 1
        return (yield from flip(*args, **kwargs))

    monkeypatch.setattr(context_ops, "_flip", gc_first)
    with Swarm(redis_url, swarm="test", clock=clock) as swarm, pytest.raises(Conflict) as info:
        swarm.publish_context("o", TEXT, source="a")
    said = str(info.value)
    assert "a gc with a grace shorter than this publish" in said
    assert "while it was in flight" in said and "once no such gc runs" in said
    assert "took longer than the gc grace period" not in said


# --- 3. a plan's context file that is not UTF-8


def test_pipeline_check_refuses_a_context_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE)
    (tmp_path / "docs" / "sub" / "b.md").write_bytes(b"beta\n\xff\xfe latin\n")
    line = next(i for i, text in enumerate(EXAMPLE.splitlines(), 1) if "paths =" in text)
    with pytest.raises(ValidationError) as info:
        load_plan(path)
    assert (
        f"plan.toml:{line}: contexts[1].paths: docs/sub/b.md is not UTF-8 text (byte 5 is not)"
        in str(info.value)
    )
    out = claude_on_path(tmp_path)("pipeline", "check", str(path), expect=2)
    assert "docs/sub/b.md is not UTF-8 text" in out.stderr and "Traceback" not in out.stderr


def test_a_run_whose_context_file_stopped_being_utf8_is_refused(
    swarm: Swarm, tmp_path: Path
) -> None:
    path = write(tmp_path, EXAMPLE)
    plan = load_plan(path)  # checked while the file was text; changed since
    (tmp_path / "notes.txt").write_bytes(b"\xffnotes\n")
    with pytest.raises(ValidationError, match=r"notes.txt is not UTF-8 text \(byte 0 is not\)"):
        Pipeline(swarm, plan).publish_contexts()


# --- 4. contexts that are not UTF-8 are refused as text by every reader


BLOB = b"ok line\n" + b"\xff\xfe bad\n" + b"more\n"


def test_every_text_reader_refuses_a_context_that_is_not_utf8(
    swarm: Swarm, cli: Cli, redis_url: str
) -> None:
    # (Published as bytes: as text/markdown it would be refused, tests/test_walkthrough3_fixes.py)
    swarm.publish_context("blob", BLOB, source="b.bin", media_type="application/octet-stream")
    hint = "swarm context get blob -o FILE"
    with _cold(redis_url) as cold:
        for read in (
            lambda: cold.read_context("blob"),
            lambda: cold.read_context("blob", lines=(2, 2)),
            lambda: cold.read_context("blob", offset=6, length=6),
            lambda: cold.search_context("blob", "more"),
            lambda: cold.get_context("blob"),
        ):
            with pytest.raises(ValidationError, match="not UTF-8 text") as info:
                read()
            assert hint in str(info.value)
        # A part that is text reads as ever; the bytes are exact.
        assert cold.read_context("blob", lines=(3, 3)).text == "more\n"
        assert cold.get_context_bytes("blob") == BLOB
    out = cli("context", "read", "blob", expect=None)
    assert out.code != 0 and hint in out.stderr and "\ufffd" not in out.stdout

    async def body() -> None:
        async with connect(build_server(swarm, role="worker")) as worker:
            for tool, args in (
                ("search_context", {"owner": "blob", "pattern": "more"}),
                ("read_context_lines", {"owner": "blob", "start": 1}),
            ):
                message = await worker.error(tool, **args)
                assert "not UTF-8 text" in message, (tool, message)
            # (get_context says what it is and how to write its bytes to a file, as the
            # prompts do: tests/test_mcp_walk5_fixes.py)
            head, _ = await worker("get_context", owner="blob")
            assert head["media_type"] == "application/octet-stream", head
            assert "swarm context get blob" in str(head), head

    anyio.run(body)


# --- 5. the whole version's check


def test_the_whole_versions_hash_failing_is_not_called_a_chunk(
    swarm: Swarm, redis_url: str
) -> None:
    version = swarm.publish_context("a", TEXT, source="a.md", compression="none").version
    _damage(redis_url, _flip_a_byte)
    with _cold(redis_url) as cold, pytest.raises(SwarmError) as info:
        cold.get_context("a")
    said = str(info.value)
    assert f"chunk {version[:16]}" not in said
    assert f"the bytes of context 'a' version {version[:16]} do not hash to the version" in said
    assert "swarm context publish a.md --owner a --repair" in said


# --- 6. a pruned MCP cursor


def test_a_pruned_cursor_says_to_start_again_without_it(redis_url: str) -> None:
    text = "".join(f"needle {i}: " + "x" * 60 + "\n" for i in range(400))
    with Swarm(redis_url, swarm="test", limits=Limits(context_versions_kept=3)) as core:
        core.publish_context("ctx", text, source="t")

        async def body() -> None:
            async with connect(build_server(core, role="worker", budget_tokens=600)) as worker:
                worker.max_chars = 600 * 4
                page, _ = await worker("get_context", owner="ctx")
                hits, _ = await worker("search_context", owner="ctx", pattern="needle")
                for n in range(3):  # the cursors' version pruned (3 kept)
                    newer = text + f"{n}\n"
                    await anyio.to_thread.run_sync(
                        functools.partial(core.publish_context, "ctx", newer, source="t")
                    )
                for tool, cursor, again in (
                    ("get_context", page["next_cursor"], "call get_context again without"),
                    ("search_context", hits["next_cursor"], "call search_context with the"),
                ):
                    message = await worker.error(tool, cursor=cursor)
                    assert "is not kept" in message and again in message, message
                    assert "leave version out" not in message

        anyio.run(body)


# --- 7. context get -o into a directory that is not there


def test_get_output_into_a_missing_directory_is_refused_before_the_fetch(
    cli: Cli, tmp_path: Path
) -> None:
    cli("context", "publish", "-", "--owner", "a", input=TEXT)
    target = tmp_path / "nonexist" / "dir" / "f"
    out = cli("context", "get", "a", "-o", str(target), expect=2)
    assert f"the directory {target.parent} does not exist" in out.stderr
    assert "mkdir -p" in out.stderr and "Errno" not in out.stderr
    # Before anything is fetched: an owner with no context is not even looked up.
    out = cli("context", "get", "nobody", "-o", str(target), expect=2)
    assert "does not exist" in out.stderr and "no context" not in out.stderr
    assert not target.parent.exists()
