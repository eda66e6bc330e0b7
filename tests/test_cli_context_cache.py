"""The CLI's disk cache of context versions (``SWARM_CONTEXT_CACHE``): a worker's repeated
``swarm context search/read/get``, a process each, reads an unchanged version from a file
checked against its hash, not from the network; and ``ContextCache``'s disk layer shared by
many processes at once. Bytes are Redis's own count (INFO stats total_net_output_bytes)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from blake3 import blake3

from redis_swarm import ContextCache, NotFound, Swarm, _digest, _hints
from redis_swarm._files import write_whole

from ._cli import Cli, subprocess_env

# ~2.4 MB in three 1 MiB chunks; "socket" on every 997th line.
LINES = 60_000
TEXT = "".join(
    f"line {i}: {'socket' if i % 997 == 0 else 'some words of text here'} {i * 7}\n"
    for i in range(1, LINES + 1)
)
VERSION = blake3(TEXT.encode()).hexdigest()
SIZE = len(TEXT.encode())
# A warm read moves the pointer (a manifest) and a connection's handshake: a few KB.
SMALL = 16_000


@pytest.fixture
def sent(redis_url: str) -> Iterator[Any]:
    """Bytes the server sent while a call ran: ``sent(fn)`` -> (fn's result, bytes)."""
    client = redis.Redis.from_url(redis_url)

    def measure(fn: Any) -> tuple[Any, int]:
        before = client.info("stats")["total_net_output_bytes"]
        result = fn()
        return result, client.info("stats")["total_net_output_bytes"] - before

    yield measure
    client.close()


@pytest.fixture
def published(redis_url: str) -> str:
    """TEXT published by another machine's publisher: no cache file of it here."""
    with Swarm(redis_url, swarm="test") as swarm:
        swarm.publish_context("shard-1", TEXT, source="big.md", compression="none")
    return VERSION


def _cache_dir() -> Path:
    return Path(os.environ["SWARM_HOME"]) / "context-cache"


def _slice(first: int, last: int) -> str:
    return "".join(TEXT.splitlines(keepends=True)[first - 1 : last])


def test_a_repeated_search_reads_the_file_not_the_network(
    cli: Cli, published: str, sent: Any
) -> None:
    search = ("context", "search", "shard-1", "socket", "--max-hits", "3", "--around", "0")
    first, cold = sent(lambda: cli(*search).stdout)
    assert first.splitlines() == ["997: line 997: socket 6979", "1994: line 1994: socket 13958",
                                  "2991: line 2991: socket 20937"]  # fmt: skip
    assert cold > SIZE
    # The cache is under the swarm home, one file named by the version: its bytes.
    assert (_cache_dir() / published).read_bytes() == TEXT.encode()
    again, warm = sent(lambda: cli(*search).stdout)
    assert again == first and warm < SMALL
    got, warm_get = sent(lambda: cli("context", "get", "shard-1").stdout)
    assert got == TEXT and warm_get < SMALL


def test_a_line_slice_fetches_the_version_once_then_reads_the_file(
    cli: Cli, published: str, sent: Any
) -> None:
    read = ("context", "read", "shard-1", "--lines", "40000:40010")
    first, cold = sent(lambda: cli(*read).stdout)
    assert first == _slice(40000, 40010)
    # The whole version (3 chunks), checked and cached, where the slice alone took 1 MiB
    # every time: a worker reads and searches the same version again and again.
    assert SIZE < cold < SIZE + SMALL
    assert (_cache_dir() / published).read_bytes() == TEXT.encode()
    for args in (read, ("context", "read", "shard-1", "--offset", "5", "--length", "7")):
        again, warm = sent(lambda args=args: cli(*args).stdout)
        assert warm < SMALL
    assert again == TEXT[5:12]
    hits, warm_search = sent(lambda: cli.json("context", "search", "shard-1", "socket"))
    assert len(hits["items"]) == 50 and warm_search < SMALL


def test_a_damaged_file_is_fetched_again_and_replaced(cli: Cli, published: str, sent: Any) -> None:
    cli("context", "search", "shard-1", "socket")
    path = _cache_dir() / published
    path.write_bytes(b"x" * SIZE)  # same size, other bytes
    out, cost = sent(lambda: cli("context", "read", "shard-1", "--lines", "997").stdout)
    assert out == _slice(997, 997) and cost > SIZE  # never served: fetched again
    assert path.read_bytes() == TEXT.encode()  # and the file is good again


def test_an_unusable_cache_never_fails_a_read(
    cli: Cli, published: str, tmp_path: Path, sent: Any
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = {"SWARM_CONTEXT_CACHE": str(blocker / "cache")}  # cannot be made
    for _ in range(2):  # nor is the whole version fetched for a cache that cannot keep it
        out, cost = sent(lambda: cli("context", "read", "shard-1", "--lines", "2:3", env=env))
        assert out.stdout == _slice(2, 3) and out.stderr.startswith("# shard-1 version")
        assert cost < SIZE / 2  # its chunk alone (it was the whole version, every time)
    assert cli("context", "get", "shard-1", env=env).stdout == TEXT


def test_a_slice_of_a_big_compressed_version_fetches_its_chunk_alone(
    cli: Cli, redis_url: str, sent: Any
) -> None:
    """A version small as stored but over WHOLE_FOR_SLICE_BYTES as text is not fetched whole
    for a slice: every later slice would read and hash all of its text from the file."""
    text = "".join(f"row {i}: the same words again and again\n" for i in range(300_000))
    assert len(text) > 9 * 1024 * 1024
    with Swarm(redis_url, swarm="test") as swarm:
        swarm.publish_context("big", text, source="big.md", compression="zstd")
    out, cost = sent(lambda: cli("context", "read", "big", "--lines", "150000").stdout)
    assert out == "row 149999: the same words again and again\n"
    assert cost < 200_000  # one compressed chunk, not every chunk
    assert not _cache_dir().exists() or not any(_cache_dir().iterdir())


def test_the_environment_moves_bounds_or_turns_it_off(
    cli: Cli, published: str, sent: Any, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "contexts"
    cli("context", "get", "shard-1", env={"SWARM_CONTEXT_CACHE": str(elsewhere)})
    assert [p.name for p in elsewhere.iterdir()] == [published]
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o700  # contexts may be confidential
    assert not _cache_dir().exists()
    # Off: every read moves the version again, and no folder is made.
    for value in ("0", "off"):
        for _ in range(2):
            _, cost = sent(lambda value=value: cli("context", "get", "shard-1",
                                                   env={"SWARM_CONTEXT_CACHE": value}))  # fmt: skip
            assert cost > SIZE
    assert not _cache_dir().exists()
    # Bounded: a version bigger than the bound is not written (nor fetched whole for a slice).
    small = {"SWARM_CONTEXT_CACHE_BYTES": "1M"}
    _, cost = sent(lambda: cli("context", "read", "shard-1", "--lines", "5", env=small))
    assert cost < SIZE / 2
    cli("context", "get", "shard-1", env=small)
    assert not _cache_dir().exists() or not any(_cache_dir().iterdir())
    bad = cli("context", "get", "shard-1", env={"SWARM_CONTEXT_CACHE_BYTES": "lots"}, expect=1)
    assert "SWARM_CONTEXT_CACHE_BYTES='lots' is not a size" in bad.stderr


def test_many_processes_share_the_cache_at_once(
    redis_url: str, published: str, tmp_path: Path
) -> None:
    env = subprocess_env(redis_url, "test", tmp_path / "bin")
    args = ["context", "search", "shard-1", "socket", "--max-hits", "2"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "redis_swarm", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(6)
    ]
    outs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 6, outs
    assert {out for out, _ in outs} == {outs[0][0]} and b"997: line 997" in outs[0][0]
    # One file, whole and good; no temporary file left behind.
    assert [p.name for p in _cache_dir().iterdir()] == [published]
    assert (_cache_dir() / published).read_bytes() == TEXT.encode()


def test_a_pruned_version_says_to_read_the_current_one(cli: Cli, redis_url: str) -> None:
    """In words a CLI user and a Python caller both follow: neither is told of the other's
    option (``--version``, ``version=``)."""
    assert _hints.CURRENT_VERSION == "read without a version to get the current one"
    for n in range(4):  # 3 versions are kept: the first is pruned
        cli("context", "publish", "-", "--owner", "shard-p", input=f"text {n}\n")
    pruned = blake3(b"text 0\n").hexdigest()[:12]
    with Swarm(redis_url, swarm=cli.swarm) as swarm, pytest.raises(NotFound) as exc:
        swarm.get_context("shard-p", version=blake3(b"text 0\n").hexdigest())
    said = str(exc.value)
    assert said.endswith(_hints.CURRENT_VERSION) and "--version" not in said, said
    for command in ("read", "search shard-p text", "get", "info"):
        args = command.split() if " " in command else [command, "shard-p"]
        out = cli("context", *args, "--version", pruned, expect=1)
        assert "is not kept" in out.stderr and "kept versions, newest first" in out.stderr
        assert out.stderr.rstrip().endswith(_hints.CURRENT_VERSION), out
    # An owner with no context at all: nothing current to point at.
    out = cli("context", "read", "nobody", "--version", pruned, expect=1)
    assert "no context was published by 'nobody'" in out.stderr
    assert _hints.CURRENT_VERSION not in out.stderr


# --- ContextCache's disk layer, shared by many processes


def _version(data: bytes) -> str:
    return blake3(data).hexdigest()


def test_temporary_files_of_dead_writers_are_removed(tmp_path: Path) -> None:
    cache = ContextCache(directory=tmp_path)
    dead = tmp_path / f".{_version(b'a')}.k2j4x_9q"
    live = tmp_path / f".{_version(b'b')}.p0z8m1aa"
    for path in (dead, live):
        path.write_bytes(b"half a versi")
    hours_ago = time.time() - 2 * 3600
    os.utime(dead, (hours_ago, hours_ago))
    cache.put(_version(b"c"), b"c")
    assert not dead.exists()  # left by a writer killed mid-write
    assert live.exists()  # being written now: left alone
    assert cache.get(_version(b"c")) == b"c"


def test_eviction_goes_on_past_a_file_another_process_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = ContextCache(directory=tmp_path, max_disk_bytes=2500)
    blobs = [bytes([n]) * 1000 for n in range(4)]
    for n, blob in enumerate(blobs[:3]):  # written by other processes, oldest first
        (tmp_path / _version(blob)).write_bytes(blob)
        os.utime(tmp_path / _version(blob), (1000 + n, 1000 + n))
    real_scandir = os.scandir

    def scandir_then_another_evicts(path: Any) -> Any:
        entries = list(real_scandir(path))
        os.unlink(tmp_path / _version(blobs[1]))  # another process's eviction, meanwhile
        return iter(entries)

    monkeypatch.setattr(os, "scandir", scandir_then_another_evicts)
    cache.put(_version(blobs[3]), blobs[3])
    monkeypatch.undo()
    # 3,000 bytes were left over the bound: the oldest went (the second was gone already).
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        _version(b) for b in (blobs[2], blobs[3])
    )


def test_a_damaged_file_replaced_meanwhile_by_a_good_one_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = b"the version's bytes\n"
    version = _version(data)
    path = tmp_path / version
    path.write_bytes(b"damaged bytes here!\n")
    real_names = _digest.names

    def names_while_another_writes(found: bytes, name: str) -> bool:
        write_whole(path, data)  # another process renames a good file over it meanwhile
        return real_names(found, name)

    monkeypatch.setattr(_digest, "names", names_while_another_writes)
    assert ContextCache(directory=tmp_path).get(version) is None  # the damaged read: a miss
    monkeypatch.undo()
    assert path.read_bytes() == data  # the good file stays
    assert ContextCache(directory=tmp_path).get(version) == data
