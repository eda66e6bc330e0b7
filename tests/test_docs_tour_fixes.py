"""What a user's tour of the docs found, held to the code: the docs name ``Swarm.from_env()``
where a program should reach the CLI's server; the embedded server's notices and strict
durability's error name the commands that work for its home; ``swarm task show`` and
``swarm lineage`` lines are quoted as printed; the README's MCP command is complete; the
first example of docs/tasks.md runs as written; a Python ``ask`` killed by SIGTERM, with the
handler docs/ask.md shows, withdraws its question."""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest

from redis_swarm import ConfigError, Swarm, TaskStatus
from redis_swarm._durability import choose
from redis_swarm._embedded import EmbeddedServer, swarm_command
from redis_swarm._pipeline.report import UNKNOWN
from redis_swarm.cli import main

from ._cli import Cli, subprocess_env

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PYTHON_BLOCK = re.compile(r"```python\n(.*?)\n```", re.S)


def _said(text: str) -> str:
    """Markdown prose with its line breaks and runs of spaces made single spaces."""
    return re.sub(r"\s+", " ", text)


# --- 1. Swarm() reads no environment; the embedded server's notice names its home


def test_no_doc_says_a_bare_swarm_reaches_the_clis_server() -> None:
    for path in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        for line in path.read_text().splitlines():
            if re.search(r"\bSwarm\(\)", line):
                assert "no environment" in line or "reads no" in line, f"{path.name}: {line}"
    assert "Swarm.from_env(" in (DOCS / "contexts.md").read_text()


def test_the_started_notice_names_a_home_that_is_not_the_default(swarm_home: Path) -> None:
    told: list[str] = []
    EmbeddedServer(swarm_home).ensure_running(say=told.append)
    (notice,) = told
    down = f"swarm --home {shlex.quote(str(swarm_home))} down"
    assert f"'{down}' stops it" in notice, notice
    assert swarm_command(Path("~/.local/share/redis-swarm"), "down") == "swarm down"
    # the command it names stops that server
    Cli("embedded")(*shlex.split(down)[1:])
    assert not EmbeddedServer(swarm_home).is_running()


# --- 2. strict on an embedded server started without it


def test_strict_on_a_plain_embedded_server_says_what_works(swarm_home: Path) -> None:
    cli = Cli("embedded", env={"SWARM_HOME": str(swarm_home)})
    strict = {"SWARM_URL": "embedded?durability=strict"}
    cli("up")
    out = cli("task", "post", "q", "x", env=strict, expect=None)
    if out.code == 0:
        pytest.skip("this redis-server has WAITAOF (>= 7.2): strict holds without a restart")
    message = _said(out.stderr)
    home = shlex.quote(str(swarm_home))
    down, up = f"swarm --home {home} down", f"swarm --home {home} up"
    assert f"'{down}', then 'SWARM_URL=\"embedded?durability=strict\" {up}'" in message, message
    assert "CONFIG SET appendfsync always" in message
    # what it says works: down, then up with the strict URL, and the strict write goes through
    cli(*shlex.split(down)[1:])
    cli(*shlex.split(up)[1:], env=strict)
    cli("task", "post", "q", "x", env=strict)


def test_the_strict_error_at_the_default_home_says_plain_swarm_down() -> None:
    info = {"redis_version": "7.0.15", "aof_enabled": 1, "connected_slaves": 0}
    home = Path("~/.local/share/redis-swarm").expanduser()
    with pytest.raises(ConfigError) as caught:
        choose(info, "everysec", f"embedded://{home}?durability=strict")
    said = str(caught.value)
    assert "'swarm down', then 'SWARM_URL=\"embedded?durability=strict\" swarm up'" in said
    with pytest.raises(ConfigError) as caught:  # a server of its own: as before
        choose(info, "everysec", "redis://127.0.0.1:1/0?durability=strict")
    assert "CONFIG SET appendfsync always" in str(caught.value)
    assert "swarm down" not in str(caught.value)


def test_reliability_md_says_the_same() -> None:
    text = _said((DOCS / "reliability.md").read_text())
    assert "swarm down" in text
    assert 'SWARM_URL="embedded?durability=strict" swarm up' in text


# --- 3. and 6. lines quoted as the CLI prints them


def test_tasks_md_quotes_task_show_as_printed(redis_url: str) -> None:
    cli = Cli(redis_url)
    with Swarm(redis_url, swarm="test") as swarm:
        task = swarm.post_task("quoted", "x", max_attempts=3)
        for _ in range(2):
            held = swarm.claim("quoted", worker="w")
            assert held is not None
            swarm.release(held.id, held.token)
        held = swarm.claim("quoted", worker="w")
        assert held is not None
        swarm.fail(held.id, held.token, "no luck")
    shown = {
        line.split(None, 1)[0]: _said(line.strip())
        for line in cli("task", "show", task.id).stdout.splitlines()
    }
    doc = _said((DOCS / "tasks.md").read_text())
    for field in ("claims", "failures", "abandons"):
        assert f"`{shown[field]}`" in doc, shown[field]


def test_ask_md_shows_an_unrecorded_model_as_the_cli_does() -> None:
    text = (DOCS / "ask.md").read_text()
    assert "model ?" not in text
    assert f"model {UNKNOWN}, attempt" in text


# --- 4. the README's MCP command


def test_the_readmes_channel_command_is_complete() -> None:
    readme = (ROOT / "README.md").read_text()
    (words,) = re.findall(r"# after: swarm (mcp install [^\n`]*)", readme)
    ctx = main.make_context("swarm", ["mcp", "install"], resilient_parsing=True)
    group = main.get_command(ctx, "mcp")
    assert isinstance(group, click.Group)
    install = group.get_command(ctx, "install")
    assert install is not None
    install.make_context("install", shlex.split(words)[2:])  # raises on a missing option
    assert "--client" in words and "--channel" in words


# --- 5. docs/tasks.md's first example runs as written


def test_tasks_md_first_example_runs(redis_url: str, tmp_path: Path) -> None:
    (example,) = PYTHON_BLOCK.findall((DOCS / "tasks.md").read_text())[:1]
    assert "redis://localhost" not in example and "Swarm.from_env()" in example
    env = subprocess_env(redis_url, "tour-tasks", tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", example], env=env, cwd=tmp_path, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with Swarm(redis_url, swarm="tour-tasks") as swarm:
        assert swarm.syntheses(shard="shard-1").items


# --- 7. SIGTERM withdraws a Python ask, with the handler docs/ask.md shows


def test_sigterm_with_the_documented_handler_withdraws_the_question(
    redis_url: str, tmp_path: Path
) -> None:
    (program,) = [b for b in PYTHON_BLOCK.findall((DOCS / "ask.md").read_text()) if "SIGTERM" in b]
    env = subprocess_env(redis_url, "tour-ask", tmp_path)
    with Swarm(redis_url, swarm="tour-ask") as swarm:
        target = re.search(r'swarm\.ask\("([^"]+)"', program).group(1)  # type: ignore[union-attr]
        swarm.publish_context(target, "a big book\n", source="book.md")
        proc = subprocess.Popen(
            [sys.executable, "-c", program], env=env, stderr=subprocess.PIPE, text=True
        )
        try:
            deadline = time.monotonic() + 30
            while not (asked := swarm.list_tasks(queue=f"ask.{target}").items):
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
            time.sleep(0.3)  # (waiting for the answer, not posting)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
        assert proc.returncode == 143, err
        (question,) = asked
        assert swarm.get_task(question.id).status is TaskStatus.CANCELLED, err
