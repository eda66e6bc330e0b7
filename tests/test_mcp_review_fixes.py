"""An adversarial run of the live-session features found, of ``swarm mcp``:

1. A named server (``--name alice``) restarted after SIGKILL forgot the task its agent
   held, though its token was in ``leases/SWARM/alice.json``, which it wrote: swarm_status
   showed nothing held, and report_finding asked for the token. It now holds again, as it
   starts, the leases whose tokens it kept.
2. ``mcp install --http URL`` took a URL without the ``/mcp`` path the server answers at;
   ``mcp install --channel --write`` did not say that Claude Code loads a channel only when
   started with ``--dangerously-load-development-channels server:NAME``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from redis_swarm import Settings, Swarm
from redis_swarm._models import TaskStatus

SRC = str(Path(__file__).resolve().parent.parent / "src")


@contextmanager
def _server(redis_url: str, home: Path, *options: str) -> Iterator[subprocess.Popen[str]]:
    """``swarm mcp --role worker`` on pipes, spoken to by hand; killed if still running."""
    argv = [sys.executable, "-m", "redis_swarm", "mcp", "--role", "worker", *options]
    env = {**os.environ, "PYTHONPATH": SRC, "SWARM_URL": redis_url, "SWARM_NAME": "test",
           "SWARM_HOME": str(home)}  # fmt: skip
    env.pop("SWARM_AGENT", None)
    popen = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, env=env,
    )  # fmt: skip
    with popen as proc:
        try:
            info = {"name": "raw", "version": "0"}
            init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": info}
            _call(proc, 1, "initialize", init)
            _send(proc, {"jsonrpc": "2.0", "method": "notifications/initialized"})
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)


def _send(proc: subprocess.Popen[str], message: dict[str, Any]) -> None:
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(message) + "\n")
    proc.stdin.flush()


def _call(proc: subprocess.Popen[str], rid: int, method: str, params: dict[str, Any]) -> Any:
    _send(proc, {"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        assert line, "the server closed stdout"
        message = json.loads(line)
        if message.get("id") == rid:
            return message["result"]


def _tool(proc: subprocess.Popen[str], rid: int, name: str, **args: Any) -> tuple[bool, str]:
    result = _call(proc, rid, "tools/call", {"name": name, "arguments": args})
    return bool(result.get("isError")), result["content"][0]["text"]


# --- 1. a named server restarted after SIGKILL


def test_a_named_server_killed_and_restarted_holds_its_task_again(
    redis_url: str, swarm_home: Path
) -> None:
    settings = Settings.from_url(redis_url, swarm="test", home=swarm_home)
    with Swarm(settings) as core:
        posted = core.post_task("q", "the job", lease_s=600)
        with _server(redis_url, swarm_home, "--name", "alice") as proc:
            failed, text = _tool(proc, 2, "claim_task", queue="q")
            assert not failed and posted.id in text, text
            proc.send_signal(signal.SIGKILL)
            proc.wait(15)
        assert core.get_task(posted.id).status is TaskStatus.CLAIMED
        with _server(redis_url, swarm_home, "--name", "alice") as proc:
            failed, text = _tool(proc, 2, "swarm_status")
            assert not failed and json.loads(text)["holding"] == [posted.id], text
            failed, text = _tool(proc, 3, "report_finding", task_id=posted.id, summary="done")
            assert not failed, text
        assert core.get_task(posted.id).status is TaskStatus.COMPLETED


def test_a_kept_token_of_another_lease_is_not_taken(redis_url: str, swarm_home: Path) -> None:
    """The control: a token kept of an earlier lease of the task (the attempt it proves is
    not the lease held now) is not shown held."""
    from redis_swarm import _lease_tokens as tokens

    settings = Settings.from_url(redis_url, swarm="test", home=swarm_home)
    with Swarm(settings) as core:
        posted = core.post_task("q", "the job", lease_s=600)
        first = core.claim("q", worker="alice")
        assert first is not None and first.token is not None
        core.release(posted.id, first.token)
        again = core.claim("q", worker="alice")  # (a second lease: its token not kept)
        assert again is not None
        tokens.remember(settings, "alice", posted.id, first.token)
        with _server(redis_url, swarm_home, "--name", "alice") as proc:
            failed, text = _tool(proc, 2, "swarm_status")
            assert not failed and json.loads(text)["holding"] == [], text


# --- 2. an --http URL without /mcp; a channel install that did not say how it loads


def test_an_http_url_without_the_mcp_path_is_refused_naming_the_right_one(
    tmp_path: Path, monkeypatch: Any
) -> None:
    from ._cli import Cli

    monkeypatch.chdir(tmp_path)
    cli = Cli("redis://127.0.0.1:1/0")
    for given, right in (("http://h:8765", "http://h:8765/mcp"),
                         ("https://proxy/team/", "https://proxy/team/mcp")):  # fmt: skip
        out = cli("mcp", "install", "--client", "json", "--http", given, expect=None)
        assert out.code != 0 and f"pass {right}, the address it printed" in out.stderr, out
    for fine in ("http://h:8765/mcp", "https://proxy/team/mcp"):  # (/mcp/: test_mcp_walk6_fixes)
        cli("mcp", "install", "--client", "json", "--http", fine)


def test_a_channel_install_says_how_claude_code_loads_it(tmp_path: Path, monkeypatch: Any) -> None:
    from ._cli import Cli

    monkeypatch.chdir(tmp_path)
    cli = Cli("redis://127.0.0.1:1/0")
    out = cli("mcp", "install", "--client", "json", "--channel", "--server-name", "team",
              "--write")  # fmt: skip
    assert "`claude --dangerously-load-development-channels server:team`" in out.stderr, out
    assert (tmp_path / ".mcp.json").exists()
