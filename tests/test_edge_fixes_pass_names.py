"""A pass name written now holds no control character (a tab, a line break, ESC) nor a
bidirectional override: ``swarm status`` showed ``p\\n2`` and ``p 2`` as two identical rows, and
a hint naming it could not be copied. Refused at every face (the core's check_label ``new``,
check_printable's rule); a name stored earlier stays reachable."""

from __future__ import annotations

import uuid
from typing import Any

import anyio
import httpx
import pytest

from redis_swarm import Swarm, ValidationError
from redis_swarm._keys import Keys, label_id
from redis_swarm._validate import check_label
from redis_swarm.mcp_server import build_server

from ._a2a import A2AServer
from ._cli import Cli
from ._raw import raw_client
from .mcp_server._helpers import connect

BAD = [
    ("p\n2", "a control character (U+000A) at position 2"),
    ("a\tb", "a control character (U+0009) at position 2"),
    ("x\x1b[31mred", "a control character (U+001B) at position 2"),
    ("a\u202eb", "a bidirectional override (U+202E) at position 2"),
    ("a\x85b", "a control character (U+0085) at position 2"),
]


@pytest.mark.parametrize(("name", "said"), BAD)
def test_a_new_pass_name_with_a_control_character_is_refused(name: str, said: str) -> None:
    with pytest.raises(ValidationError) as refused:
        check_label("pass name", name, new=True)
    assert str(refused.value) == f"the pass name holds {said}: use printable text on one line"
    assert check_label("pass name", name) == name  # a look-up may name it


def test_every_face_refuses_it(redis_url: str, cli: Cli) -> None:
    out = cli("task", "post", "q", "work", "--pass", "p\n2", expect=2)
    assert "pass name holds a control character (U+000A)" in out.stderr, out
    assert "use printable text on one line" in out.stderr
    line = '{"description": "d", "pass_name": "a\\tb"}\n'
    out = cli("task", "post", "q", "--jsonl", "-", input=line, expect=2)
    assert "control character (U+0009)" in out.stderr, out
    cli("task", "post", "q", "work", "--pass", "p 2")  # (a space inside is fine)
    core = Swarm(redis_url, swarm="test")

    async def body() -> None:
        async with connect(build_server(core, role="all", name="planner")) as agent:
            said = await agent.error("post_task", queue="q", description="d", pass_name="a\u202eb")
            assert "bidirectional override (U+202E)" in said, said

    try:
        anyio.run(body)
        with pytest.raises(ValidationError, match="control character"):
            core.post_tasks([{"queue": "q", "description": "d", "pass_name": "x\x1bq"}])
        assert core.pass_stats("p 2")
        # A pass stored under such a name before the rule stays reachable.
        old = "old\tpass"
        with raw_client(redis_url) as raw:  # (as an older version's post left it)
            pid = label_id(old)
            raw.hset(Keys("test").pass_counts, mapping={pid: old, f"{pid}|completed": 2})
        assert core.pass_stats(old).get("completed") == 2
        core.register("shard", name="shard-1")
        assert core.synthesize("shard-1", old, "nothing", [], cites_none=True).pass_name == old
    finally:
        core.close()
    out = cli("task", "wait", "--pass", old, "--timeout", "1")
    assert "control character" not in out.stderr


def test_a2a_context_id_is_refused_in_its_words(a2a: A2AServer) -> None:
    message: dict[str, Any] = {
        "messageId": str(uuid.uuid4()), "role": "ROLE_USER", "parts": [{"text": "look"}],
        "contextId": "ctx\u202e1",
    }  # fmt: skip
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
    sent = {**a2a.headers, "A2A-Version": "1.0"}
    answer = httpx.post(a2a.url + "/", json=body, headers=sent, timeout=20).json()
    said = answer["error"]["message"]
    assert "contextId holds a bidirectional override (U+202E)" in said, said


def test_a_synthesis_or_request_under_a_new_such_name_is_refused(redis_url: str, cli: Cli) -> None:
    """The pass name a synthesis or a synthesis request writes follows the same rule (it
    stored ``p\\n2`` as a pass of its own), save for a pass stored under it before."""
    with Swarm(redis_url, swarm="test") as core:
        core.register("shard", name="shard-1")
        with pytest.raises(ValidationError, match=r"control character \(U\+000A\)"):
            core.synthesize("shard-1", "p\n2", "nothing", [], cites_none=True)
        with pytest.raises(ValidationError, match=r"bidirectional override \(U\+202E\)"):
            core.request_synthesis("shard-1", "a\u202eb", "sum it up")
        assert not core.syntheses().items
    out = cli("synth", "create", "--pass", "p\n2", "--shard", "shard-1", "--all-findings",
              "--text", "x", expect=2)  # fmt: skip
    assert "control character (U+000A)" in out.stderr, out
