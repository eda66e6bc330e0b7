"""A URL handed to another process (an agent of ``swarm run``, a client's MCP configuration,
a hook, a prompt, the URL ``swarm acl`` tells agents to use) has its file paths (ssl_ca_certs,
ssl_certfile, ssl_keyfile) made absolute against the current directory: that process runs
in another folder, where a relative path names no file. On a real TLS server, from a folder
holding tls/ with the test PKI."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from redis_swarm import Swarm
from redis_swarm.cli import main

from ._cli import SRC, Cli
from ._servers import ServerFactory
from ._tls import TlsServer, make_pki, start_tls_server

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

RELATIVE = "ssl_ca_certs=tls/ca.crt&ssl_certfile=tls/client.crt&ssl_keyfile=tls/client.key"


@pytest.fixture(scope="module")
def tls_server(
    servers: ServerFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsServer]:
    """Client certificates optional: verified when presented, as the URL's are."""
    server = start_tls_server(
        servers, make_pki(tmp_path_factory.mktemp("pki")), auth_clients="optional"
    )
    yield server
    server.stop()


@pytest.fixture
def here(tls_server: TlsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current directory: a folder holding tls/ca.crt, tls/client.crt, tls/client.key."""
    pki = tls_server.pki
    assert pki is not None
    folder = tmp_path / "project"
    (folder / "tls").mkdir(parents=True)
    for source, name in (
        (pki.ca, "ca.crt"),
        (pki.client_cert, "client.crt"),
        (pki.client_key, "client.key"),
    ):
        shutil.copy(source, folder / "tls" / name)
    monkeypatch.chdir(folder)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "codex"))
    return folder


def _url(server: TlsServer, auth: str = "") -> str:
    return f"rediss://{auth}127.0.0.1:{server.port}/0?{RELATIVE}"


def _absolute(server: TlsServer, here: Path, auth: str = "") -> str:
    tls = here / "tls"
    return (
        f"rediss://{auth}127.0.0.1:{server.port}/0?ssl_ca_certs={tls}/ca.crt&"
        f"ssl_certfile={tls}/client.crt&ssl_keyfile={tls}/client.key"
    )


# The agent: from /, it reaches the swarm its environment names, and reports that URL.
AGENT = f"""
import json, os, sys
sys.path.insert(0, {SRC!r})
prompt = sys.stdin.read()
os.chdir("/")
from redis_swarm import Swarm
with Swarm.from_env() as swarm:
    swarm.ping()
print("```json")
print(json.dumps({{"summary": "reached from /", "confidence": 0.9,
                  "sources": [os.environ["SWARM_URL"]]}}))
print("```")
"""


def test_swarm_run_hands_its_agents_absolute_paths(
    tls_server: TlsServer, here: Path, tmp_path: Path
) -> None:
    url = _url(tls_server)
    with Swarm(url, swarm="handed") as swarm:
        task = swarm.post_task("q", "reach the swarm from /")
        script = tmp_path / "agent.py"
        script.write_text(AGENT)
        cli = Cli(url, "handed")
        out = cli("--json", "run", "--queue", "q", "--exec", f"{sys.executable} {script}",
                  "--idle-exit", "0.5", expect=None)  # fmt: skip
        summary: dict[str, Any] = json.loads(out.stdout)
        (outcome,) = summary["tasks"]
        assert outcome["task_id"] == task.id and outcome["status"] == "completed", out
        finding = swarm.get_finding(outcome["finding_id"])
    assert finding.summary == "reached from /"
    assert list(finding.sources) == [_absolute(tls_server, here)]


@pytest.mark.parametrize("auth", ["", "user-1:PW-s3cret@"], ids=["no-password", "url-in-config"])
def test_mcp_install_writes_absolute_paths_in_codex_config(
    tls_server: TlsServer, here: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, auth: str
) -> None:
    result = CliRunner().invoke(
        main,
        ["mcp", "install", "--client", "codex", "--url-in-config", "--write"],
        env={"SWARM_URL": _url(tls_server, auth)},
    )
    assert result.exit_code == 0, result.stderr
    written = (tmp_path / "codex" / "config.toml").read_text()
    env = tomllib.loads(written)["mcp_servers"]["swarm"]["env"]
    assert env["SWARM_URL"] == _absolute(tls_server, here, auth), written
    assert Path(env["SWARM_HOME"]).is_absolute()
    if not auth:  # (the server has no such user: the URL without one is tried from /)
        monkeypatch.chdir("/")
        with Swarm(env["SWARM_URL"], swarm="handed") as swarm:
            assert swarm.ping() is not None


@pytest.mark.parametrize(
    "args",
    [
        ("hooks", "install", "--client", "claude"),
        ("prompt", "worker"),
        ("--json", "acl", "--role", "worker", "--user", "handed-w"),
    ],
    ids=["hooks-install", "prompt", "acl"],
)
def test_what_hands_a_url_on_writes_absolute_paths(
    tls_server: TlsServer, here: Path, args: tuple[str, ...]
) -> None:
    out = Cli(_url(tls_server), "handed")(*args)
    expected = _absolute(tls_server, here).split("?", 1)[1]
    assert "=tls/" not in out.stdout, out
    assert expected in out.stdout, out
    if args[1] == "acl":
        agent_url = json.loads(out.stdout)["agent_url"]
        assert agent_url.endswith(f"127.0.0.1:{tls_server.port}/0?{expected}"), agent_url
