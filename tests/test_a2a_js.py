"""``swarm a2a`` driven by the A2A JavaScript SDK (``@a2a-js/sdk`` from npm, through
tests/a2a_js_client.mjs): the card, a streamed task that a worker of ours completes, a
cancelled one, the list of them, and a wrong token refused; over both bindings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import Swarm

from ._a2a import A2AServer, start_a2a, stop, work_one
from ._servers import RedisServer, ServerFactory

REPO = Path(__file__).resolve().parent.parent
SCRIPT = Path(__file__).with_name("a2a_js_client.mjs")
# `make system-deps` installs the SDK into .npm-tools/ (scripts/system-deps.sh).
MODULES = Path(os.environ.get("A2A_NODE_MODULES", REPO / ".npm-tools" / "node_modules"))
SWARM, TOKEN, QUEUE = "a2a-js", "a2a-js-token-0123456789", "research"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (MODULES / "@a2a-js" / "sdk").is_dir(),
    reason="needs node and @a2a-js/sdk: run `make system-deps` (it needs npm)",
)


@pytest.fixture(scope="module")
def served(servers: ServerFactory) -> Iterator[tuple[RedisServer, A2AServer]]:
    redis = servers.start()
    a2a = start_a2a(redis.url, SWARM, TOKEN, "--queue", QUEUE)
    yield redis, a2a
    stop(a2a)
    redis.stop()


@pytest.mark.parametrize("binding", ["JSONRPC", "HTTP+JSON"])
def test_the_javascript_sdk_sends_streams_cancels_and_lists(
    served: tuple[RedisServer, A2AServer], binding: str
) -> None:
    redis, a2a = served
    env = {
        **os.environ,
        "A2A_URL": a2a.url,
        "A2A_TOKEN": TOKEN,
        "A2A_BINDING": binding,
        "A2A_NODE_MODULES": str(MODULES),
    }
    worker = Swarm(redis.url, swarm=SWARM)
    proc = subprocess.Popen(
        ["node", str(SCRIPT)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    lines: list[dict[str, Any]] = []
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = json.loads(raw)
            lines.append(line)
            if line["step"] == "posted":
                threading.Thread(target=work_one, args=(worker, QUEUE, "from the swarm")).start()
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        worker.close()
    assert proc.returncode == 0, (lines, err)
    steps = {line["step"]: line for line in lines if line["step"] != "event"}
    assert steps["card"] == {"step": "card", "skills": [QUEUE], "streaming": True}
    events = [(e["kind"], e.get("state") or e.get("text")) for e in lines if e["step"] == "event"]
    assert events == [
        ("task", "SUBMITTED"),
        ("status", "WORKING"),
        ("artifact", "from the swarm"),
        ("status", "COMPLETED"),
    ]
    streamed = next(e["id"] for e in lines if e.get("kind") == "task")
    cancelled = steps["cancelled"]
    assert cancelled["state"] == "CANCELED"
    assert sorted(map(tuple, steps["listed"]["tasks"])) == sorted(
        [(streamed, "COMPLETED"), (cancelled["id"], "CANCELED")]
    )
    assert steps["refused"]["refused"] is True
    assert "401" in steps["refused"]["message"], steps["refused"]
