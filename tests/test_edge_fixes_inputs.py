"""Edges of the input a face takes: a blank context source (stored, though docs refuse a blank
label), errors missing their subject (an empty @ path, a file that is not UTF-8 unnamed, a
UTF-16 --jsonl read as bad JSON, a UTF-8 BOM in Python's words, --metadata @file refused as
JSON, a bad SWARM_AGENT blamed on no one, read_context_lines' internal end shown), one delay
limit for every face, and usage errors (a bad --url, a bad mcp --token) exiting 2."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from redis_swarm import Swarm, ValidationError
from redis_swarm._validate import MAX_DELAY_S
from redis_swarm.mcp_server import build_server

from ._cli import Cli
from .mcp_server._helpers import connect

# --- 4. a blank context source


def test_a_blank_context_source_is_refused_by_every_face(
    cli: Cli, redis_url: str, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("hello\n")
    out = cli("context", "publish", str(notes), "--owner", "o1", "--source", "   ", expect=2)
    assert "source '   ' is blank (only whitespace)" in out.stderr, out
    assert "name the file or URL the context came from, or give none" in out.stderr
    with Swarm(redis_url, swarm="test") as swarm:
        with pytest.raises(ValidationError, match="is blank"):
            swarm.publish_context("o1", "hello\n", source=" \u3000 ")

        async def body() -> None:
            async with connect(build_server(swarm, role="shard", name="o2")) as shard:
                said = await shard.error("publish_context", text="hi\n", source="  ")
                assert "is blank (only whitespace)" in said, said

        anyio.run(body)
        # `--source ""` is none given: the file's name, as before
        cli("context", "publish", str(notes), "--owner", "o1", "--source", "")
        assert swarm.context_info("o1").source == "notes.md"
        swarm.publish_context("o3", "hello\n", source="")  # (the core's none)


# --- 5. errors that name their subject


def test_an_empty_at_path_names_what_to_give(cli: Cli) -> None:
    out = cli("task", "post", "q3", "@", expect=2)
    assert "the file's path is empty: give the path of a file holding the task's description" in (
        out.stderr
    ), out
    assert " is a directory" not in out.stderr


def test_a_file_that_is_not_utf8_is_named(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok\xff\xfe")
    out = cli("task", "post", "q3", f"@{bad}", expect=2)
    assert f"{bad} is not UTF-8 text (byte 0xFF at offset 2 is not UTF-8): save it as UTF-8" in (
        out.stderr
    ), out
    out = cli("task", "post", "q3", "-", input=b"\xc3(", expect=2)
    assert "stdin is not UTF-8 text (byte 0xC3 at offset 0" in out.stderr, out


def test_jsonl_in_utf16_is_said_so_and_a_utf8_bom_is_taken(cli: Cli, tmp_path: Path) -> None:
    utf16 = tmp_path / "tasks.jsonl"
    utf16.write_bytes('{"description": "a"}\n'.encode("utf-16"))  # (FF FE first)
    out = cli("task", "post", "q", "--jsonl", str(utf16), expect=2)
    assert f"{utf16} is not UTF-8 text: it begins with a UTF-16 byte order mark (bytes FF FE)" in (
        out.stderr
    ), out
    assert "not valid JSON" not in out.stderr
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b'\xef\xbb\xbf{"description": "a"}\n{"description": "b"}\n')
    out = cli("task", "post", "q", "--jsonl", str(bom))
    assert out.stdout.count("posted t-") == 2 and "BOM" not in out.stderr, out
    data = tmp_path / "data.json"
    data.write_bytes(b'\xef\xbb\xbf{"k": 1}')
    assert cli.json("task", "post", "q", "d", "--data", f"@{data}")["data"] == {"k": 1}


def test_metadata_takes_a_file(cli: Cli, tmp_path: Path) -> None:
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"team": "blue"}))
    agent = cli.json("agents", "register", "a1", "--role", "worker", "--metadata", f"@{meta}")
    assert agent["metadata"] == {"team": "blue"}
    out = cli("agents", "register", "a2", "--role", "worker", "--metadata", "[1]", expect=2)
    assert "must be a JSON object" in out.stderr


def test_a_bad_swarm_agent_is_blamed_on_swarm_agent(cli: Cli) -> None:
    out = cli("task", "claim", "q1", env={"SWARM_AGENT": "a b"}, expect=2)
    assert "SWARM_AGENT 'a b' contains ' '" in out.stderr, out
    assert "set SWARM_AGENT to your agent's name (or unset it)" in out.stderr
    # given on the command line, the option wins and SWARM_AGENT is not read
    cli("task", "claim", "q1", "--worker", "w1", env={"SWARM_AGENT": "a b"}, expect=3)


def test_read_context_lines_past_the_end_shows_no_internal_bound(redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        swarm.publish_context("lib", "one\ntwo\n", source="t")

        async def body() -> None:
            async with connect(build_server(swarm, role="worker", name="w1")) as worker:
                said = await worker.error("read_context_lines", owner="lib", start=10**15)
                assert "2147483647" not in said, said
                assert "line 1000000000000000 is past the end" in said, said
                assert "the context of 'lib' has 2 lines" in said

        anyio.run(body)


# --- 6. one delay limit; usage errors exit 2


def test_the_delay_limit_is_the_cores_on_every_face(cli: Cli, redis_url: str) -> None:
    over = MAX_DELAY_S + 1
    top = cli.json("task", "post", "q", "later", "--delay", f"{MAX_DELAY_S:.0f}")
    assert top["status"] == "delayed"
    out = cli("task", "post", "q", "later", "--delay", f"{over:.0f}", expect=2)
    assert "from 0 to 3,153,600,000" in out.stderr, out
    line = json.dumps({"description": "d", "delay_s": over}) + "\n"
    out = cli("task", "post", "q", "--jsonl", "-", input=line, expect=2)
    assert "delay_s" in out.stderr, out
    with Swarm(redis_url, swarm="test") as swarm, pytest.raises(ValidationError):
        swarm.post_task("q", "d", delay_s=over)


def test_a_bad_url_and_a_bad_mcp_token_exit_2(cli: Cli) -> None:
    out = cli("--url", "http://x", "status", expect=2)
    assert out.stderr.startswith("error: unsupported URL scheme 'http'"), out
    out = cli("mcp", "--token", "", expect=2)
    assert "--token (or SWARM_MCP_TOKEN) is empty" in out.stderr, out
    out = cli("mcp", "--token", "abcdefghijklmnopqrstuvwx", expect=2)
    assert "--token is for --transport http" in out.stderr, out
