"""A context that is not text (bytes published with their own media type) in the prompts of
``swarm serve`` and ``swarm run``: ``swarm context search`` and ``read`` refuse it (exit 2), so
the prompts point the agent at ``swarm context get OWNER -o FILE``, naming its media type and
size, and the command they give works as written; a text context keeps its search and read.

Each prompt is the one a real pool gave its agent (an agent that saves its prompt), against a
real server; its ```bash blocks are run with a ``swarm`` of this checkout."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import Swarm
from redis_swarm._prompts import render_question_prompt
from redis_swarm._runner import Runner, RunOptions, ServeOptions, Server

from ._cli import subprocess_env, swarm_bin
from .test_prompt_commands import bash_blocks

BYTES = "line 1: the butler\nline 2: tea\n".encode("utf-16")  # a BOM, then UTF-16: not UTF-8
TEXT = "".join(f"line {i}: {'the butler' if i == 42 else 'tea'}\n" for i in range(1, 80))
OCTETS = "application/octet-stream"
FINDING = '```json\\n{"summary": "read it", "confidence": 0.5}\\n```\\n'


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        handle.publish_context("bin1", BYTES, source="u16.txt", media_type=OCTETS)
        handle.publish_context("txt1", TEXT, source="book.md")
        yield handle


@pytest.fixture
def env(redis_url: str, tmp_path: Path) -> dict[str, str]:
    bindir = tmp_path / "bin"
    swarm_bin(bindir)
    return subprocess_env(redis_url, "test", bindir)


def saving(folder: Path, answer: str) -> str:
    """An agent command that saves its prompt (stdin) in ``folder``, then prints ``answer``."""
    folder.mkdir(exist_ok=True)
    return f"cat > \"{folder}/prompt-$SWARM_TASK_ID.md\"; printf '{answer}'"


def the_prompt(folder: Path) -> str:
    (path,) = folder.glob("prompt-*.md")
    return path.read_text()


def run_blocks(prompt: str, env: dict[str, str], cwd: Path) -> list[str]:
    """Each ```bash block of ``prompt``, its placeholders filled, run as written (exit 0)."""
    outputs = []
    for block in bash_blocks(prompt):
        script = block.replace("<FILE>", "context.bin")
        proc = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, f"{script}\n--- stderr\n{proc.stderr}"
        outputs.append(proc.stdout)
    return outputs


def serve_one(swarm: Swarm, owner: str, folder: Path, **options: object) -> str:
    """The prompt ``swarm serve OWNER`` gave its agent for one question."""
    server = Server(
        swarm,
        ServeOptions(owner=owner, command=saving(folder, "A: from the context."), poll_s=0.2,
                     **options),  # type: ignore[arg-type]
    )  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        answer = swarm.ask(owner, "q", asker="w-1", timeout_s=30)
    finally:
        server.drain()
        thread.join(30)
    assert server.crash is None and server.fatal is None
    assert answer.text == "A: from the context."
    return the_prompt(folder)


def says_write_to_a_file(prompt: str, version: str) -> None:
    commands = "\n".join(bash_blocks(prompt))
    assert "context search" not in commands and "context read" not in commands
    assert OCTETS in prompt and f"{len(BYTES):,} bytes" in prompt
    assert f"swarm context get bin1 --version {version} -o <FILE>" in prompt


@pytest.mark.parametrize("inline_max_tokens", [20_000, 0], ids=["small", "large"])
def test_serve_points_the_agent_at_the_bytes_of_a_context_that_is_not_text(
    swarm: Swarm, env: dict[str, str], tmp_path: Path, inline_max_tokens: int
) -> None:
    """Small enough to put in the prompt (its text read, refused) or not (never read): the
    prompt says to write it to a file, and that command writes its exact bytes."""
    version = swarm.context_info("bin1").version
    prompt = serve_one(swarm, "bin1", tmp_path / "agent", inline_max_tokens=inline_max_tokens)
    says_write_to_a_file(prompt, version)
    run_blocks(prompt, env, tmp_path)
    assert (tmp_path / "context.bin").read_bytes() == BYTES


def test_serve_keeps_search_and_read_for_a_text_context(
    swarm: Swarm, env: dict[str, str], tmp_path: Path
) -> None:
    version = swarm.context_info("txt1").version
    prompt = serve_one(swarm, "txt1", tmp_path / "agent", inline_max_tokens=0)
    assert f"swarm context search txt1 'words to find' --around 3 --version {version}" in prompt
    assert "-o <FILE>" not in prompt and "text/markdown" not in prompt
    (out,) = run_blocks(prompt, env, tmp_path)  # (search, then read: one block)
    assert "the butler" in out and "line 1: tea" in out


def test_a_session_s_reminder_does_not_offer_read_for_a_context_that_is_not_text(
    swarm: Swarm,
) -> None:
    question = swarm.post_task("ask.bin1", "q")
    for owner, offered in (("bin1", "swarm context get bin1"), ("txt1", "swarm context read")):
        info = swarm.context_info(owner)
        prompt = render_question_prompt(
            question, settings=swarm.settings, owner=owner, context=info, in_session=True
        )
        assert offered in prompt
        assert ("swarm context read" in prompt) == (owner == "txt1")
        assert (OCTETS in prompt) == (owner == "bin1")


def run_one(swarm: Swarm, parent: str, folder: Path) -> str:
    """The prompt ``swarm run`` gave its agent for one task posted with ``--parent``."""
    swarm.post_task("q", "Find the butler", parent=parent)
    options = RunOptions(queues=("q",), command=saving(folder, FINDING), until_done=True,
                         poll_s=0.2)  # fmt: skip
    (outcome,) = Runner(swarm, options).run()
    assert outcome.status == "completed", outcome
    return the_prompt(folder)


def test_run_points_the_agent_at_the_bytes_of_a_context_that_is_not_text(
    swarm: Swarm, env: dict[str, str], tmp_path: Path
) -> None:
    version = swarm.context_info("bin1").version
    prompt = run_one(swarm, "bin1", tmp_path / "agent")
    says_write_to_a_file(prompt, version)
    assert "swarm context get bin1 --version" in prompt and "prints all of it" not in prompt
    run_blocks(prompt, env, tmp_path)
    assert (tmp_path / "context.bin").read_bytes() == BYTES


def test_run_keeps_search_and_read_for_a_text_context(
    swarm: Swarm, env: dict[str, str], tmp_path: Path
) -> None:
    version = swarm.context_info("txt1").version
    prompt = run_one(swarm, "txt1", tmp_path / "agent")
    assert f"swarm context read txt1 --lines 1:200 --version {version}" in prompt
    assert "-o <FILE>" not in prompt
    (out,) = run_blocks(prompt, env, tmp_path)
    assert "the butler" in out and "line 1: tea" in out
