"""``swarm acl --apply`` with ``--user`` the user of ``--url`` itself, and what it says when a
step after the ACL SETUSER fails or may not be done.

Found on a tour, with the default user off: an admin that rotated its own password (docs
say applying the same user again is how passwords are rotated) was locked out. The new
password was set and saved, then the library was loaded on a new connection with the URL's
old password, refused: "authentication failed", and the generated password never shown.
Now the library is loaded before any ACL SETUSER (while the URL's password logs in), the
user is saved on the connection that set it, and the new password is shown with a line
saying the URL's password changed. A step that fails after a server got the user
(``PartlyApplied``) still shows the password. Making the URL's own user a role below admin
(it loses the rights to manage users: with no other admin, the way in) is refused unless
``--demote-self``; and a user that may not run ACL SAVE is told so (NOPERM), not that the
server has no aclfile.

One server with an aclfile and the default user off; ``root``, an admin no test touches,
makes each test's own admin."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator

import pytest
import redis

from redis_swarm import (
    ConnectionFailed,
    PartlyApplied,
    PermissionDenied,
    Settings,
    Swarm,
    apply_role,
)

from ._cli import Cli, Out
from ._servers import RedisServer, ServerFactory, system_redis

ROOT_PASSWORD = "root-password-0123456789"
OLD_PASSWORD = "AdminPassword-0123456789xyz"
_ACL_SAVE = b"*2\r\n$3\r\nACL\r\n$4\r\nSAVE\r\n"  # as redis-py sends it


@pytest.fixture(scope="module")
def server(servers: ServerFactory) -> Iterator[RedisServer]:
    """A Redis >= 7 with an aclfile, ``root`` an admin in it, the default user off (as
    docs/security.md has it); started with the default user on, which the readiness check
    uses, then turned off."""
    aclfile = servers.new_dir() / "users.acl"
    aclfile.write_text(
        f"user default on nopass ~* &* +@all\nuser root on >{ROOT_PASSWORD} ~* &* +@all\n"
    )
    server = servers.start(binary=system_redis(), extra=["--aclfile", str(aclfile)])
    with _root(server) as root:
        root.execute_command("ACL", "SETUSER", "default", "off")  # type: ignore[no-untyped-call]
        root.execute_command("ACL", "SAVE")  # type: ignore[no-untyped-call]
    yield server
    server.stop()


@contextlib.contextmanager
def _root(server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis(
        host="127.0.0.1",
        port=server.port or 0,
        username="root",
        password=ROOT_PASSWORD,
        decode_responses=True,
    )
    try:
        yield client
    finally:
        client.close()


def _admin(server: RedisServer, name: str, *rules: str) -> str:
    """Make ``name`` an admin (or what ``rules`` say) with ``OLD_PASSWORD``: its URL."""
    with _root(server) as root:
        root.execute_command(  # type: ignore[no-untyped-call]
            "ACL", "SETUSER", name, "reset", "on", f">{OLD_PASSWORD}",
            *(rules or ("~*", "&*", "+@all")),
        )  # fmt: skip
    return _url(server, name, OLD_PASSWORD)


def _url(server: RedisServer, user: str, password: str, port: int | None = None) -> str:
    return f"redis://{user}:{password}@127.0.0.1:{port or server.port}"


def _logs_in(url: str) -> bool:
    with Swarm(url) as swarm:
        try:
            swarm.ping()
        except PermissionDenied:
            return False
    return True


def _rules(server: RedisServer, user: str) -> str:
    with _root(server) as root:
        reply = root.execute_command("ACL", "GETUSER", user)  # type: ignore[no-untyped-call]
        return " ".join(str(part) for part in reply)


def _printed_password(out: Out) -> str:
    marker = "# password (generated, shown once; store it now): "
    (line,) = [line for line in out.stdout.splitlines() if line.startswith(marker)]
    return line.removeprefix(marker)


def test_the_admin_rotates_its_own_password(server: RedisServer) -> None:
    old_url = _admin(server, "ops-rotate")
    out = Cli(old_url)("acl", "--role", "admin", "--user", "ops-rotate", "--apply")
    password = _printed_password(out)
    assert password != OLD_PASSWORD and password not in out.stderr
    assert "# user 'ops-rotate' is the one --url connects as: its password there is now" in (
        out.stdout
    )
    assert f"# applied on {Settings.from_url(old_url).url}: saved to the aclfile" in out.stdout
    new_url = _url(server, "ops-rotate", password)
    assert _logs_in(new_url) and not _logs_in(old_url)
    # still an admin with the new password: it rotates again, through --json this time
    data = Cli(new_url).json("acl", "--role", "admin", "--user", "ops-rotate", "--apply")
    assert data["url_user"] is True and data["password"] not in (password, OLD_PASSWORD)
    assert _logs_in(_url(server, "ops-rotate", data["password"])) and not _logs_in(new_url)
    # saved: what the aclfile holds logs in after the server reads it again
    with _root(server) as root:
        root.execute_command("ACL", "LOAD")  # type: ignore[no-untyped-call]
    assert _logs_in(_url(server, "ops-rotate", data["password"]))


def test_apply_role_rotates_its_own_users_password(server: RedisServer) -> None:
    old_url = _admin(server, "ops-python")
    made = apply_role(Settings.from_url(old_url), "admin", "ops-python")
    assert made.url_user and made.user.generated and made.persisted
    assert _logs_in(_url(server, "ops-python", made.user.password or "")) and not _logs_in(old_url)


class CutOnSaveProxy:
    """Forwards 127.0.0.1:``port`` to a server, and drops the connection an ACL SAVE comes
    on (not forwarded): a server lost between the ACL SETUSER and its saving."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.cuts = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
                self._sockets += [client, upstream]
                for pipe in ((client, upstream, True), (upstream, client, False)):
                    threading.Thread(target=self._pipe, args=pipe, daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, up: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if up and _ACL_SAVE in data:
                    self.cuts += 1
                    break
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()


@pytest.fixture
def cut_on_save(server: RedisServer) -> Iterator[CutOnSaveProxy]:
    proxy = CutOnSaveProxy(server.port or 0)
    yield proxy
    proxy.close()


def test_a_failure_after_the_setuser_still_shows_the_password(
    server: RedisServer, cut_on_save: CutOnSaveProxy
) -> None:
    admin = _admin(server, "ops-cut")
    # (no retries: the ACL SAVE's connection is dropped each time, which they would wait out)
    url = _url(server, "ops-cut", OLD_PASSWORD, cut_on_save.port) + "?retries=0"
    out = Cli(url)("acl", "--role", "worker", "--user", "w-cut", "--apply", expect=1)
    assert cut_on_save.cuts == 1
    password = _printed_password(out)
    # (set there, not saved: the server stopped answering before its ACL SAVE, as said)
    where = Settings.from_url(url).url  # (the node: the URL's server, password masked)
    assert f"# applied on {where}: in memory only (set, but the server stopped" in out.stdout
    error = out.stderr.strip().splitlines()[-1]
    assert error.startswith("error: ") and "user 'w-cut' was set on" in error, out
    assert "shown with the user" in error and password not in out.stderr
    assert _logs_in(_url(server, "w-cut", password))  # (what the server holds now)

    # --json: the object made (its password) on stdout, the error on stderr
    out = Cli(url)("acl", "--json", "--role", "worker", "--user", "w-cut", "--apply", expect=1)
    data = json.loads(out.stdout)
    assert [node["node"] for node in data["applied"]] == [where] and not data["url_user"]
    assert json.loads(out.stderr)["error"] == "PartlyApplied"
    assert _logs_in(_url(server, "w-cut", data["password"]))

    # from Python: the error carries what was made, and what stopped it
    with pytest.raises(PartlyApplied) as caught:
        apply_role(Settings.from_url(url), "worker", "w-cut")
    made = caught.value.made
    assert isinstance(caught.value.__cause__, ConnectionFailed)
    assert made.user.user == "w-cut" and made.persisted
    assert _logs_in(_url(server, "w-cut", made.user.password or ""))
    assert _logs_in(admin)  # (another user: the URL's is untouched)


def test_demoting_the_urls_own_user_is_refused(server: RedisServer) -> None:
    url = _admin(server, "ops-demote")
    before = _rules(server, "ops-demote")
    out = Cli(url)("acl", "--role", "worker", "--user", "ops-demote", "--apply", expect=1)
    assert out.stdout == ""
    (error,) = out.stderr.splitlines()
    assert error.startswith("error: refusing to make user 'ops-demote', the one the URL")
    assert "Make another admin first" in error and "--demote-self" in error
    assert OLD_PASSWORD not in error
    assert _rules(server, "ops-demote") == before and _logs_in(url)  # (untouched)
    # a shard or coordinator loses the admin rights as well
    for role in ("shard", "coordinator"):
        out = Cli(url)("acl", "--role", role, "--user", "ops-demote", "--apply", expect=1)
        assert "refusing to make user 'ops-demote'" in out.stderr
    assert _rules(server, "ops-demote") == before
    # printing the rules applies nothing: not refused
    Cli(url)("acl", "--role", "worker", "--user", "ops-demote")


def test_demote_self_demotes_and_says_it_could_not_save(server: RedisServer) -> None:
    url = _admin(server, "ops-down")
    out = Cli(url)(
        "acl", "--role", "worker", "--user", "ops-down", "--apply", "--demote-self"
    )  # fmt: skip
    password = _printed_password(out)
    assert "warning: user 'ops-down' of --url is now a worker" in out.stderr
    (applied,) = [line for line in out.stdout.splitlines() if line.startswith("# applied on")]
    # it may not save any more: said as such, not as a server with no aclfile
    assert "user 'ops-down' may not run ACL SAVE" in applied and "NOPERM" in applied, applied
    assert "no aclfile or config file" not in applied
    assert "+@all" not in _rules(server, "ops-down")
    assert _logs_in(_url(server, "ops-down", password))


def test_no_permission_to_save_is_said_as_such(server: RedisServer) -> None:
    """A user that may set users but not save them (nor rewrite redis.conf): NOPERM, which
    says nothing of whether the server has an aclfile (it has)."""
    url = _admin(server, "ops-nosave", "~*", "&*", "+@all", "-acl|save", "-config|rewrite")
    data = Cli(url).json("acl", "--role", "worker", "--user", "w-nosave", "--apply")
    (applied,) = data["applied"]
    persisted = applied["persisted"]
    assert persisted.startswith("in memory only (user 'ops-nosave' may not run ACL SAVE"), data
    assert "NOPERM" in persisted and "have an admin run ACL SAVE" in persisted
    assert "no aclfile or config file" not in persisted
    # indeed not saved: the aclfile read again has no such user
    with _root(server) as root:
        root.execute_command("ACL", "LOAD")  # type: ignore[no-untyped-call]
        assert root.execute_command("ACL", "GETUSER", "w-nosave") is None  # type: ignore[no-untyped-call]
