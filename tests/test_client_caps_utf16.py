"""The clients' caps on what they are handed were counted in Python's code points: Claude
Code and Gemini CLI are Node programs, whose string length is in UTF-16 code units, an emoji
two. Seven held tasks whose descriptions hold ``é🐝`` x 3000, ``--budget 2375``: a Stop's
``reason`` was 9,198 code points but 11,939 UTF-16 units, a SessionStart's
``additionalContext`` 12,214, over the 10,000 the clients keep (they cut the end: the report
command, a lease token). Now every cap counts UTF-16 units (the core's ``client_len``), and a
cut falls between two characters, never inside one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import Settings, Swarm
from redis_swarm._budget import Budget, clip, estimate_tokens
from redis_swarm._hooks import HookOptions, agent_for
from redis_swarm._hooks.formats import MAX_CHARS, Answer, render
from redis_swarm._lease_tokens import remember
from redis_swarm._models import Event, EventType, Message
from redis_swarm.mcp_server._budget import Spill
from redis_swarm.mcp_server._channel import BODY_CHARS, notices
from redis_swarm.mcp_server._render import fit

from ._cli import Cli
from .test_hooks import _strings

SESSION = "5b1e7c3a-2f4d-4a8e-9b61-0c7d2e1f6a00"
ME = agent_for({"session_id": SESSION}, HookOptions(client="claude"))
WIDE = "é🐝"  # one code unit, then two (a surrogate pair): three in all
CLIENTS_CAP = 10_000  # what Claude Code and Gemini CLI keep of a hook's output string


def units(text: str) -> int:
    """``text``'s length as JavaScript counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


@pytest.fixture
def swarm(redis_url: str, swarm_home: Path) -> Iterator[Swarm]:
    with Swarm(Settings.from_url(redis_url, swarm="test", home=swarm_home)) as handle:
        yield handle


def test_a_hooks_answer_stays_under_the_clients_cap_in_utf16_units(
    redis_url: str, swarm: Swarm, swarm_home: Path
) -> None:
    cli = Cli(redis_url, env={"SWARM_AGENT": "", "SWARM_HOME": str(swarm_home)})

    def hook(event: str, **extra: Any) -> dict[str, Any]:
        payload = {"session_id": SESSION, "hook_event_name": event, **extra}
        out = cli("hook", event, "--queue", "q", "--budget", "2375", input=json.dumps(payload))
        answer: dict[str, Any] = json.loads(out.stdout)
        for value in _strings(answer):
            assert units(value) <= MAX_CHARS < CLIENTS_CAP, (units(value), value[-300:])
        return answer

    hook("SessionStart", source="startup")  # (registers the agent)
    swarm.post_tasks([{"queue": "q", "description": WIDE * 3000} for _ in range(7)])
    held = []
    for _ in range(7):
        task = swarm.claim("q", worker=ME)
        assert task is not None and task.token is not None
        remember(swarm.settings, ME, task.id, task.token)
        held.append(task)

    reason = hook("Stop", stop_hook_active=False)["reason"]
    # the held tasks not shown whole are named with their tokens, whole; the cut is ours,
    # and says where the rest is
    assert "Shown here: 3 of the 7; and 4 more" in reason, reason[:600]
    assert all(f"{t.id} (lease token {t.token})" in reason for t in held[3:]), reason[:600]
    assert reason.endswith(" task show ID]"), reason[-300:]

    context = hook("SessionStart", source="resume")["hookSpecificOutput"]["additionalContext"]
    assert "Shown here: 3 of the 7; and 4 more" in context, context[:600]
    assert context.rstrip().endswith(f" task claim q --worker {ME})."), context[-300:]


def test_clip_counts_utf16_units_and_never_cuts_a_pair_in_half() -> None:
    text = WIDE * 400  # 1,200 units
    for most in range(100, 160):
        cut = clip(text, most, "the rest")
        kept, _, note = cut.partition(" …[clipped ")
        assert units(cut) <= most, (most, cut)
        assert text.startswith(kept) and note.endswith("the rest]"), (most, cut)
        assert units(cut) >= most - 2, (most, cut)  # (one pair may not fit: no more lost)
    # a hook's answer: each string within its cap
    out = json.loads(
        render(Answer(context=text * 10, block=text * 10, message=text), "Stop", "claude")
    )
    assert all(units(v) <= MAX_CHARS for v in _strings(out)), out
    assert units(out["systemMessage"]) <= 1000


def test_the_token_budget_counts_utf16_units() -> None:
    assert estimate_tokens("🐝" * 4) == 2
    budget = Budget(500)  # 2,000 characters
    assert budget.fits("🐝" * 1000) and not budget.fits("🐝" * 1001)


def test_a_tool_result_paged_by_the_budget_counts_utf16_units() -> None:
    budget = Budget(500)
    document = "\n".join(WIDE * 40 for _ in range(300))  # 36,299 units
    spill = Spill()
    first, header = spill.paginate(document, budget)
    pages = [first]
    while "next_cursor" in header:
        page, header = spill.page(header["next_cursor"])
        pages.append(page)
    assert "".join(pages) == document
    assert all(units(p) <= budget.body_chars for p in pages), [units(p) for p in pages]
    # records listed within a page's room, as clients count it
    records = [{"summary": WIDE * 100} for _ in range(50)]
    shown = fit(records, budget.body_chars)
    assert 400 + sum(units(json.dumps(r, ensure_ascii=False)) + 1 for r in shown) <= (
        budget.body_chars
    )
    (one,) = fit([{"summary": WIDE * 2000}], budget.body_chars)
    assert units(json.dumps(one, ensure_ascii=False, separators=(",", ":"))) <= budget.body_chars


def test_a_channel_notice_cuts_a_body_in_utf16_units_and_marks_a_cut_one_unread() -> None:
    body = "🐝" * (BODY_CHARS // 2 + 1)  # fewer code points than BODY_CHARS, more units
    message = Message(id="m-1", sender="lead", to="carol", kind="text", body=body)
    event = Event(
        id="1-1",
        type=EventType.MESSAGE_SENT,
        at=0,
        fields={"message": "m-1", "to": "carol", "from": "lead", "kind": "text"},
    )
    (notice,) = notices([event], "carol", (), bodies={"m-1": message})
    shown = notice.content.splitlines()[1].strip()
    assert units(shown) <= BODY_CHARS and "read_inbox shows all of it" in shown, shown[-200:]
    assert notice.shows == "" and "marked read" not in notice.content, notice
