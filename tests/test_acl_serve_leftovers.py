"""Leftovers of the ACL and serve reviews.

``swarm acl --apply`` said "saved to the aclfile" naming no file: it names the one it saved
to (``CONFIG GET aclfile``; the embedded server's, HOME/users.acl, is known without asking:
tests/test_embedded_acl_persist.py), and keeps the words alone when the URL's user may not
ask. A user the server does not have was "authentication failed ...: check the user name
and password" alone: Redis answers it as a wrong password (WRONGPASS), so the apply says
both, and how to make the user. ``swarm serve``'s lock of its slot names was keyed by the
server's address as spelt: ``redis://localhost:PORT/0`` and ``redis://127.0.0.1:PORT`` took
two locks for one server, and two servers the same slots."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from redis_swarm import Swarm

from ._cli import Cli, run_swarm, subprocess_env
from ._servers import RedisServer, ServerFactory
from .test_ask_walkthrough_fixes import _process, _stop

PASSWORD = "a-long-enough-admin-password-1"


@pytest.fixture(scope="module")
def acl_server(servers: ServerFactory) -> Iterator[tuple[RedisServer, Path]]:
    """A server of the module's own with an aclfile (its default user on, no password), and
    that file."""
    aclfile = servers.new_dir() / "users.acl"
    aclfile.touch()
    server = servers.start(extra=["--aclfile", str(aclfile)])
    yield server, aclfile
    server.stop()


def _url(server: RedisServer, user: str, password: str = PASSWORD) -> str:
    return f"redis://{user}:{password}@127.0.0.1:{server.port}"


# --- the aclfile saved to, named


def test_the_apply_names_the_aclfile_it_saved_to(acl_server: tuple[RedisServer, Path]) -> None:
    server, aclfile = acl_server
    out = Cli(server.url)("acl", "--role", "worker", "--user", "named-file", "--apply")
    assert f": saved to the aclfile {aclfile}\n" in out.stdout, out
    assert "user named-file " in aclfile.read_text()


def test_a_user_that_may_not_read_the_config_keeps_the_words_alone(
    acl_server: tuple[RedisServer, Path],
) -> None:
    server, _ = acl_server
    with contextlib.closing(server.client()) as root:
        root.execute_command(
            "ACL", "SETUSER", "ops-noconf", "on", f">{PASSWORD}", "~*", "&*", "+@all",
            "-config|get",
        )  # type: ignore[no-untyped-call]  # fmt: skip
    data = Cli(_url(server, "ops-noconf")).json(
        "acl", "--role", "worker", "--user", "unnamed-file", "--apply"
    )
    assert [node["persisted"] for node in data["applied"]] == ["saved to the aclfile"], data


# --- a user the server does not have


UNKNOWN_OR_WRONG = "the user does not exist or its password is wrong (Redis answers both alike)"


@pytest.mark.parametrize("apply", [True, False], ids=["apply", "dry-run"])
def test_a_user_the_server_does_not_have_is_said_so(
    acl_server: tuple[RedisServer, Path], apply: bool
) -> None:
    server, _ = acl_server
    url = _url(server, "nosuch")
    args = ["acl", "--role", "worker", "--user", "w-unknown", *(["--apply"] if apply else [])]
    out = Cli(url)(*args, expect=1)
    error = out.stderr.strip()
    assert error.startswith(
        f"error: authentication failed on redis://nosuch:***@127.0.0.1:{server.port}"
    )
    assert f"it refused user 'nosuch' with the URL's password: {UNKNOWN_OR_WRONG}" in error
    make = "SWARM_URL=ADMIN_URL swarm acl --role admin --user nosuch --password-stdin --apply"
    assert make in error, error
    assert PASSWORD not in error


def test_a_wrong_password_of_a_user_it_has_is_said_in_the_same_words(
    acl_server: tuple[RedisServer, Path],
) -> None:
    server, _ = acl_server
    with contextlib.closing(server.client()) as root:
        rules = ("on", f">{PASSWORD}", "+@all", "~*")
        root.execute_command("ACL", "SETUSER", "ops-known", *rules)  # type: ignore[no-untyped-call]
    out = Cli(_url(server, "ops-known", "not-its-password"))(
        "acl", "--role", "worker", "--user", "w-wrong", "--apply", expect=1
    )
    assert UNKNOWN_OR_WRONG in out.stderr, out
    with contextlib.closing(server.client()) as root:
        assert root.acl_getuser("w-wrong") is None  # (nothing was applied)


# --- swarm serve's lock, one per server however its URL spells it


@pytest.fixture
def served_env(redis_server: RedisServer, redis_url: str, tmp_path: Path) -> dict[str, str]:
    with Swarm(redis_url, swarm="test") as handle:
        handle.publish_context("lib", "a big book\n", source="book.md")
    return subprocess_env(f"redis://127.0.0.1:{redis_server.port}", "test", tmp_path)


@pytest.mark.parametrize(
    "spelt",
    ["redis://localhost:{port}/0", "redis://LocalHost:{port}/", "redis://127.0.0.1:{port}/0"],
)
def test_two_spellings_of_one_server_share_one_lock(
    served_env: dict[str, str], redis_server: RedisServer, spelt: str
) -> None:
    first = _process(served_env, "serve", "lib", "--exec", "cat")
    try:
        assert first.stderr is not None
        assert "serving the questions of lib" in first.stderr.readline()
        other = {**served_env, "SWARM_URL": spelt.format(port=redis_server.port)}
        with redis.Redis.from_url(other["SWARM_URL"]) as client:
            assert client.ping()  # (the same server, spelt otherwise)
        second = run_swarm(["serve", "lib", "--exec", "cat"], other, timeout=30)
        err = second.stderr.decode()
        assert second.returncode == 2, err
        assert (
            f"another swarm serve on this machine (pid {first.pid}) answers as serve-lib-1" in err
        )
    finally:
        _stop(first)
