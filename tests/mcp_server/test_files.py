"""publish_context(path=...) reads only regular files under the server's root (issue 15.5):
the /proc/self/environ leak, a symlink out of the root, a FIFO and a device are refused, and
over HTTP reading files is off unless the operator allows it."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from redis_swarm import Swarm
from redis_swarm.mcp_server import build_server

from ._helpers import connect


def _publish_error(core: Swarm, root: Path, path: str, **server: object) -> str:
    async def body() -> str:
        async with connect(build_server(core, role="shard", root=root, **server)) as shard:  # type: ignore[arg-type]
            return await shard.error("publish_context", path=path, owner="leak")

    return anyio.run(body)


def _published(core: Swarm, root: Path, path: str) -> dict[str, object]:
    async def body() -> dict[str, object]:
        async with connect(build_server(core, role="shard", root=root)) as shard:
            head, _ = await shard("publish_context", path=path, owner="doc")
            return head

    return anyio.run(body)


def test_the_environment_of_the_server_cannot_be_published(core: Swarm, tmp_path: Path) -> None:
    for path in ("/proc/self/environ", "/proc/self/cmdline", "../../../../proc/self/environ"):
        message = _publish_error(core, tmp_path, path)
        assert "outside the directory" in message or "kernel file" in message, message
    # Even with the whole machine as the root, kernel files are not documents.
    message = _publish_error(core, Path("/"), "/proc/self/environ")
    assert "kernel file" in message
    assert core.contexts() == []
    assert os.environ.get("SWARM_URL", "no-such-value") not in repr(core.contexts())


def test_links_may_not_lead_out_of_the_root(core: Swarm, tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "secret"
    root.mkdir()
    outside.mkdir()
    (outside / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    (outside / "key.pem").chmod(0o600)
    (root / "innocent.md").symlink_to(outside / "key.pem")
    (root / "sub").symlink_to(outside, target_is_directory=True)
    for path in ("innocent.md", "sub/key.pem", str(root / "sub" / "key.pem"), "../secret/key.pem"):
        message = _publish_error(core, root, path)
        assert "outside the directory" in message and str(root) in message, message
    assert core.contexts() == []
    # A link that stays inside the root is fine, and so is a plain file.
    (root / "notes.md").write_text("one\ntwo\n")
    (root / "latest.md").symlink_to(root / "notes.md")
    assert _published(core, root, "latest.md")["total_lines"] == 2
    assert _published(core, root, str(root / "notes.md"))["total_lines"] == 2


def test_special_files_are_refused(core: Swarm, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")  # opening it for reading would block a naive reader forever
    (tmp_path / "dir").mkdir()
    for path in ("fifo", "dir"):
        message = _publish_error(core, tmp_path, path)
        assert "not a regular file" in message, message
    message = _publish_error(core, Path("/"), "/dev/zero")
    assert "kernel file" in message


def test_http_servers_read_no_files_unless_allowed(core: Swarm, tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("hello\n")
    message = _publish_error(core, tmp_path, "notes.md", transport="http")
    assert "does not read files over HTTP" in message and "--allow-paths" in message

    async def body() -> None:
        server = build_server(core, role="shard", root=tmp_path, transport="http", allow_paths=True)
        async with connect(server) as shard:
            head, _ = await shard("publish_context", path="notes.md")
            assert head["total_lines"] == 1

    anyio.run(body)


@pytest.mark.parametrize("size", [0, 1])
def test_a_file_larger_than_a_context_is_refused_before_it_is_read(
    core: Swarm, tmp_path: Path, size: int
) -> None:
    limit = core.limits.max_context_bytes
    big = tmp_path / "big.bin"
    with open(big, "wb") as out:
        out.truncate(limit + size)
    if size:
        assert "split it" in _publish_error(core, tmp_path, "big.bin")
    else:
        assert _published(core, tmp_path, "big.bin")["size_bytes"] == limit
