"""``read_inbox`` of ``swarm mcp`` as an adversarial run found it, spoken to by a real client:

1. A message too long for one tool result came in pages, read (taken) at page 1: the server
   restarted before ``next_page``, its cursor was unknown and a new read_inbox returned
   nothing: the message was lost to MCP. Page 1 now names ``read_inbox(message_id=...)``,
   which shows it again from Redis, whole.
2. After a sweep removed the session's agent, read_inbox said "agent ... is not registered"
   until the next heartbeat registered it again (10-15 s): it registers again at once and
   reads.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from redis_swarm import Swarm

from .test_mcp_review_fixes import _call, _server


def _tool(proc: subprocess.Popen[str], rid: int, name: str, **args: Any) -> tuple[bool, list[str]]:
    result = _call(proc, rid, "tools/call", {"name": name, "arguments": args})
    return bool(result.get("isError")), [c["text"] for c in result["content"]]


def _whole(proc: subprocess.Popen[str], rid: int, texts: list[str]) -> str:
    """The document a paged result is split into: page 1 and every next_page after it."""
    header = json.loads(texts[0])
    pages = [texts[1]]
    while "next_cursor" in header:
        rid += 1
        error, texts = _tool(proc, rid, "next_page", cursor=header["next_cursor"])
        assert not error, texts
        header = json.loads(texts[0])
        pages.append(texts[1])
    return "".join(pages)


def test_a_paged_message_lost_with_its_cursor_is_shown_again_by_id(
    redis_url: str, swarm_home: Path
) -> None:
    body = "".join(f"line {i}: " + "x" * 90 + "\n" for i in range(600))  # 60 KB: in pages
    with Swarm(redis_url, swarm="test") as s:
        with _server(redis_url, swarm_home, "--name", "pg") as proc:
            assert not _tool(proc, 2, "swarm_status")[0]  # (registered)
            sent = s.send("pg", body, sender="snd")
            error, texts = _tool(proc, 3, "read_inbox", limit=100)
            assert not error, texts
            header = json.loads(texts[0])
            assert header["page"] == 1 and header["pages"] > 1 and "next_cursor" in header
            again = f"read_inbox(message_id={json.dumps(sent.id)})"
            assert json.dumps(again)[1:-1] in texts[1]  # (on page 1, inside its JSON)
        # the server restarted before next_page: the cursor is gone, the message read
        with _server(redis_url, swarm_home, "--name", "pg") as proc:
            error, texts = _tool(proc, 2, "next_page", cursor=header["next_cursor"])
            assert error and "read_inbox(message_id=ID)" in texts[0], texts
            error, texts = _tool(proc, 3, "read_inbox")
            assert not error and json.loads(texts[0])["count"] == 0, texts  # (read: taken)
            error, texts = _tool(proc, 4, "read_inbox", message_id=sent.id)
            assert not error, texts
            shown = json.loads(_whole(proc, 5, texts) if len(texts) > 1 else texts[0])
            assert [m["id"] for m in shown["messages"]] == [sent.id]
            assert shown["messages"][0]["body"] == body
            assert s.inbox("pg", ack=False) == []  # (marks nothing read: it was read)


def test_read_inbox_after_a_sweep_registers_again_and_reads(
    redis_url: str, swarm_home: Path
) -> None:
    server = _server(redis_url, swarm_home, "--name", "ms1")
    with Swarm(redis_url, swarm="test") as s, server as proc:
        assert not _tool(proc, 2, "swarm_status")[0]
        assert "ms1" in [a.id for a in s.agents()]
        s.deregister("ms1")  # (as a sweep removes it: the record and inbox gone)
        assert "ms1" not in [a.id for a in s.agents()]
        error, texts = _tool(proc, 3, "read_inbox")
        assert not error, texts
        assert json.loads(texts[0])["count"] == 0
        assert "ms1" in [a.id for a in s.agents()]
        s.send("ms1", "after the sweep", sender="snd")
        error, texts = _tool(proc, 4, "read_inbox")
        assert not error, texts
        assert [m["body"] for m in json.loads(texts[0])["messages"]] == ["after the sweep"]
