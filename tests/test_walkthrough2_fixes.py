"""What a fresh-clone walkthrough of the security, MCP and A2A guides found (the second one):
``swarm acl --password-stdin`` typed at a terminal echoed the password; ``swarm mcp install``
told a Claude Code user the project's .mcp.json entry was started when it waits for approval;
an install for Gemini CLI in a folder it does not trust said nothing (the entry is Disabled
there); ``swarm doctor``'s counters row read "no counter of 0 queues, shards or 0 passes";
and the guides' redis.conf blocks must start a real redis-server."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from redis_swarm._ops.counters import CounterCheck
from redis_swarm.cli import main

from ._a2a import start_a2a, stop
from ._pty import on_a_terminal, read_some
from ._servers import ServerFactory, free_port, system_redis
from ._tls import make_pki

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
# `make system-deps` installs the A2A JavaScript SDK into .npm-tools/ (as tests/test_a2a_js.py)
NODE_MODULES = Path(os.environ.get("A2A_NODE_MODULES", REPO / ".npm-tools" / "node_modules"))


# --- swarm acl --password-stdin at a terminal -------------------------------------------


def test_a_password_typed_at_a_terminal_is_not_echoed() -> None:
    password = "typed-at-a-terminal-0123456789"
    args = ("acl", "--role", "worker", "--user", "alice", "--password-stdin")
    with on_a_terminal("redis://localhost:1/0", *args, "--redis-version", "7.2") as (child, leader):
        seen = b""
        deadline = time.monotonic() + 30  # (the prompt says echo is off: then type)
        while b"password" not in seen and time.monotonic() < deadline:
            seen += read_some(leader, 0.5)
        os.write(leader, password.encode() + b"\n")
        while b"again" not in seen and time.monotonic() < deadline:  # (asked twice)
            seen += read_some(leader, 0.5)
        os.write(leader, password.encode() + b"\n")
        while chunk := read_some(leader, 30):
            seen += chunk
        assert child.wait(timeout=30) == 0, seen.decode()
    shown = seen.decode()
    assert password not in shown, shown  # (before: the terminal echoed it as typed)
    assert "alice's password (not shown): " in shown, shown
    assert "#" + hashlib.sha256(password.encode()).hexdigest() in shown  # (it was read)


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (("--user", "alice", "--kill-connections"), "--kill-connections closes connections"),
        (("--user", "bad user!"), "user name 'bad user!'"),
    ],
)
def test_a_wrong_option_is_said_before_the_password_is_asked(
    options: tuple[str, ...], said: str
) -> None:
    """A password typed for a command its options make fail anyway is typed for nothing
    (a rotated admin's, typed twice): the options are checked first, no prompt."""
    args = ("acl", "--role", "worker", "--password-stdin", *options)
    with on_a_terminal("redis://localhost:1/0", *args) as (child, leader):
        seen = b""
        while chunk := read_some(leader, 30):
            seen += chunk
        assert child.wait(timeout=30) != 0, seen.decode()
    shown = seen.decode()
    assert said in shown, shown
    assert "password (not shown)" not in shown, shown


# --- swarm mcp install: Claude Code's project scope waits for approval -------------------


def _install(home: Path, *args: str) -> list[str]:
    env = {"HOME": str(home), "CLAUDE_CONFIG_DIR": None, "GEMINI_CLI_HOME": None,
           "GEMINI_CLI_TRUSTED_FOLDERS_PATH": None, "GEMINI_CLI_TRUST_WORKSPACE": None,
           "SWARM_URL": "embedded"}  # fmt: skip
    result = CliRunner().invoke(main, ["mcp", "install", *args], env=env)
    assert result.exit_code == 0, result.stderr
    return result.stderr.splitlines()


def test_the_claude_code_warning_says_the_project_entry_waits_for_approval(
    project: Path,
) -> None:
    home = project.parent / "home"
    _install(home, "--client", "json", "--write")  # (the project's .mcp.json)
    warned = [w for w in _install(home, "--client", "claude", "--scope", "user")
              if w.startswith("warning:")]  # fmt: skip
    assert len(warned) == 1 and str(project / ".mcp.json") in warned[0], warned
    assert (
        "which is not approved there yet: Claude Code starts the one installed here in this "
        "project until that one is approved (it asks as it starts here), then that one"
    ) in warned[0], warned  # (its approval as Claude Code keeps it: tests/test_install_trust.py)


# --- swarm mcp install --client gemini in a folder Gemini CLI does not trust --------------


def _trust_hints(lines: list[str]) -> list[str]:
    return [line for line in lines if "Gemini CLI does not trust this folder" in line]


def test_a_gemini_install_in_an_untrusted_folder_says_so(project: Path) -> None:
    home = project.parent / "home"
    trusted = home / ".gemini" / "trustedFolders.json"
    trusted.parent.mkdir()
    lines = _install(home, "--client", "gemini", "--write")
    (hint,) = _trust_hints(lines)
    assert hint.startswith("warning: ") and lines[-1].startswith("written to"), lines
    assert f'add "{project.resolve()}": "TRUST_FOLDER"' in hint and str(trusted) in hint, hint
    # (printed only: nothing is written, nothing to warn of)
    assert _trust_hints(_install(home, "--client", "gemini")) == []
    # trusted, by a line for the folder, for a folder above, or a sibling's TRUST_PARENT
    for rules in (
        {str(project): "TRUST_FOLDER"},
        {str(project.parent): "TRUST_FOLDER"},
        {str(project.parent / "other"): "TRUST_PARENT"},
    ):
        trusted.write_text(json.dumps(rules))
        assert _trust_hints(_install(home, "--client", "gemini", "--write")) == [], rules
    # not trusted: a longer line against it, or a line for another folder only
    for rules in (
        {str(project.parent): "TRUST_FOLDER", str(project): "DO_NOT_TRUST"},
        {str(project.parent / "other"): "TRUST_FOLDER"},
    ):
        trusted.write_text(json.dumps(rules))
        assert len(_trust_hints(_install(home, "--client", "gemini", "--write"))) == 1, rules


# --- swarm doctor's counters row --------------------------------------------------------


@pytest.mark.parametrize(
    ("queues", "passes", "row"),
    [
        (0, 0, "ok: no queue has counters yet; no counter of a shard is below zero"),
        (
            1,
            1,
            "ok: the pending, delayed, claimed and dead counters of 1 queue match their sets; "
            "no counter of a queue, a shard or the pass is below zero",
        ),
        (
            3,
            2,
            "ok: the pending, delayed, claimed and dead counters of 3 queues match their sets; "
            "no counter of a queue, a shard or any of the 2 passes is below zero",
        ),
    ],
)
def test_the_doctor_s_counters_row_reads_for_any_counts(queues: int, passes: int, row: str) -> None:
    assert CounterCheck(queues=queues, checked=queues, passes=passes).row == row


# --- the guides' redis.conf blocks start a real redis-server -----------------------------

# A fenced block with no language right after a line that ends "... redis.conf`:"
_CONF_BLOCK = re.compile(r"redis\.conf`:\n\n```\n(.*?)^```", re.S | re.M)


def redis_conf_blocks(text: str) -> list[str]:
    """The redis.conf blocks of a guide's ``text``."""
    return _CONF_BLOCK.findall(text)


def _runnable(block: str, folder: Path) -> tuple[str, int, Path | None]:
    """``block`` with this test's ports and files for the guide's: the config, the port to
    ask, and the CA of its TLS (None: the port is plain-text)."""
    pki = make_pki(folder / "pki")
    acl = folder / "users.acl"
    acl.touch()
    files = {
        "/etc/redis/tls/redis.crt": pki.server_cert,
        "/etc/redis/tls/redis.key": pki.server_key,
        "/etc/redis/tls/ca.crt": pki.ca,
        "/etc/redis/users.acl": acl,
    }
    for theirs, ours in files.items():
        block = block.replace(theirs, str(ours))
    tls = re.search(r"^tls-port ", block, re.M) is not None
    port = free_port()
    block = re.sub(r"^tls-port \d+$", f"tls-port {port}", block, flags=re.M)
    if not tls:  # (a block with no port line: the default one, 6379, is never used here)
        block = re.sub(r"^port \d+$", "", block, flags=re.M) + f"\nport {port}\n"
    block = block.replace("bind 0.0.0.0", "bind 127.0.0.1")
    return f"{block}\ndir {folder}\n", port, pki.ca if tls else None


def _answers(proc: subprocess.Popen[bytes], client: redis.Redis) -> bool:
    """Whether the server started from the config answers (False: it exited)."""
    deadline = time.monotonic() + 15
    while proc.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError, OSError):
            if client.ping():
                return True
        time.sleep(0.05)
    return False


def test_the_guides_redis_conf_blocks_are_found() -> None:
    found = {name: len(redis_conf_blocks((DOCS / name).read_text()))
             for name in ("security.md", "deployment.md")}  # fmt: skip
    assert found == {"security.md": 1, "deployment.md": 2}, found


@pytest.mark.parametrize(
    ("guide", "index"), [("security.md", 0), ("deployment.md", 0), ("deployment.md", 1)]
)
def test_each_redis_conf_block_of_the_guides_starts_a_server(
    guide: str, index: int, tmp_path: Path
) -> None:
    server = system_redis(tls=True)
    block = redis_conf_blocks((DOCS / guide).read_text())[index]
    config, port, ca = _runnable(block, tmp_path)
    (tmp_path / "redis.conf").write_text(config)
    log = tmp_path / "redis.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([server, str(tmp_path / "redis.conf")], stdout=out, stderr=out)
    client = redis.Redis(
        port=port,
        socket_timeout=2,
        ssl=ca is not None,
        ssl_ca_certs=None if ca is None else str(ca),
    )
    try:
        assert _answers(proc, client), log.read_text(errors="replace")[-1500:]
    finally:
        client.close()
        proc.kill()
        proc.wait()


# --- docs/a2a.md's JavaScript client runs against swarm a2a ------------------------------


@pytest.mark.skipif(
    shutil.which("node") is None or not (NODE_MODULES / "@a2a-js" / "sdk").is_dir(),
    reason="needs node and @a2a-js/sdk: run `make system-deps` (it needs npm)",
)
def test_the_a2a_guide_s_javascript_example_posts_a_task(
    servers: ServerFactory, tmp_path: Path
) -> None:
    text = (DOCS / "a2a.md").read_text()
    (example,) = re.findall(r"^```js\n(.*?)^```", text, re.S | re.M)
    token = "walkthrough-two-token-0123456789"
    redis_server = servers.start()
    a2a = start_a2a(redis_server.url, "default", token, "--queue", "research")
    try:
        (tmp_path / "node_modules").symlink_to(NODE_MODULES)  # (where its imports are found)
        script = tmp_path / "example.mjs"
        script.write_text(example.replace("http://127.0.0.1:8766", a2a.url))
        done = subprocess.run(
            ["node", str(script)], env={**os.environ, "SWARM_A2A_TOKEN": token},
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        stop(a2a)
        redis_server.stop()
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"t-\S+ 1\n", done.stdout), done.stdout  # (its id, SUBMITTED)
