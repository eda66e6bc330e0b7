"""``swarm doctor``'s binary row for a server started by name (``redis-server`` found on
PATH): Redis reports its working directory joined to that name, a file that does not exist.
Doctor names no binary then (the client's PATH may find another one, of another version):
``binary_note`` says why, with the version the server reports."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ._cli import Cli
from ._servers import RedisServer, _wait_ready, free_port, system_redis


def test_a_server_started_by_name_shows_the_binary_on_path(tmp_path: Path) -> None:
    binary = system_redis()
    folder = tmp_path / "started-here"  # the server's working directory: no redis-server in it
    folder.mkdir()
    port = free_port()
    env = {**os.environ, "PATH": f"{os.path.dirname(binary)}{os.pathsep}{os.environ['PATH']}"}
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    proc = subprocess.Popen(
        args, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    server = RedisServer(proc, folder, port=port, args=args)
    try:
        _wait_ready(server)
        client = server.client()
        reported = client.info("server")["executable"]
        client.close()
        assert reported == str(folder / "redis-server") and not os.path.exists(reported)
        cli = Cli(server.url)
        report = cli.json("doctor", env={"PATH": env["PATH"]})
        assert report["binary"] is None
        assert f"Redis reports {reported}," in report["binary_note"]
        assert f"the server reports version {report['version']}" in report["binary_note"]
        human = " ".join(cli("doctor", env={"PATH": env["PATH"]}).stdout.split())
        on_path = shutil.which("redis-server", path=env["PATH"])
        assert f"binary {on_path}" not in human and f"binary {reported}" not in human
    finally:
        server.stop()
