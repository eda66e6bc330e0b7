"""What a tour of docs/seed.md, ask.md and live.md found, held to the code: a shard's
``context_full_location`` is a command that reaches its own swarm (never with a password);
the errors of a task with no parent shard, of another agent's heartbeat, of a token that is
none, of an inbox or a recipient not registered say what to do next; Ctrl-C of a pool with
nothing running says so; the commands ask.md and live.md show run on the README tour's swarm.
(The seed.md and live.md examples themselves run in tests/test_doc_examples.py.)"""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from redis_swarm import (
    EphemeralWorker,
    NotFound,
    RedisSwarmCoordinator,
    Swarm,
    SwarmMemoryShard,
    ValidationError,
)
from redis_swarm.roles import NoParentShard

from ._cli import SRC, Cli, subprocess_env
from ._servers import ServerFactory

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
TEXT = "Uploads\nA failed upload is retried: 3 retries, 2 s backoff.\n"


def _shell(command: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command], env=env, cwd=cwd, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip


def _elsewhere(tmp_path: Path, url: str = "redis://127.0.0.1:1/0") -> dict[str, str]:
    """A shell whose environment names another server, swarm and home, and whose PATH has
    no ``swarm``: a command that reaches the shard's swarm must carry what it needs."""
    env = subprocess_env(url, "someone-elses", tmp_path / "nobin")
    env["SWARM_HOME"] = str(tmp_path / "other-home")
    env["PATH"] = "/usr/bin:/bin"
    return env


# --- 3. the command that prints a shard's whole context


def test_the_context_location_is_a_command_that_reaches_the_shards_swarm(
    redis_url: str, tmp_path: Path
) -> None:
    with SwarmMemoryShard(specialization="loc", url=redis_url, swarm="seed-loc") as shard:
        shard.load_context(TEXT, "notes.md")
        where = shard.get_context_for_worker()["context_full_location"]
    words = shlex.split(where)
    assert words[-3:] == ["context", "get", shard.agent_id]
    assert words[words.index("--swarm") + 1] == "seed-loc"
    done = _shell(where, _elsewhere(tmp_path), tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip("\n") == TEXT.rstrip("\n")


def test_the_context_location_never_holds_a_password(
    servers: ServerFactory, tmp_path: Path
) -> None:
    server = servers.start()
    try:
        client: redis.Redis = server.client()
        client.config_set("requirepass", "sesame-loc")
        client.close()
        url = server.url.replace("redis://", "redis://:sesame-loc@", 1)
        with SwarmMemoryShard(specialization="loc", url=url, swarm="seed-loc") as shard:
            shard.load_context(TEXT, "notes.md")
            where = shard.get_context_for_worker()["context_full_location"]
        # (--url "$SWARM_URL", not no --url: a shell without SWARM_URL is refused an empty
        # URL instead of reaching the embedded server: tests/test_seed_review_fixes.py)
        assert "sesame" not in where and '--url "$SWARM_URL"' in where
        # the shell that runs it names the server, password and all, in SWARM_URL
        done = _shell(where, _elsewhere(tmp_path, url), tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.rstrip("\n") == TEXT.rstrip("\n")
    finally:
        server.kill()


# --- 8. errors that say what to do next


def test_a_task_with_no_parent_shard_says_what_the_worker_can_do(redis_url: str) -> None:
    with Swarm(redis_url, swarm="orphans") as swarm:
        task = swarm.post_task("orphans", "Summarise the logs", {"file": "a.log"})
    with EphemeralWorker(url=redis_url, swarm="orphans") as worker:
        assert worker.claim_task("orphans") is not None
        with pytest.raises(NoParentShard) as raised:
            worker.get_parent_context()
        worker.release_task()
    said = str(raised.value)
    assert f"task {task.id} names no parent shard" in said
    assert "do it from its description and data" in said
    assert "swarm context get OWNER (swarm context list lists them)" in said
    assert "--parent SHARD" in said


def test_another_agents_heartbeat_says_how_it_comes_back(redis_url: str) -> None:
    with RedisSwarmCoordinator(url=redis_url, swarm="hb") as v1:
        v1.register_agent("coordinator")
        with pytest.raises(NotFound) as raised:
            v1.heartbeat("ghost-7")
    said = str(raised.value)
    assert "agent ghost-7 is not registered" in said
    assert "swarm agents register ghost-7 --role ROLE" in said
    assert "heartbeat()" in said and "check the id with swarm agents" in said
    # the command it names does register it, after which the heartbeat is taken
    Cli(redis_url, "hb")("agents", "register", "ghost-7", "--role", "worker")
    with RedisSwarmCoordinator(url=redis_url, swarm="hb") as v1:
        v1.heartbeat("ghost-7")


def test_a_token_that_is_none_says_where_the_token_is(redis_url: str) -> None:
    with Swarm(redis_url, swarm="tokens") as swarm:
        task = swarm.post_task("q", "a task")
        assert swarm.claim("q", worker="w1") is not None
        with pytest.raises(ValidationError) as raised:
            swarm.report(task.id, "1.bad", {"summary": "x"})
        said = str(raised.value)
        assert "token is str '1.bad', not a lease token" in said
        assert "swarm task claim prints it" in said and "claimed anew" in said
        out = Cli(redis_url, "tokens")(
            "task", "report", task.id, "--token", "1.bad", "--finding", '{"summary": "x"}',
            expect=None,
        )  # fmt: skip
        assert out.code != 0 and "swarm task claim prints it" in out.stderr, out
        assert swarm.get_task(task.id).status.value == "claimed"  # nothing stored


def test_an_inbox_or_a_recipient_not_registered_names_the_command_that_registers_it(
    redis_url: str,
) -> None:
    cli = Cli(redis_url, "inbox-reg")
    command = "swarm agents register shard-1 --role ROLE"
    read = cli("msg", "inbox", "shard-1", expect=1)
    assert f"agent shard-1 is not registered: register it before reading its inbox ({command})" in (
        read.stderr
    ), read
    sent = cli("msg", "send", "shard-1", "hello", expect=1)
    assert command in sent.stderr and "check the id with swarm agents" in sent.stderr, sent
    with Swarm(redis_url, swarm="inbox-reg") as handle, pytest.raises(NotFound, match=command):
        handle.inbox("shard-1")
    # the command, as named, makes both work
    cli(*shlex.split(command.replace("ROLE", "shard"))[1:])
    cli("msg", "send", "shard-1", "hello", "--from", "boss")
    assert "hello" in cli("msg", "inbox", "shard-1").stdout


# --- 9. Ctrl-C of a pool with nothing running


def _fcalls(client: redis.Redis) -> int:
    stats: dict[str, Any] = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k.startswith("cmdstat_fcall"))


def test_ctrl_c_with_nothing_running_says_the_pool_stops(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        before = _fcalls(client)
        proc = subprocess.Popen(
            [sys.executable, "-m", "redis_swarm", "run", "--queue", "idle", "--exec", "true"],
            env=subprocess_env(redis_url, "idle-pool", tmp_path), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while _fcalls(client) == before:  # its first claim: its Ctrl-C handler is set
            assert time.monotonic() < deadline, "the pool made no claim in time"
            time.sleep(0.05)
    finally:
        client.close()
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 3, stderr  # (nothing claimed: swarm run's exit code 3)
    assert "Traceback" not in stderr, stderr
    assert "stopping: no task is running, and none more will be claimed" in stderr
    assert "finishing 0" not in stderr and "Ctrl-C again" not in stderr


# --- 4. and 2.: what ask.md and live.md show runs on the README tour's swarm


def _tour(redis_url: str, swarm: str, tmp_path: Path) -> dict[str, str]:
    """The README tour's swarm: notes.md published as shard-1's context."""
    from .test_readme import tour_commands

    (write_notes,) = [c for c in tour_commands() if c.startswith("cat > notes.md")]
    subprocess.run(["bash", "-ec", write_notes], cwd=tmp_path, check=True, timeout=30)
    with Swarm(redis_url, swarm=swarm) as handle:
        handle.publish_context("shard-1", (tmp_path / "notes.md").read_text(), source="notes.md")
    env = subprocess_env(redis_url, swarm, tmp_path)
    env["PYTHONPATH"] = SRC
    return env


def _swarm(args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    words = shlex.split(args)
    assert words[0] == "swarm", args
    return subprocess.run(
        [sys.executable, "-m", "redis_swarm", *words[1:]], env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_ask_md_names_no_target_the_tour_does_not_have() -> None:
    text = (DOCS / "ask.md").read_text()
    for placeholder in ("--questions lib", '"lib"', "ask.lib", "big-notes.md", "stdlib"):
        assert placeholder not in text, placeholder


def test_ask_md_retire_and_serve_commands_run_on_the_tour_swarm(
    redis_url: str, tmp_path: Path
) -> None:
    env = _tour(redis_url, "ask-retire", tmp_path)
    # the tour asked shard-1 (withdrawn here: nobody serves it)
    asked = _swarm('swarm ask shard-1 "Which retry policy applies to uploads?" --timeout 1', env,
                   tmp_path)  # fmt: skip
    assert asked.returncode == 3, asked.stderr
    text = (DOCS / "ask.md").read_text()
    retire = re.search(r"```bash\n(swarm retire --questions .*?)```", text, re.S)
    assert retire is not None
    lines = [line.split("#")[0].strip() for line in retire.group(1).splitlines()]
    for line in [line for line in lines if "shard-1" in line]:
        done = _swarm(line, env, tmp_path)
        assert done.returncode == 0, (line, done.stderr)
    assert any("assist" in line for line in lines)  # (once a worker asked it: said so)
    serve = re.search(r"```bash\n(swarm context publish .*?)\n", text)
    assert serve is not None
    done = _swarm(serve.group(1).split("#")[0], env, tmp_path)
    assert done.returncode == 0, done.stderr


def test_live_md_console_runs_on_the_tour_swarm(redis_url: str, tmp_path: Path) -> None:
    """The first console block of docs/live.md, command by command, on the README tour's
    swarm (where shard-1 owns a context and is no agent): the message id it shows is the one
    its send printed; the blocking ``--wait`` read is left out."""
    env = _tour(redis_url, "live-tour", tmp_path)
    text = (DOCS / "live.md").read_text()
    block = re.search(r"```console\n(.*?)```", text, re.S)
    assert block is not None
    commands = [
        line[2:].split("  #")[0].strip()
        for line in block.group(1).splitlines()
        if line.startswith("$ ")
    ]
    assert commands[0].startswith("swarm agents register shard-1")
    sent: str | None = None
    for command in commands:
        if "--wait" in command:
            continue
        if sent is not None:
            command = command.replace("m-01J...", sent)
        done = _swarm(command, env, tmp_path)
        assert done.returncode == 0, (command, done.stderr)
        if command.startswith("swarm msg send"):
            found = re.search(r"sent (m-\S+) to shard-1", done.stdout)
            assert found is not None, done.stdout
            sent = found.group(1)
        if command.startswith("swarm msg inbox shard-1 --peek"):
            assert "re-read section 3" in done.stdout, done.stdout
        if command.startswith("swarm msg status"):
            assert "read by: shard-1" in done.stdout, done.stdout
    assert sent is not None


# --- 7. a sweep with a max_age of 0, as seed.md says it


def test_seed_md_says_a_sweep_of_0_takes_the_callers_own_agent_too(redis_url: str) -> None:
    text = " ".join((DOCS / "seed.md").read_text().split())
    assert "every other agent" not in text
    assert "the caller's own included" in text
    with RedisSwarmCoordinator(url=redis_url, swarm="sweep0") as janitor:
        me = janitor.register_agent("janitor")
        assert me in janitor.cleanup_stale_agents(0)
        with pytest.raises(NotFound, match=r"heartbeat\(\)"):
            janitor.get_messages()
        janitor.heartbeat()  # as the page says: registered again
        assert janitor.get_messages() == []


def test_a_token_copied_with_a_full_stop_says_so(redis_url: str) -> None:
    """A token copied out of a sentence ("... --token 1.AbC...xyz.") is told its last
    character is none of a token's (it was told the token was no token, its repr cut before
    the closing quote); the refusal never shows the token itself."""
    with Swarm(redis_url, swarm="tokens") as swarm:
        swarm.post_task("q", "a task")
        task = swarm.claim("q", worker="w1")
        assert task is not None and task.token is not None
        for copied in (task.token + ".", task.token + ")"):
            with pytest.raises(ValidationError) as raised:
                swarm.report(task.id, copied, {"summary": "x"})
            said = str(raised.value)
            assert f"token ends with {copied[-1]!r}, which is no part of a lease token" in said
            assert task.token not in said, said
        with pytest.raises(ValidationError) as raised:
            swarm.report(task.id, "1." + "x" * 80 + "!", {"summary": "x"})
        said = str(raised.value)
        assert "token is str '1.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'..., not a lease" in said
        assert swarm.report(task.id, task.token, {"summary": "x"}).summary == "x"
