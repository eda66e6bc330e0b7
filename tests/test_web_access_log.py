"""A token sent in a URL never reaches a face's log: ``swarm mcp --transport http`` logs its
access lines (at INFO), and a client that put its token in ``?token=`` (refused: the MCP
server takes it only in a header) left it there whole (a security review)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from redis_swarm._web import redact_access_log

from ._cli import SRC
from ._servers import RedisServer, free_port

SECRET = "a-real-token-0123456789abcdef"


def test_the_mcp_servers_access_log_shows_no_token(redis_server: RedisServer) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": SRC, "PYTHONUNBUFFERED": "1", "SWARM_URL": redis_server.url,
           "SWARM_NAME": "logs", "SWARM_MCP_TOKEN": SECRET}  # fmt: skip
    argv = [sys.executable, "-m", "redis_swarm", "mcp", "--transport", "http", "--port", str(port)]
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = httpx.post(
                    f"http://127.0.0.1:{port}/mcp?token={SECRET}&x=1&access_token={SECRET}",
                    json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                    timeout=2,
                )
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("swarm mcp did not start")
                time.sleep(0.05)
        assert answer.status_code == 401  # (refused: no token in URLs)
    finally:
        proc.send_signal(signal.SIGINT)
        out, said = proc.communicate(timeout=20)
    # (uvicorn's lines on stderr: stdout is the protocol's, docs/mcp.md)
    assert "POST /mcp?token=***&x=1&access_token=*** HTTP/1.1" in said, said
    assert SECRET not in said and SECRET not in out and "POST /mcp" not in out, (out, said)


def test_the_filter_cuts_only_token_values(caplog: pytest.LogCaptureFixture) -> None:
    redact_access_log()
    redact_access_log()  # (once: a second call adds no second filter)
    access = logging.getLogger("uvicorn.access")
    assert len(access.filters) == len(set(map(type, access.filters)))
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        access.info('%s - "%s %s HTTP/%s" %d', "1.2.3.4", "GET", "/a?Token=s&q=2#f", "1.1", 200)
        access.info('%s - "%s %s HTTP/%s" %d', "1.2.3.4", "GET", "/plain?q=2", "1.1", 200)
        # a name percent-encoded (Starlette decodes it: the dashboard takes it as its token)
        encoded = f"/?%74oken={SECRET}&q=%74oken&ACCESS%5Ftok%65n={SECRET}&a+token=s&t=&token"
        access.info('%s - "%s %s HTTP/%s" %d', "1.2.3.4", "GET", encoded, "1.1", 200)
    assert [r.getMessage() for r in caplog.records] == [
        '1.2.3.4 - "GET /a?Token=***&q=2#f HTTP/1.1" 200',
        '1.2.3.4 - "GET /plain?q=2 HTTP/1.1" 200',
        '1.2.3.4 - "GET /?%74oken=***&q=%74oken&ACCESS%5Ftok%65n=***&a+token=***&t=&token '
        'HTTP/1.1" 200',
    ]
