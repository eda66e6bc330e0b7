"""A worker user may post a task, but not to a pass (docs/security.md): the refusal says what
was refused and who posts passes, not Redis's text about the keys of a script."""

from __future__ import annotations

from typing import Any

import pytest

from redis_swarm import PermissionDenied
from redis_swarm._acl import AclUser

from ._cli import Cli
from ._servers import RedisServer
from .test_acl import SWARM, acl_server, as_user, users  # noqa: F401 (test_acl's fixtures)


def _cli(server: RedisServer, spec: AclUser) -> Cli:
    return Cli(f"redis://{spec.user}:{spec.password}@127.0.0.1:{server.port}", swarm=SWARM)


def test_a_worker_posting_a_pass_is_told_who_posts_passes(
    acl_server: RedisServer,  # noqa: F811
    users: dict[str, AclUser],  # noqa: F811
) -> None:
    worker = _cli(acl_server, users["worker"])
    out = worker("task", "post", "Q", "x", "--pass", "P9", expect=1)
    message = " ".join(out.stderr.split())
    assert f"the Redis user '{users['worker'].user}' may not post a task to a pass" in message
    assert "passes are posted by a shard, coordinator or admin user" in message
    assert "swarm acl --role shard" in message
    assert "user executing the script" not in message and "@user_function" not in message
    assert str(users["worker"].password) not in message  # (the URL is masked)
    worker("task", "post", "Q", "x")  # without the pass: allowed
    shard = _cli(acl_server, users["shard"])
    shard("task", "post", "Q", "x", "--pass", "P9")  # a shard posts passes


def test_the_python_api_says_the_same(as_user: Any) -> None:  # noqa: F811
    worker = as_user("worker")
    with pytest.raises(PermissionDenied, match="passes are posted by a shard"):
        worker.post_task("Q", "x", pass_name="P9")
    assert worker.post_task("Q", "x").pass_name is None
