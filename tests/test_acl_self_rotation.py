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
makes each test's own admin. Then, from a review: the embedded server's own user (refused),
and a cluster of a master and its replica where the URL's own user is rotated on both or
neither, and a rotation half done is finished by applying again with the new password."""

from __future__ import annotations

import contextlib
import io
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from redis.backoff import NoBackoff
from redis.retry import Retry

from redis_swarm import (
    ConnectionFailed,
    PartlyApplied,
    PermissionDenied,
    Settings,
    Swarm,
    apply_role,
)
from redis_swarm.cli import main

from ._acl_save_proxy import AclSaveProxy
from ._cli import Cli, Out
from ._servers import RedisServer, ServerFactory, free_port, system_redis
from ._waiting import until
from .test_acl_apply_review import _cluster_node, _cluster_of_one, _flags

ROOT_PASSWORD = "root-password-0123456789"
OLD_PASSWORD = "AdminPassword-0123456789xyz"


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


class CutOnSaveProxy(AclSaveProxy):
    """Drops the connection an ACL SAVE comes on (not forwarded): a server lost between the
    ACL SETUSER and its saving."""

    def __init__(self, target_port: int, *, armed: bool = True) -> None:
        self.armed = armed  # (False: forwards ACL SAVE too)
        self.cuts = 0
        super().__init__(target_port)

    def on_save(self) -> bool:
        if not self.armed:
            return True
        self.cuts += 1
        return False


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


def test_a_half_done_rotation_on_one_server_is_finished_with_the_url_as_it_is(
    server: RedisServer, cut_on_save: CutOnSaveProxy
) -> None:
    """The URL's own user set on its one server, which stopped answering before saving it:
    the error names the command that finishes it, which works with the URL as it is (the
    server refusing its password is reached with the new one given)."""
    _admin(server, "ops-one")
    url = _url(server, "ops-one", OLD_PASSWORD, cut_on_save.port) + "?retries=0"
    args = ("acl", "--role", "admin", "--user", "ops-one", "--apply")
    out = Cli(url)(*args, expect=1)
    password = _printed_password(out)
    error = out.stderr.strip().splitlines()[-1]
    assert "swarm acl --role admin --user ops-one --password-stdin --apply" in error, error
    assert _logs_in(_url(server, "ops-one", password))  # (set there, the URL's refused)
    cut_on_save.armed = False
    data = Cli(url).json(*args, "--password-stdin", input=password + "\n")
    assert data["url_user"] is True and "password" not in data
    aclfile = server.args[server.args.index("--aclfile") + 1]
    assert [node["persisted"] for node in data["applied"]] == [f"saved to the aclfile {aclfile}"]
    with _root(server) as root:
        root.execute_command("ACL", "LOAD")  # type: ignore[no-untyped-call]
    assert _logs_in(_url(server, "ops-one", password)) and not _logs_in(url)


def test_demoting_the_urls_own_user_is_refused(server: RedisServer) -> None:
    url = _admin(server, "ops-demote")
    before = _rules(server, "ops-demote")
    out = Cli(url)("acl", "--role", "worker", "--user", "ops-demote", "--apply", expect=2)
    assert out.stdout == ""
    (error,) = out.stderr.splitlines()
    assert error.startswith("error: refusing to make user 'ops-demote', the one the URL")
    assert "Make another admin first" in error and "--demote-self" in error
    assert OLD_PASSWORD not in error
    assert _rules(server, "ops-demote") == before and _logs_in(url)  # (untouched)
    # a shard or coordinator loses the admin rights as well
    for role in ("shard", "coordinator"):
        out = Cli(url)("acl", "--role", role, "--user", "ops-demote", "--apply", expect=2)
        assert "refusing to make user 'ops-demote'" in out.stderr
    assert _rules(server, "ops-demote") == before
    # printing the rules applies nothing: not refused
    Cli(url)("acl", "--role", "worker", "--user", "ops-demote")


@pytest.mark.parametrize("case", ["demoted", "embedded"])
def test_a_refusal_comes_before_the_password_is_asked(
    server: RedisServer, swarm_home: Path, case: str
) -> None:
    """--password-stdin asked for the password (typed at a terminal), then refused what
    needs no password to refuse: the embedded server's own user, the URL's own user demoted.
    Now refused first: nothing is read."""
    if case == "demoted":
        url, role, user = _admin(server, "ops-early"), "worker", "ops-early"
    else:
        url, role, user = "embedded", "admin", "default"
    stdin = io.BytesIO(b"a-new-password-of-24-chars\n")
    result = CliRunner().invoke(
        main,
        ["acl", "--role", role, "--user", user, "--password-stdin", "--apply"],
        input=stdin,
        env={"SWARM_URL": url, "SWARM_HOME": str(swarm_home)},
        catch_exceptions=False,
    )
    assert result.exit_code == 2, result.output
    assert "error: refusing to" in result.stderr, result.stderr
    assert stdin.tell() == 0  # (not a byte of it read)


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


# --- The URL's own user on the embedded server, and on several servers (a master and its
# replica) where one fails: found by a review of the self-rotation.

NEW_PASSWORD = "NewAdminPassword-0123456789xyz"


def test_the_embedded_servers_own_user_is_not_rotated(swarm_home: Path) -> None:
    """The embedded server's ``default`` user given a password locked the home out: an
    embedded URL cannot carry one, so 'swarm status' failed "authentication failed" and
    'swarm down' "refused to shut down (NOAUTH...)", the server left running. Refused now,
    saying why and what to do instead; another user is applied as before."""
    cli = Cli("embedded", env={"SWARM_HOME": str(swarm_home)})
    cli("up")
    out = cli("acl", "--role", "admin", "--user", "default", "--apply", expect=2)
    (error,) = out.stderr.splitlines()
    assert error.startswith("error: refusing to set the password of user 'default' on the "
                            "embedded server"), error  # fmt: skip
    assert "'swarm acl --role admin --user NAME --apply'" in error and out.stdout == ""
    cli("status")  # (the home still reaches its server)
    # a user other than the home's own: applied, and it logs in with its password
    data = cli.json("acl", "--role", "worker", "--user", "w-embedded", "--apply")
    assert data["url_user"] is False and data["applied"]
    socket_url = data["agent_url"].replace("<password>", data["password"])
    assert _logs_in(socket_url)
    cli("status")
    cli("down")  # (stopped: not refused for NOAUTH)


def _node(port: int, user: str | None = None, password: str | None = None) -> redis.Redis:
    # (one attempt: redis-py retries a refused password, with backoff, for seconds)
    once = Retry(NoBackoff(), 0)
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        username=user,
        password=password,
        decode_responses=True,
        retry=once,
    )


def _set_admin(ports: tuple[int, ...], user: str) -> None:
    """``user`` an admin with ``OLD_PASSWORD`` on each node (set as the default user)."""
    for port in ports:
        with contextlib.closing(_node(port)) as node:
            node.execute_command(  # type: ignore[no-untyped-call]
                "ACL", "SETUSER", user, "reset", "on", f">{OLD_PASSWORD}", "~*", "&*", "+@all"
            )


def _takes(port: int, user: str, password: str) -> bool:
    """Whether the node on ``port`` lets ``user`` in with ``password``."""
    with contextlib.closing(_node(port, user, password)) as node:
        try:
            return bool(node.ping())
        except redis.AuthenticationError:
            return False


@pytest.fixture(scope="module")
def cut_cluster(servers: ServerFactory) -> Iterator[tuple[CutOnSaveProxy, int, RedisServer]]:
    """A cluster of two nodes, each with an aclfile and the default user on (the replica and
    the cluster bus log in as it): a master holding every slot that announces the port of a
    ``CutOnSaveProxy`` (disarmed) as its own (CLUSTER NODES, so the apply, dials it there),
    and its replica. The proxy, the master's port and the replica."""

    def aclfile() -> str:
        path = servers.new_dir() / "users.acl"
        path.write_text("user default on nopass ~* &* +@all\n")
        return str(path)

    master_port, replica_port = free_port(), free_port()
    proxy = CutOnSaveProxy(master_port, armed=False)
    master_args = [system_redis(), "--port", str(master_port), "--aclfile", aclfile()]
    _cluster_of_one(servers, [*master_args, "--cluster-announce-port", str(proxy.port)],
                    master_port)  # fmt: skip
    replica_args = [system_redis(), "--port", str(replica_port), "--aclfile", aclfile()]
    with (
        contextlib.closing(_cluster_node(servers, replica_args, replica_port)) as replica,
        contextlib.closing(_node(master_port)) as master,
    ):
        (replica_server,) = [node for node in servers.servers if node.port == replica_port]
        master_id, replica_id = master.cluster("MYID"), replica.cluster("MYID")
        bus_port = master.config_get("cluster-port")["cluster-port"]
        replica.cluster("MEET", "127.0.0.1", master_port, bus_port)
        until(lambda: "master" in _flags(replica, master_id), "the nodes never met")
        replica.cluster("REPLICATE", master_id)
        until(lambda: "slave" in _flags(master, replica_id), "the master never saw its replica")
    yield proxy, master_port, replica_server
    proxy.close()


def _cluster_url(proxy: CutOnSaveProxy, user: str, password: str, timeout: float = 1) -> str:
    """The cluster's URL through the proxy; ``timeout``: how long a node may take to answer
    the apply's PING (1 s: a stopped node is told quickly; a test with no node stopped gives
    a loaded machine's proxy thread more)."""
    return f"redis+cluster://{user}:{password}@127.0.0.1:{proxy.port}?connect_timeout={timeout}"


def test_a_half_done_rotation_of_the_urls_user_is_finished_by_the_command_it_names(
    cut_cluster: tuple[CutOnSaveProxy, int, RedisServer],
) -> None:
    """A self-rotation that failed on one server left it with the new password and the
    others with the old: every later --apply PINGs every node first and stopped at a wrong
    password, so that neither URL could apply again (and a failover to a node with the
    other password locked the admin out). Now a node that refuses the URL's password is
    tried with the new one given, and the error names that command."""
    proxy, master, replica_server = cut_cluster
    replica = replica_server.port or 0
    _set_admin((master, replica), "ops-half")
    cli = Cli(_cluster_url(proxy, "ops-half", OLD_PASSWORD, timeout=10), swarm="acl-self")
    args = ("acl", "--role", "admin", "--user", "ops-half", "--password-stdin", "--apply")
    cuts, proxy.armed = proxy.cuts, True
    try:  # (the master's ACL SAVE cut: it holds the new password, unsaved; it fails there)
        out = cli(*args, input=NEW_PASSWORD + "\n", expect=1)
    finally:
        proxy.armed = False
    assert proxy.cuts == cuts + 1
    error = out.stderr.strip().splitlines()[-1]
    assert "user 'ops-half', the one the URL connects as, was set on" in error, error
    assert "swarm acl --role admin --user ops-half --password-stdin --apply" in error
    assert NEW_PASSWORD not in out.stdout + out.stderr
    assert _takes(master, "ops-half", NEW_PASSWORD) and not _takes(master, "ops-half", OLD_PASSWORD)

    # that command, the URL as it is: the master is reached with the new password
    data = cli.json(*args, input=NEW_PASSWORD + "\n")
    assert data["url_user"] is True and data["skipped"] == []
    where = {f"127.0.0.1:{proxy.port}", f"127.0.0.1:{replica}"}
    persisted = {node["node"]: node["persisted"] for node in data["applied"]}
    assert persisted.keys() == where, persisted
    assert all(how.startswith("saved to the aclfile /") for how in persisted.values()), persisted
    for port in (master, replica):  # (a failover finds the new password there too)
        with contextlib.closing(_node(port)) as node:
            node.execute_command("ACL", "LOAD")  # type: ignore[no-untyped-call]
        assert _takes(port, "ops-half", NEW_PASSWORD), port
        assert not _takes(port, "ops-half", OLD_PASSWORD), port
    assert _logs_in(_cluster_url(proxy, "ops-half", NEW_PASSWORD, timeout=10))


def test_the_urls_user_is_not_rotated_while_a_server_is_out_of_reach(
    cut_cluster: tuple[CutOnSaveProxy, int, RedisServer],
) -> None:
    """A replica that did not answer was skipped, and the rotation 'succeeded': the replica
    kept the old password (a failover to it locked the new one out). For the URL's own user
    it is all or nothing: refused before any server got it. Another user is still applied
    with the replica skipped."""
    proxy, master, node = cut_cluster
    replica = node.port or 0
    _set_admin((master, replica), "ops-whole")
    url = _cluster_url(proxy, "ops-whole", OLD_PASSWORD)
    node.proc.send_signal(signal.SIGSTOP)  # (it takes connections and answers nothing)
    try:
        out = Cli(url, swarm="acl-self")("acl", "--role", "admin", "--user", "ops-whole",
                                         "--apply", expect=1)  # fmt: skip
        other = apply_role(Settings.from_url(url, swarm="acl-self"), "worker", "w-whole")
    finally:
        node.proc.send_signal(signal.SIGCONT)
    (error,) = out.stderr.splitlines()
    assert error.startswith("error: cannot rotate the password of user 'ops-whole', the one "
                            f"the URL connects as, on every server: 127.0.0.1:{replica} did "
                            "not answer"), error  # fmt: skip
    assert "nothing was applied" in error and out.stdout == ""
    for port in (master, replica):
        assert _takes(port, "ops-whole", OLD_PASSWORD), port  # (untouched)
    assert list(other.skipped) == [f"127.0.0.1:{replica}"]
