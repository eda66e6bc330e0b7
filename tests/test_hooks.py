"""``swarm hook EVENT`` (issue 19.2): each event fed the JSON the clients document, in each
state (lease held or not, work or none, messages or none, stop_hook_active or not), answered
in each client's format; a loop-mode worker driven only by Stop events completes 20 tasks."""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # (the MCP SDK depends on it)
import pytest
from click.testing import CliRunner

from redis_swarm import Inbox, Settings, Swarm, Task, TaskStatus
from redis_swarm._budget import Budget, client_len, estimate_tokens
from redis_swarm._hooks import CLIENTS, HookOptions, agent_for, handle
from redis_swarm._hooks.events import DEFAULT_HOOK_BUDGET_TOKENS, subagent_for
from redis_swarm._hooks.formats import EVENTS, client_event
from redis_swarm._lease_tokens import remember
from redis_swarm.cli import main

from ._cli import Cli

SESSION = "3f2a9c1e-0d4b-4e8a-9a51-5b7c2d1e6f00"

# The Codex hook output schemas (codex-rs/hooks/schema/generated/*.command.output.schema.json),
# restated: no other top-level keys, "block" the only decision, a reason when blocking, the
# event's own name in hookSpecificOutput. (Compared with the published session-start, stop,
# user-prompt-submit and pre-compact files, openai/codex 6fff509; the real Codex also takes
# our SessionStart answer: tests/mcp_server/test_hooks_clients.py.)
_COMMON = {
    "continue": {"type": "boolean"},
    "stopReason": {"type": ["string", "null"]},
    "suppressOutput": {"type": "boolean"},
    "systemMessage": {"type": ["string", "null"]},
}
_DECISION = {
    "decision": {"enum": ["block", None]},
    "reason": {"type": ["string", "null"]},
}
_BLOCK_NEEDS_REASON = {
    "if": {"properties": {"decision": {"const": "block"}}, "required": ["decision"]},
    "then": {
        "properties": {"reason": {"type": "string", "pattern": r".*\S.*"}},
        "required": ["reason"],
    },
}


def _specific(event: str) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "hookEventName": {"const": event},
            "additionalContext": {"type": ["string", "null"]},
        },
        "required": ["hookEventName"],
    }


CODEX_OUTPUT: dict[str, dict[str, Any]] = {
    "SessionStart": {"properties": {**_COMMON, "hookSpecificOutput": _specific("SessionStart")}},
    "UserPromptSubmit": {
        "properties": {**_COMMON, **_DECISION, "hookSpecificOutput": _specific("UserPromptSubmit")},
        "allOf": [_BLOCK_NEEDS_REASON],
    },
    "Stop": {"properties": {**_COMMON, **_DECISION}, "allOf": [_BLOCK_NEEDS_REASON]},
    "SubagentStart": {"properties": {**_COMMON, "hookSpecificOutput": _specific("SubagentStart")}},
    "SubagentStop": {"properties": {**_COMMON, **_DECISION}, "allOf": [_BLOCK_NEEDS_REASON]},
    "PreCompact": {"properties": _COMMON},
}


def _payload(event: str, client: str = "claude", **extra: Any) -> dict[str, Any]:
    """The input the client documents for ``event``."""
    base: dict[str, Any] = {
        "session_id": SESSION,
        "transcript_path": "/tmp/transcript.jsonl",
        "cwd": "/work",
        "hook_event_name": event,
    }
    if client == "gemini":
        base["timestamp"] = "2026-12-02T22:00:00Z"
    else:
        base["permission_mode"] = "default"
    if client == "codex":
        base["model"] = "gpt-5-codex"
        base["turn_id"] = "turn-1"
    if event == "SessionStart":
        base["source"] = "startup"
    if event in ("UserPromptSubmit", "BeforeAgent"):
        base["prompt"] = "carry on"
    if event in ("Stop", "SubagentStop"):
        base |= {"stop_hook_active": False, "last_assistant_message": "done"}
    if event == "AfterAgent":
        base |= {"prompt": "carry on", "prompt_response": "done", "stop_hook_active": False}
    if event == "PreCompact":
        base |= {"trigger": "auto", "custom_instructions": ""}
    if event == "PreCompress":
        base["trigger"] = "auto"
    return base | extra


class Hooks:
    """``swarm hook`` run in process, its answer parsed (and checked against the schema)."""

    def __init__(self, cli: Cli) -> None:
        self.cli = cli

    def __call__(
        self, event: str, *options: str, client: str = "claude", env: Any = None, **extra: Any
    ) -> dict[str, Any]:
        payload = _payload(event, client, **extra)
        out = self.cli(
            "hook", event, "--client", client, *options, input=json.dumps(payload), env=env
        )
        answer: dict[str, Any] = json.loads(out.stdout)
        for value in _strings(answer):
            assert client_len(value) < 10_000
        if client == "codex":
            jsonschema.validate(
                answer, {"type": "object", "additionalProperties": False} | CODEX_OUTPUT[event]
            )
        return answer


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)


def _context(answer: dict[str, Any]) -> str:
    return str(answer.get("hookSpecificOutput", {}).get("additionalContext", ""))


@pytest.fixture
def swarm(redis_url: str, swarm_home: Path) -> Iterator[Swarm]:
    with Swarm(Settings.from_url(redis_url, swarm="test", home=swarm_home)) as handle:
        yield handle


@pytest.fixture
def hooks(redis_url: str, swarm_home: Path) -> Hooks:
    return Hooks(Cli(redis_url, env={"SWARM_AGENT": "", "SWARM_HOME": str(swarm_home)}))


def _claim(swarm: Swarm, queue: str, worker: str, **kw: Any) -> Task:
    """Claim as a session's ``swarm task claim`` would: its token kept on this machine."""
    task: Task | None = swarm.claim(queue, worker=worker, **kw)
    assert task is not None and task.token is not None
    remember(swarm.settings, worker, task.id, task.token)
    return task


ME = agent_for({"session_id": SESSION}, HookOptions(client="claude"))


def test_identity_is_stable_and_swarm_agent_wins(hooks: Hooks, swarm: Swarm) -> None:
    assert agent_for({"session_id": SESSION, "source": "resume"}, HookOptions()) == ME
    assert agent_for({"session_id": "other"}, HookOptions()) != ME
    answer = hooks("SessionStart", "--queue", "q")
    assert answer["hookSpecificOutput"]["hookEventName"] == "SessionStart"
    assert f"You are agent {ME}" in _context(answer)
    assert swarm.get_agent(ME).role == "worker"
    named = hooks("SessionStart", "--role", "shard", env={"SWARM_AGENT": "shard-1"})
    assert "You are agent shard-1" in _context(named) and "role shard" in _context(named)
    with pytest.raises(ValueError, match="SWARM_AGENT"):
        agent_for({}, HookOptions())


@pytest.mark.parametrize("client", ["claude", "codex", "gemini"])
def test_session_start_shows_leases_messages_and_claimable_work(
    hooks: Hooks, swarm: Swarm, client: str
) -> None:
    me = agent_for({"session_id": SESSION}, HookOptions(client=client))
    hooks("SessionStart", client=client)
    never = _context(hooks("SessionStart", "--queue", "q", client=client))
    assert "Claimable: nothing yet (" in never and "0 pending" not in never
    assert 'No task was ever posted to queue "q": check the name (the queues: ' in never
    swarm.post_task("q", "first job", data={"file": "a.py"})
    swarm.post_task("q", "second job")
    held = _claim(swarm, "q", me)
    swarm.send(me, "please hurry", sender="boss")
    context = _context(hooks("SessionStart", "--queue", "q", client=client, source="compact"))
    assert f"Task {held.id}" in context and "first job" in context and "a.py" in context
    assert f"--token {held.token}" in context
    assert "please hurry" in context and "q: 1 pending" in context
    assert "ever posted" not in context
    # the message was shown: not again
    assert "please hurry" not in _context(hooks("SessionStart", client=client))


def test_session_start_is_held_to_a_token_budget(hooks: Hooks, swarm: Swarm) -> None:
    """The core's token Budget, as for MCP results: held tasks, then messages as long as
    they fit (the rest stay unread for a later turn), the claimable line always there."""
    hooks("SessionStart")
    swarm.register("coordinator", name="boss")
    swarm.post_task("q", "long job " + "x" * 20_000, data={"blob": "y" * 20_000})
    swarm.post_task("q", "next job")
    held = _claim(swarm, "q", ME)
    sent = [swarm.send(ME, f"note {i} " + "z" * 900, sender="boss") for i in range(30)]
    seen = ""
    for tokens, most in ((None, DEFAULT_HOOK_BUDGET_TOKENS), ("600", 600)):
        context = _context(hooks("SessionStart", "--queue", "q",
                                 *(["--budget", tokens] if tokens else [])))  # fmt: skip
        assert estimate_tokens(context) <= most, len(context)
        assert f"You are agent {ME}" in context and f"Task {held.id}" in context
        assert context.rstrip().endswith(f" task claim q --worker {ME}).")
        seen += context
    shown = {m.id for m in sent if m.id in seen}
    unread = {m.id for m in swarm.inbox(ME, ack=False, limit=100)}
    assert shown and unread and shown | unread == {m.id for m in sent} and not shown & unread
    assert "--budget" in hooks.cli("hook", "--help").stdout
    # A budget out of range is exit 1 with the range (exit 2 would block the session).
    out = hooks.cli("hook", "SessionStart", "--budget", "99999", input="{}", expect=1)
    assert "out of range" in out.stderr and "2375" in out.stderr


@pytest.mark.parametrize(
    ("client", "event"), [("claude", "UserPromptSubmit"), ("codex", "UserPromptSubmit"),
                          ("gemini", "BeforeAgent")],
)  # fmt: skip
def test_user_prompt_submit_shows_new_messages_once(
    hooks: Hooks, swarm: Swarm, client: str, event: str
) -> None:
    me = agent_for({"session_id": SESSION}, HookOptions(client=client))
    assert hooks(event, client=client) == {}  # registers the agent
    swarm.register("coordinator", name="boss")
    m = swarm.send(me, "new plan", sender="boss")
    b = swarm.broadcast("all stop", sender="boss")
    context = _context(hooks(event, client=client))
    assert "new plan" in context and "all stop" in context and m.id in context
    assert swarm.message_status(m.id).read and me in swarm.message_status(b.id).read_by
    assert hooks(event, client=client) == {}


@pytest.mark.parametrize(("client", "event"), [("claude", "Stop"), ("codex", "Stop"),
                                               ("gemini", "AfterAgent")])  # fmt: skip
def test_stop_in_each_state(hooks: Hooks, swarm: Swarm, client: str, event: str) -> None:
    me = agent_for({"session_id": SESSION}, HookOptions(client=client))
    block = "deny" if client == "gemini" else "block"
    assert hooks(event, client=client) == {}  # nothing held, no messages, no loop
    # a lease not reported: refused, unless the session already continues for a stop hook
    swarm.post_task("q", "job")
    task = _claim(swarm, "q", me)
    answer = hooks(event, client=client)
    assert answer["decision"] == block and task.id in answer["reason"]
    assert hooks(event, client=client, stop_hook_active=True) == {}
    swarm.report(task.id, task.token, {"summary": "done"}, worker=me)
    assert hooks(event, client=client) == {}
    # a broadcast does not keep it; a direct message does (shown once)
    swarm.broadcast("fyi", sender="boss")
    assert hooks(event, client=client) == {}
    swarm.send(me, "one more thing", sender="boss")
    answer = hooks(event, client=client, stop_hook_active=True)
    assert answer["decision"] == block and "one more thing" in answer["reason"]
    assert hooks(event, client=client) == {}
    # loop mode: work -> claimed here and handed over; none -> let it stop
    loop = ("--loop", "--queue", "q")
    assert hooks(event, *loop, client=client) == {}
    swarm.post_task("q", "loop job")
    answer = hooks(event, *loop, client=client, stop_hook_active=True)
    assert answer["decision"] == block and "loop job" in answer["reason"]
    (claimed,) = swarm.list_tasks(status="claimed").items
    assert claimed.worker == me


@pytest.mark.parametrize("active", [False, True], ids=["first-stop", "stop_hook_active"])
def test_stop_in_every_combination_of_lease_work_and_messages(
    hooks: Hooks, swarm: Swarm, active: bool
) -> None:
    """Every state at once: an unreported lease refuses the stop unless stop_hook_active; else a
    direct message does; else, in loop mode, work does (claimed for it, never a second task
    while it holds one); else it stops."""
    swarm.register("coordinator", name="boss")
    for n, (lease, work, message) in enumerate(itertools.product([False, True], repeat=3)):
        session, queue = f"session-{active}-{n}", f"q{n}"
        me = agent_for({"session_id": session}, HookOptions(client="claude"))
        hooks("SessionStart", session_id=session)  # registers the agent
        held = None
        if lease:
            swarm.post_task(queue, "held job")
            held = _claim(swarm, queue, me)
        if work:
            swarm.post_task(queue, "waiting job")
        if message:
            swarm.send(me, "a word from boss", sender="boss")
        answer = hooks("Stop", "--loop", "--queue", queue, session_id=session,
                       stop_hook_active=active)  # fmt: skip
        reason = answer.get("reason", "")
        state = f"lease={lease} work={work} message={message} active={active}: {answer}"
        if lease and not active:
            assert held is not None and held.id in reason and "not reported" in reason, state
        elif message:
            assert "a word from boss" in reason, state
        elif work and not lease:
            assert "Next task for you" in reason and "waiting job" in reason, state
        else:
            assert answer == {}, state
        claimed = [t for t in swarm.list_tasks(status="claimed").items if t.worker == me]
        assert len(claimed) == (1 if lease or (work and not message) else 0), state


def test_a_loop_worker_driven_only_by_stop_completes_20_tasks(hooks: Hooks, swarm: Swarm) -> None:
    for i in range(20):
        swarm.post_task("work", f"job {i}")
    swarm.post_task("work", "over the limit")
    loop = ("--loop", "--queue", "work", "--max-tasks", "20")
    answer = hooks("Stop", *loop)
    done = []
    while answer.get("decision") == "block":
        reason = answer["reason"]
        match = re.search(r" task report (\S+) --token (\S+) --worker (\S+)", reason)
        assert match, reason
        task_id, token, worker = match.groups()
        swarm.report(task_id, token, {"summary": f"did {task_id}"}, worker=worker)
        done.append(task_id)
        answer = hooks("Stop", *loop, stop_hook_active=True)
    assert len(done) == 20 and len(set(done)) == 20
    hooks("SessionStart", *loop, source="compact")  # a compaction keeps the count
    assert hooks("Stop", *loop).get("decision") is None
    assert "20 tasks" in answer.get("systemMessage", "")
    stats = swarm.queue_stats()["work"]
    assert stats["completed"] == 20 and stats["pending"] == 1


@pytest.mark.parametrize(
    ("last", "outcome"),
    [
        ('Done.\n```json\n{"summary": "found the bug", "confidence": 0.9}\n```', "found the bug"),
        ("I looked everywhere and the config is fine.", "the config is fine"),
        ('{"summary": "own id", "id": "f-mine"}', "own id"),
        ("", None),
    ],
)
def test_subagent_stop_reports_or_fails_its_task(
    hooks: Hooks, swarm: Swarm, last: str, outcome: str | None
) -> None:
    start = hooks("SubagentStart", agent_id="a1b2c3", agent_type="general-purpose")
    worker = subagent_for(ME, "a1b2c3")
    assert f"--worker {worker}" in _context(start)
    swarm.post_task("q", "investigate")
    task = _claim(swarm, "q", worker)
    answer = hooks("SubagentStop", agent_id="a1b2c3", last_assistant_message=last)
    assert "decision" not in answer and task.id in answer["systemMessage"]
    after = swarm.get_task(task.id)
    if outcome is None:
        assert after.status != TaskStatus.CLAIMED and "without a finding" in str(after.last_error)
    else:
        assert after.status == TaskStatus.COMPLETED
        assert after.finding_id is not None
        assert outcome in swarm.get_finding(after.finding_id).summary
        # (how the message was read, in words, as swarm run says it: not "(object)")
        said = answer["systemMessage"]
        assert f"{task.id} reported: the agent printed " in said, said
        if '"id"' in last:  # (a field the swarm sets: kept aside, and said, as swarm run does)
            assert 'gave its own "id", which the swarm sets itself' in said, said
            found = swarm.get_finding(after.finding_id)
            assert found.id != "f-mine" and found.extra == {"id_raw": "f-mine"}
    # a subagent holding nothing: nothing to do
    assert hooks("SubagentStop", agent_id="zzz") == {}


@pytest.mark.parametrize(("client", "event"), [("claude", "PreCompact"), ("codex", "PreCompact"),
                                               ("gemini", "PreCompress")])  # fmt: skip
def test_pre_compact_renews_held_leases(
    hooks: Hooks, swarm: Swarm, client: str, event: str
) -> None:
    me = agent_for({"session_id": SESSION}, HookOptions(client=client))
    assert hooks(event, client=client) == {}
    swarm.post_task("q", "long job", lease_s=30)
    task = _claim(swarm, "q", me, lease_s=5)
    assert task.lease_deadline is not None
    answer = hooks(event, client=client)
    assert task.id in answer["systemMessage"]
    renewed = swarm.get_task(task.id)
    assert renewed.lease_deadline is not None and renewed.lease_deadline > task.lease_deadline


def test_bad_input_exits_1_never_2(redis_url: str) -> None:
    cli = Cli(redis_url)
    out = cli("hook", "Stop", input="not json", expect=1)
    assert "swarm hook Stop: the hook input is not JSON" in out.stderr
    out = cli("hook", "Stop", "--loop", "--max-tasks", "-3", input="{}", expect=1)
    assert "--max-tasks -3" in out.stderr
    assert "use one of" in cli("hook", "Bogus", input="{}", expect=1).stderr
    assert "unknown client" in cli("hook", "Stop", "--client", "x", input="{}", expect=1).stderr
    assert (
        "SWARM_AGENT" in cli("hook", "Stop", input="{}", env={"SWARM_AGENT": ""}, expect=1).stderr
    )
    # nothing piped in: said so, not "no session_id"
    for empty in ("", " \n"):
        out = cli("hook", "Stop", input=empty, env={"SWARM_AGENT": ""}, expect=1)
        assert "the hook got no input" in out.stderr and "JSON object on stdin" in out.stderr
    # an event the client does not have: refused alike for every client
    for event, client in (("SubagentStart", "gemini"), ("SubagentStop", "gemini"),
                          ("BeforeAgent", "claude"), ("AfterAgent", "codex")):  # fmt: skip
        out = cli("hook", event, "--client", client, input="{}", expect=1)
        assert f"{event!r}" in out.stderr and "use one of" in out.stderr, (event, client)
    # a queue name the core refuses: refused before any command is handed out with it
    out = cli("hook", "SessionStart", "--queue", "bad q", input="{}", expect=1)
    assert "queue 'bad q'" in out.stderr


def _run(command: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A command a hook handed the agent, run from a shell whose environment names no swarm."""
    bare = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    bare["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent / "src")
    argv = [*shlex.split(command), *args]
    return subprocess.run(argv, env=bare, capture_output=True, text=True, timeout=60, check=False)


def _show_commands(text: str) -> list[str]:
    """The commands a hook's text names to show a message whole."""
    return re.findall(r"the whole message: ([^\[\]…]+ msg show \S+ --agent [^\]\s]+)\]", text)


def test_a_message_cut_to_fit_is_read_and_msg_show_shows_it_whole(
    hooks: Hooks, swarm: Swarm
) -> None:
    """A message a hook cuts (its body too long, or the first one cut to the room left) is
    read like the others, with the hook's own ``msg show`` command that shows it whole: it
    is not repeated at every turn, and a stop is not refused for it again."""
    hooks("SessionStart")
    swarm.register("coordinator", name="boss")
    first = swarm.send(ME, "short one", sender="boss")
    long = swarm.send(ME, "long " * 12_000, sender="boss")
    after = swarm.send(ME, "after the long one", sender="boss")
    context = _context(hooks("UserPromptSubmit"))
    assert "short one" in context and long.id in context and "after the long one" in context
    assert "task list" not in context and "(more:" not in context
    (hint,) = _show_commands(context)
    assert shlex.split(hint)[-3:] == [long.id, "--agent", ME], context
    assert all(swarm.message_status(m.id).read for m in (first, long, after))
    assert hooks("UserPromptSubmit") == {} and hooks("Stop") == {}
    done = _run(hint, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["body"] == "long " * 12_000
    # the first message cut to the room left (a small budget); what follows waits its turn
    big = swarm.send(ME, "big " * 400, sender="boss", data={"blob": "b" * 1_400})
    later = swarm.send(ME, "a later one", sender="boss")
    answer = hooks("Stop", "--budget", "500")
    reason = answer["reason"]
    assert big.id in reason and "a later one" not in reason and "(more: " in reason
    hint = _show_commands(reason)[-1]
    assert reason.endswith(f"{hint}]") and shlex.split(hint)[-3] == big.id, reason
    done = _run(hint, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["data"] == {"blob": "b" * 1_400}
    assert swarm.message_status(big.id).read and not swarm.message_status(later.id).read
    assert "a later one" in hooks("Stop", stop_hook_active=True)["reason"]


def test_two_sessions_of_one_agent_never_show_one_message_twice(
    redis_url: str, swarm_home: Path
) -> None:
    """Sessions sharing an agent id (one SWARM_AGENT) take what they show: while messages
    stream in, each is shown by exactly one of them, none lost."""
    options = HookOptions(agent="shared", budget=Budget(500))
    settings = Settings.from_url(redis_url, swarm="test", home=swarm_home)
    with Swarm(settings) as sender:
        sender.register("worker", name="shared")
        sent = [sender.send("shared", f"note {i} " + "n" * (i % 7) * 150) for i in range(150)]
    shown: list[str] = []

    def session() -> None:
        with Swarm(settings) as s:
            while True:
                context = handle(s, "UserPromptSubmit", {}, options).context
                if not context:
                    return
                shown.extend(re.findall(r"^- (m-\S+) from ", context, re.MULTILINE))
                also = re.search(r"^- also yours, .*: (m-.*)$", context, re.MULTILINE)
                shown.extend(also.group(1).split(", ") if also else ())

    sessions = [threading.Thread(target=session) for _ in range(3)]
    for t in sessions:
        t.start()
    for t in sessions:
        t.join(timeout=120)
    assert sorted(shown) == sorted(m.id for m in sent)


def test_a_message_taken_first_by_another_session_is_never_lost(
    redis_url: str, swarm_home: Path
) -> None:
    """A session that looked at the inbox, then finds other messages when it takes them
    (another session took the ones it looked at), shows all it took: whole when they fit,
    else by id with the command that shows each."""
    settings = Settings.from_url(redis_url, swarm="test", home=swarm_home)
    options = HookOptions(agent="shared", budget=Budget(500), command="/opt/swarm")

    class Overtaken(Swarm):
        """A session overtaken between its look and its take."""

        def inbox(
            self, agent: str, ack: bool = True, limit: int = 100, wait_s: float = 0.0
        ) -> Inbox:
            if ack:
                with Swarm(settings) as other:
                    other.inbox(agent, limit=3)
            return super().inbox(agent, ack, limit, wait_s)

    with Swarm(settings) as sender:
        sender.register("worker", name="shared")
        sent = [sender.send("shared", f"short {i}") for i in range(3)]
        sent += [sender.send("shared", f"long {i} " + "x" * 1_400) for i in range(3)]
    with Overtaken(settings) as session:
        context = handle(session, "UserPromptSubmit", {}, options).context
        assert all(session.message_status(m.id).read for m in sent)
    assert not any(m.id in context for m in sent[:3]), context
    assert sent[3].id in context and "long 0" in context, context
    last = context.splitlines()[-1]
    assert last.startswith("- also yours, each shown whole by /opt/swarm msg show ID --agent"), last
    assert last.endswith(f"shared: {sent[4].id}, {sent[5].id}"), last


def test_a_task_cut_to_fit_names_task_show(hooks: Hooks, swarm: Swarm, redis_url: str) -> None:
    swarm.post_task("q", "long job " + "x" * 5_000)
    held = _claim(swarm, "q", ME)
    context = _context(hooks("SessionStart", "--queue", "q"))
    hint = re.search(rf"the whole task: (.+ task show {held.id})\]", context)
    assert hint and "task list" not in context, context
    assert f"--url {redis_url}" in hint.group(1) and not hint.group(1).startswith("swarm ")
    done = _run(hint.group(1), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["description"] == "long job " + "x" * 5_000


def test_every_value_written_into_a_command_is_quoted(swarm: Swarm) -> None:
    """(The faces refuse such names; the hook quotes whatever it writes all the same.)"""
    options = HookOptions(queues=("a queue",), agent="me", command="/opt/swarm")
    context = handle(swarm, "SessionStart", {}, options).context
    assert "/opt/swarm task claim 'a queue' --worker me)." in context


def test_a_lease_claimed_with_the_cli_is_renewed_and_one_claimed_elsewhere_is_named(
    hooks: Hooks, swarm: Swarm
) -> None:
    """``swarm task claim`` keeps the token for the session's hooks; a lease whose token this
    machine never saw is named, not renewed."""
    swarm.post_task("q", "by the cli")
    swarm.post_task("q", "elsewhere")
    claimed = hooks.cli.json("task", "claim", "q", "--worker", ME)
    other = swarm.claim("q", worker=ME)
    assert other is not None
    message = hooks("PreCompact")["systemMessage"]
    assert f"renewed the leases of {claimed['id']}" in message
    assert f"cannot renew {other.id}" in message
    context = _context(hooks("SessionStart"))
    assert f"--token {claimed['token']}" in context
    assert "use the lease token your claim printed" in context


def test_the_commands_a_hook_hands_the_agent_reach_its_swarm(
    hooks: Hooks, swarm: Swarm, redis_url: str, swarm_home: Path
) -> None:
    """The session's shell may name another swarm, or none: the commands a hook prints carry
    what reaches the hook's own (its URL, swarm and home), and the claim the session's
    identity, so that Stop then knows the lease is the session's."""
    swarm.post_task("review", "look at it")
    context = _context(hooks("SessionStart", "--queue", "review"))
    claim = context.rstrip().rsplit("(", 1)[1].removesuffix(").")  # the Claimable line's
    assert " task claim review --worker " in claim, context
    argv = shlex.split(claim)
    assert argv[argv.index("--swarm") + 1] == "test"
    assert argv[argv.index("--url") + 1] == Settings.from_url(redis_url).url  # (its full form)
    bare = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    bare["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent / "src")
    done = subprocess.run(argv, env=bare, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    answer = hooks("Stop", "--queue", "review")
    assert answer.get("decision") == "block", answer
    report = re.search(r"report it: (.+ task report .+ --worker \S+) --summary", answer["reason"])
    assert report, answer["reason"]
    argv = [*shlex.split(report.group(1)), "--summary", "done"]
    done = subprocess.run(argv, env=bare, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert swarm.queue_stats()["review"]["completed"] == 1
    assert hooks("Stop", "--queue", "review").get("decision") is None


def test_hook_help_names_every_event_it_answers() -> None:
    """From the one table of events (a review found SessionEnd missing from prose kept apart)."""
    out = CliRunner().invoke(main, ["hook", "--help"])
    assert out.exit_code == 0, out.output
    words = set(re.findall(r"\w+", out.output))
    for client in CLIENTS:
        assert {client_event(event, client) for event in EVENTS} - {None} <= words, client
    assert {"SessionEnd", "PreCompress"} <= words
