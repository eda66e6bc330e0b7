"""A call refused because its task is gone (its record deleted) forgets the token kept for
it (``_settling``: ``tokens.outlived(None)``); a call with no token on a gone task says
NotFound (covered: test_cli_review_work_queue)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from redis_swarm import Settings
from redis_swarm import _lease_tokens as tokens
from redis_swarm._keys import Keys

from ._cli import Cli
from ._raw import raw_client

WORKER = "w-gone"


def _held(cli: Cli) -> dict[str, str]:
    home = Path(os.environ["SWARM_HOME"])
    return tokens.known(Settings.from_url(cli.url, swarm="test", home=home), WORKER)


def test_a_call_refused_for_a_gone_task_forgets_its_token(cli: Cli) -> None:
    cli("task", "post", "q", "x")
    task = cli.json("task", "claim", "q", "--worker", WORKER)
    assert _held(cli) == {task["id"]: task["token"]}
    with contextlib.closing(raw_client(cli.url)) as raw:
        assert raw.hdel(Keys("test").tasks, task["id"]) == 1
    out = cli("task", "release", task["id"], env={"SWARM_AGENT": WORKER}, expect=1)
    assert "does not exist" in out.stderr, out
    assert _held(cli) == {}
