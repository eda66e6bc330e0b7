"""The users of the embedded server outlive its restarts; and ``task fail --reason``.

Found by a walkthrough of docs/security.md: it says to reach the embedded server with a
password by making a named admin ('swarm acl --role admin --user NAME --apply') and
connecting as it, but the embedded server ran with no aclfile and no config file, so the
apply said "in memory only (the server has no aclfile or config file): add the line to its
aclfile or redis.conf" (which the user cannot do: swarm starts that server), and after
'swarm down' and 'swarm up' the user was gone ("authentication failed ..."). The server now
starts with an aclfile in its home (created empty, mode 600), the apply saves the user
there, and its ``default`` user (what the home connects as, with no password) is the one
Redis makes at each start, whatever was saved for it.

Also found: 'swarm task fail --reason x' was refused ("Did you mean '--json'?") while the
command's help said "with the reason" without naming its option, --error; --reason is now
another name of it, and the help names them."""

from __future__ import annotations

import stat
import subprocess
import time
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from redis_swarm._embedded import EmbeddedServer, find_redis_server

from ._cli import Cli


def _logs_in(home: Path, user: str | None = None, password: str | None = None) -> bool:
    """A connection to the home's server as ``user`` (default: none named) is let in."""
    client = redis.Redis(
        unix_socket_path=str(EmbeddedServer(home).socket_path),
        username=user,
        password=password,
        retry=Retry(NoBackoff(), 0),  # (one attempt: a refused password is not retried)
        decode_responses=True,
    )
    try:
        client.ping()
    except redis.AuthenticationError:
        return False
    finally:
        client.close()
    return True


def _whoami(home: Path) -> str:
    """The user the home's connections (no user, no password) log in as."""
    with redis.Redis(unix_socket_path=str(EmbeddedServer(home).socket_path)) as client:
        return bytes(client.execute_command("ACL", "WHOAMI")).decode()


def _apply_admin(cli: Cli, home: Path, user: str) -> str:
    """``swarm acl --role admin --user USER --apply`` on the embedded server of ``home``: its
    password, after checking that the output says the user was saved (persisted), naming
    the home's aclfile."""
    data = cli.json("acl", "--role", "admin", "--user", user, "--apply")
    saved = f"saved to the aclfile {home / 'users.acl'}"
    assert [entry["persisted"] for entry in data["applied"]] == [saved], data
    password: str = data["password"]
    return password


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_user_applied_on_the_embedded_server_logs_in_after_a_restart(swarm_home: Path) -> None:
    cli = Cli("embedded", env={"SWARM_HOME": str(swarm_home)})
    cli("up")
    out = cli("acl", "--role", "admin", "--user", "eadmin", "--apply")
    marker = "# password (generated, shown once; store it now): "
    (line,) = [line for line in out.stdout.splitlines() if line.startswith(marker)]
    password = line.removeprefix(marker)
    assert _logs_in(swarm_home, "eadmin", password)
    worker = cli.json("acl", "--role", "worker", "--user", "eworker", "--apply")

    cli("down")
    cli("up")
    assert _logs_in(swarm_home, "eadmin", password)
    assert _logs_in(swarm_home, "eworker", worker["password"])
    # the home still reaches its server as its default user, with no password
    assert _whoami(swarm_home) == "default"
    cli("status")
    # the apply said that it saved them (not "in memory only"), into the home's aclfile,
    # which is the user's alone (ACL SAVE writes it anew: still mode 600)
    aclfile = swarm_home / "users.acl"
    assert f"# applied on embedded://{swarm_home}: saved to the aclfile {aclfile}\n" in (
        out.stdout
    ), out
    assert "in memory only" not in out.stdout
    saved = f"saved to the aclfile {aclfile}"
    assert [entry["persisted"] for entry in worker["applied"]] == [saved]
    assert _mode(aclfile) == 0o600
    # (its default user left out at the start: made afresh, as the next test shows)
    users = {line.split()[1] for line in aclfile.read_text().splitlines()}
    assert users == {"eadmin", "eworker"}

    # a strict restart (appendfsync always) keeps them too
    cli("down")
    cli("up", env={"SWARM_URL": "embedded?durability=strict"})
    assert _logs_in(swarm_home, "eadmin", password)
    assert _whoami(swarm_home) == "default"
    client = redis.Redis(unix_socket_path=str(EmbeddedServer(swarm_home).socket_path))
    with client:
        assert client.config_get("appendfsync") == {"appendfsync": "always"}
    # the refusal of the home's own user stays, and the user made is still there after it
    cli("acl", "--role", "admin", "--user", "default", "--apply", expect=2)
    assert _logs_in(swarm_home, "eadmin", password) and _whoami(swarm_home) == "default"
    cli("down")


def test_the_default_user_is_made_afresh_at_each_start(swarm_home: Path) -> None:
    """Whatever the aclfile holds for ``default`` (saved by ACL SAVE, or edited by hand while
    the server was stopped), the home reaches its server as it after a start; the other
    users are kept as they were."""
    cli = Cli("embedded", env={"SWARM_HOME": str(swarm_home)})
    cli("up")
    password = _apply_admin(cli, swarm_home, "keeper")
    cli("down")
    aclfile = swarm_home / "users.acl"
    lines = aclfile.read_text().splitlines()
    # (as ACL SAVE wrote it: the default user as Redis makes it)
    assert any(line.startswith("user default on nopass ") for line in lines), lines
    aclfile.write_text(
        "\n".join(
            "user default off resetpass -@all" if line.startswith("user default ") else line
            for line in lines
        )
        + "\n"
    )
    cli("up")
    assert _whoami(swarm_home) == "default"
    cli("status")
    assert _logs_in(swarm_home, "keeper", password)
    assert not any(line.startswith("user default ") for line in aclfile.read_text().splitlines())
    assert _mode(aclfile) == 0o600
    cli("down")


def test_a_server_started_without_an_aclfile_takes_one_at_its_restart(swarm_home: Path) -> None:
    """A server started by an older version (its arguments then: no --aclfile) keeps
    working; the next start after 'swarm down' gives it the aclfile."""
    server = EmbeddedServer(swarm_home)
    server.data_dir.mkdir(parents=True, mode=0o700)
    old_arguments = [
        find_redis_server().path,
        "--port", "0",
        "--unixsocket", str(server.socket_path),
        "--unixsocketperm", "700",
        "--dir", str(server.data_dir),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--daemonize", "yes",
        "--pidfile", str(server.pidfile),
        "--logfile", str(server.logfile),
    ]  # fmt: skip
    subprocess.run(old_arguments, check=True, capture_output=True, timeout=30)
    # (--daemonize returns before the server listens: 'up' must meet it started, as it
    # would meet a server an older version left running, not start one of its own)
    deadline = time.monotonic() + 30
    while not server.is_running():
        assert time.monotonic() < deadline, "the old-style server never answered"
        time.sleep(0.02)
    cli = Cli("embedded", env={"SWARM_HOME": str(swarm_home)})
    cli("up")  # (it answers: left as it is)
    assert not (swarm_home / "users.acl").exists()
    cli("task", "post", "q", "kept")
    data = cli.json("acl", "--role", "worker", "--user", "early", "--apply")
    persisted = data["applied"][0]["persisted"]
    # (no "add the line to its aclfile": swarm starts that server, on no file; a restart
    # gives it one)
    assert persisted.startswith("in memory only (the embedded server was started by an older")
    assert "the users made on it last until it stops" in persisted, persisted
    restart = f"'swarm --home {swarm_home} down' then 'swarm --home {swarm_home} up'"
    assert f"{restart} to restart it with an aclfile ({swarm_home / 'users.acl'})" in persisted
    assert "add the line" not in persisted
    cli("status")
    cli("down")
    cli("up")
    assert (swarm_home / "users.acl").exists()
    assert cli.json("task", "list", "--queue", "q")["items"][0]["description"] == "kept"
    password = _apply_admin(cli, swarm_home, "later")
    cli("down")
    cli("up")
    assert _logs_in(swarm_home, "later", password)
    cli("down")


# --- task fail --reason


@pytest.mark.parametrize("option", ["--error", "--reason"])
def test_task_fail_takes_the_reason_as_error_or_reason(cli: Cli, option: str) -> None:
    cli("task", "post", "q-fail", "d", "--max-attempts", "3")
    t = cli.json("task", "claim", "q-fail", "--worker", "w")
    failed = cli.json("task", "fail", t["id"], "--token", t["token"], option, "it broke")
    assert failed["last_error"] == "it broke", failed
    assert failed["status"] in ("queued", "delayed")


def test_task_fails_help_names_the_reasons_option(cli: Cli) -> None:
    help_text = cli("task", "fail", "--help").stdout
    assert "--error, --reason TEXT" in help_text
    assert "with the reason, --error" in " ".join(help_text.split())
    assert "with the reason, --error" in cli("task", "--help").stdout
    missing = cli("task", "fail", "t-x", expect=2)
    assert "Missing option '--error' / '--reason'" in missing.stderr
