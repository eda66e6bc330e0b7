"""A publish that changes nothing says so, and is still a publish: a user who may not publish
(a worker) is refused it.

Publishing the version that is current already (the same content, source and media type)
writes nothing. Its first step read the pointer with two HGETs, which a worker may send (it
reads contexts), so a worker's republish of the current content was told it worked (rc 0):
the ACL refuses writes, and there was none to refuse. That step is now a shard's function
(``context_lookup``), so the worker is refused at once; and the result says what the publish
did (``ContextInfo.changed``), where the CLI read the pointer once more to tell."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import AsyncSwarm, PermissionDenied, Settings, Swarm, apply_role

from ._cli import Cli
from ._servers import RedisServer, ServerFactory, system_redis
from .conftest import AsyncAsSync, as_swarm

SWARM = "publish-noop"
OWNER = "shard-1"
NOTES = "# notes\n\nwhat the shard knows\n"


def test_a_republish_says_it_changed_nothing(swarm: Swarm) -> None:
    first = swarm.publish_context(OWNER, NOTES, source="notes.md")
    assert first.changed
    again = swarm.publish_context(OWNER, NOTES, source="notes.md")
    assert not again.changed
    assert (again.version, again.created_at) == (first.version, first.created_at)
    assert again.to_dict()["changed"] is False
    # what is read back is the version as stored: no publish said anything of it
    assert swarm.context_info(OWNER).changed
    assert swarm.context_info(OWNER) == first
    # another source is a new manifest of the same version: written, so changed
    relabelled = swarm.publish_context(OWNER, NOTES, source="notes-v2.md")
    assert relabelled.changed and relabelled.version == first.version
    newer = swarm.publish_context(OWNER, NOTES + "more\n", source="notes-v2.md")
    assert newer.changed and newer.version != first.version
    # a kept older version made current again (no chunks sent) changed the pointer
    back = swarm.publish_context(OWNER, NOTES, source="notes-v2.md")
    assert back.changed and back.version == first.version
    assert swarm.context_info(OWNER).created_at == back.created_at


@pytest.fixture(scope="module")
def server(servers: ServerFactory) -> Iterator[RedisServer]:
    """A private Redis >= 7 (ACL selectors, Functions): its users leak nowhere."""
    started = servers.start(binary=system_redis())
    yield started
    started.stop()


@pytest.fixture(scope="module")
def worker_url(server: RedisServer) -> str:
    made = apply_role(Settings.from_url(server.url, swarm=SWARM), "worker", "noop-worker")
    return f"redis://noop-worker:{made.user.password}@127.0.0.1:{server.port}"


@pytest.fixture(params=["sync", "async"])
def worker(request: pytest.FixtureRequest, worker_url: str) -> Iterator[Swarm]:
    if request.param == "sync":
        handle = Swarm(worker_url, swarm=SWARM)
        yield handle
        handle.close()
    else:
        adapter = AsyncAsSync(lambda: AsyncSwarm(worker_url, swarm=SWARM))
        yield as_swarm(adapter)
        adapter.close()


def test_a_worker_is_refused_a_republish_of_the_current_version(
    server: RedisServer, worker: Swarm
) -> None:
    with Swarm(server.url, swarm=SWARM) as shard:
        published = shard.publish_context(OWNER, NOTES, source="notes.md")
        with pytest.raises(PermissionDenied, match="may not run this operation's function"):
            worker.publish_context(OWNER, NOTES, source="notes.md")
        with pytest.raises(PermissionDenied):  # (a change was refused before, as now)
            worker.publish_context(OWNER, NOTES + "changed\n", source="notes.md")
        now = shard.context_info(OWNER)
        assert (now.version, now.created_at) == (published.version, published.created_at)
        # what a worker may do with contexts, it still may
        assert worker.get_context(OWNER) == NOTES


def test_the_cli_says_unchanged_from_the_publish_and_refuses_a_worker(
    server: RedisServer, worker_url: str, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text(NOTES)
    shard = Cli(server.url, swarm=SWARM)
    first = shard("context", "publish", str(notes), "--owner", "cli-shard", "--json").json()
    assert first["changed"] is True
    said = shard("context", "publish", str(notes), "--owner", "cli-shard").stdout
    shown = first["version"][:12]  # (people see its first 12 digits)
    assert said.startswith(f"unchanged: cli-shard is at version {shown} already"), said
    again = shard("context", "publish", str(notes), "--owner", "cli-shard", "--json").json()
    assert again == {**first, "changed": False}
    refused = Cli(worker_url, swarm=SWARM)(
        "context", "publish", str(notes), "--owner", "cli-shard", expect=None
    )
    assert refused.code == 1 and refused.stdout == "", refused
    assert "the Redis user 'noop-worker' may not run this operation's function" in (
        refused.stderr
    ), refused
    assert "a shard or coordinator user may" in refused.stderr, refused
