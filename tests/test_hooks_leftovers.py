"""Leftovers of the live-session hooks:

1. A lease the hooks adopted (a loop claim whose reply was lost, proved by a kept secret) was
   not counted toward ``--max-tasks``: the session was handed one task more than its max.
2. A lease-token file that is no JSON object was taken for no tokens without a word (and the
   next token kept wrote over it): now it is set aside and said once, in one line.
3. The other-scope warning's removal named ``swarm``, while an entry is ours when its command
   starts with this install's executable: a ``swarm`` found elsewhere on PATH removed nothing.
4. Every subagent left a stale agent record for good: now it goes at its stop when nothing of
   it would be lost (unread broadcasts too, when its record has a cursor). A session's id
   (one it made without SWARM_AGENT too) stays at its end: a resume takes it again and gets
   every message sent meanwhile (15b619d removed it there, losing them).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import Settings, Swarm, TaskStatus
from redis_swarm import _lease_tokens as tokens
from redis_swarm._errors import NotFound
from redis_swarm._executable import swarm_command
from redis_swarm._hooks import HookOptions, handle
from redis_swarm._hooks.events import subagent_for

from ._cli import Cli
from .test_hook_session_end import CLAUDE_SESSION_END
from .test_hooks import ME, Hooks, _claim, _context
from .test_hooks_install_scopes import IN_HOME, _ours, _Scoped
from .test_hooks_tour_fixes import _closed_port

LOOP = HookOptions(loop=True, queues=("q",), agent="agent1", max_tasks=1)
STOP = {"session_id": "s1", "hook_event_name": "Stop", "stop_hook_active": False}


@pytest.fixture
def swarm(redis_url: str, swarm_home: Path) -> Iterator[Swarm]:
    with Swarm(Settings.from_url(redis_url, swarm="test", home=swarm_home)) as handle_:
        yield handle_


@pytest.fixture
def hooks(redis_url: str, swarm_home: Path) -> Hooks:
    return Hooks(Cli(redis_url, env={"SWARM_AGENT": "", "SWARM_HOME": str(swarm_home)}))


def _lost_reply_claim(swarm: Swarm, worker: str) -> str:
    """The state a loop claim whose reply was lost leaves: the task leased to ``worker``, its
    token kept nowhere, the secret the claim sent kept as unanswered. Returns the task id."""
    task = swarm.claim("q", worker=worker)
    assert task is not None and task.token is not None
    tokens.keep_unanswered(swarm.settings, worker, [task.token.partition(".")[2]])
    return task.id


# --- 1. an adopted lease counts toward --max-tasks


def test_an_adopted_lease_counts_toward_max_tasks(swarm: Swarm) -> None:
    swarm.post_task("q", "first job")
    swarm.post_task("q", "second job")
    handle(swarm, "SessionStart", {**STOP, "source": "startup"}, LOOP)
    adopted = _lost_reply_claim(swarm, "agent1")

    block = handle(swarm, "Stop", STOP, LOOP).block  # adopts it: the session works on it
    token = tokens.known(swarm.settings, "agent1").get(adopted)
    assert token is not None and f"--token {token}" in block, block
    swarm.report(adopted, token, {"summary": "done"}, worker="agent1")

    answer = handle(swarm, "Stop", STOP, LOOP)  # its one task taken: no second one
    assert answer.block == "" and "took its 1 task in this session" in answer.message, answer
    assert swarm.queue_stats()["q"]["pending"] == 1


# --- 2. an unreadable lease-token file


def _garble(swarm: Swarm, worker: str) -> Path:
    path = tokens.folder(swarm.settings) / f"{worker}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"t-1": "1.secr')  # (cut short by another program)
    return path


def test_an_unreadable_token_file_is_set_aside_and_said_once(swarm: Swarm) -> None:
    options = HookOptions(queues=("q",), agent="agent1")
    start = {"session_id": "s1", "source": "startup"}
    swarm.post_task("q", "job")
    held = swarm.claim("q", worker="agent1")  # its token in the file that cannot be read
    assert held is not None
    path = _garble(swarm, "agent1")

    answer = handle(swarm, "SessionStart", start, options)
    (aside,) = path.parent.glob("agent1.json.unreadable-*")
    assert answer.message == (
        "The lease tokens of agent1 on this machine could not be read (the file holds no "
        f"JSON object): it was moved to {aside}. Its tasks show no token here: take their "
        "tokens from that file if you can, else their leases run out and they are retried; "
        "then delete it."
    ), answer
    assert aside.read_text() == '{"t-1": "1.secr' and not path.exists()  # nothing lost
    # Its lease is shown as held with its token not known here, as before.
    assert f"Task {held.id} (queue q) is yours: use the lease token your claim" in (answer.context)
    assert handle(swarm, "SessionStart", start, options).message == ""  # said once
    assert handle(swarm, "Stop", STOP, options).message == ""


def test_the_note_of_an_unreadable_file_rides_on_a_hook_error(tmp_path: Path) -> None:
    down = f"redis://127.0.0.1:{_closed_port()}"
    settings = Settings.from_url(down, swarm="test", home=tmp_path)
    folder = tokens.folder(settings)
    folder.mkdir(parents=True)
    (folder / "agent1.json").write_text("[]")  # JSON, but no object
    out = Cli(down, swarm="test", env={"SWARM_HOME": str(tmp_path), "SWARM_AGENT": "agent1"})(
        "hook", "SessionStart", input=json.dumps({"session_id": "s1"}), expect=1
    )
    error, note = out.stderr.splitlines()
    assert error.startswith(f"swarm hook SessionStart: cannot reach Redis at {down}/0"), out
    assert note.startswith("The lease tokens of agent1 on this machine could not be read")
    assert list(folder.glob("agent1.json.unreadable-*")), out


# --- 3. the removal the other-scope warning gives removes what it warned of


def test_the_removal_shown_runs_this_install_whatever_swarm_path_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    cli = _Scoped(tmp_path)
    cli("hooks", "install", "--client", "claude", "--write")
    out = cli("hooks", "install", "--client", "claude", "--scope", "user", "--write")
    removal = out.stderr.split("that one with `")[1].split("`")[0]
    me = shlex.join(swarm_command())
    assert removal == f"{me} hooks install --client claude --scope project --remove", out

    # Another install's `swarm` first on PATH (one that takes out nothing of ours).
    other = tmp_path / "other-venv"
    other.mkdir()
    (other / "swarm").write_text("#!/bin/sh\nexit 0\n")
    (other / "swarm").chmod(0o755)
    env = {**os.environ, "HOME": str(tmp_path / "home"), "CLAUDE_CONFIG_DIR": "",
           "PATH": f"{other}{os.pathsep}{os.environ['PATH']}"}  # fmt: skip
    done = subprocess.run(removal, shell=True, env=env, capture_output=True, text=True, check=True)
    assert f"removed from {work / IN_HOME['claude']}" in done.stderr, done
    assert not (work / IN_HOME["claude"]).exists()
    assert _ours(tmp_path / "home" / IN_HOME["claude"])  # (the user scope's kept)


# --- 4. a session's record stays at its end (a resume takes the id again); a subagent's goes


def test_a_session_made_id_stays_at_its_end_and_its_resume_gets_every_message(
    hooks: Hooks, swarm: Swarm
) -> None:
    # 15b619d deregistered it here: the direct message below was refused (not registered),
    # and the resume saw neither broadcast (its cursor went with the record).
    hooks("SessionStart", "--queue", "q")
    swarm.register("worker", name="peer")
    swarm.broadcast("broadcast before the end", sender="peer")
    hooks.cli("hook", "SessionEnd", "--client", "claude", input=json.dumps(CLAUDE_SESSION_END))
    assert swarm.get_agent(ME).alive is False  # kept, marked stale
    swarm.broadcast("broadcast while ended", sender="peer")
    swarm.send(ME, "direct while ended", sender="peer")
    context = _context(hooks("SessionStart", "--queue", "q", source="resume"))
    for said in ("broadcast before the end", "broadcast while ended", "direct while ended"):
        assert said in context
    assert swarm.get_agent(ME).alive


def test_a_subagent_record_goes_at_its_stop_unless_it_holds_a_lease(
    hooks: Hooks, swarm: Swarm
) -> None:
    swarm.post_task("q", "investigate")
    swarm.post_task("q", "more")
    worker = subagent_for(ME, "a1")
    task = _claim(swarm, "q", worker)  # (registers it implicitly)
    hooks("SubagentStop", agent_id="a1", last_assistant_message="found nothing")
    assert swarm.get_task(task.id).status is TaskStatus.COMPLETED
    with pytest.raises(NotFound):
        swarm.get_agent(worker)

    other = subagent_for(ME, "a2")
    kept = swarm.claim("q", worker=other)  # its token kept nowhere: left to its lease
    assert kept is not None
    answer = hooks("SubagentStop", agent_id="a2", last_assistant_message="done")
    assert f"{kept.id} left to its lease" in answer["systemMessage"]
    assert swarm.get_agent(other).id == other


@pytest.mark.parametrize("waits", ["direct", "broadcast to a registered one", "nothing"])
def test_a_subagent_record_stays_while_a_message_waits_for_it(
    hooks: Hooks, swarm: Swarm, waits: str
) -> None:
    worker = subagent_for(ME, "a3")
    if waits == "broadcast to a registered one":
        swarm.register("worker", name=worker)  # (a broadcast cursor: it reads broadcasts)
    else:
        swarm.post_task("q", "job")
        task = _claim(swarm, "q", worker)  # registered by its claim: no cursor
        swarm.report(task.id, task.token or "", {"summary": "done"})
    swarm.register("worker", name="peer")
    swarm.broadcast("for everyone", sender="peer")  # (an implicit worker's reads it too)
    if waits == "direct":
        swarm.send(worker, "for you", sender="peer")
    hooks("SubagentStop", agent_id="a3", last_assistant_message="done")
    if waits == "nothing":  # a broadcast only, and no cursor: it goes
        with pytest.raises(NotFound):
            swarm.get_agent(worker)
    else:
        assert swarm.get_agent(worker).id == worker
