"""ACL users per role (issue 8): the rules, and what each role can and cannot do on a real
Redis >= 7, through the same error translation the operations use."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from redis_swarm import (
    LeaseLost,
    NotFound,
    PermissionDenied,
    Settings,
    Swarm,
    ValidationError,
    apply_role,
)
from redis_swarm._acl import (
    ROLES,
    WORKER_HIDDEN,
    WORKER_READ_ONLY,
    WORKER_WRITES,
    AclUser,
    acl_user,
    key_patterns,
    keys_members,
    password_hash,
    worker_read_patterns,
)
from redis_swarm._keys import Keys, chunk_key
from redis_swarm._protocol import Call, Cmd, Operation
from redis_swarm.cli import main

from ._servers import RedisServer, ServerFactory, system_redis

SWARM = "team-a"
OTHER = "team-b"
K = Keys(SWARM)
KB = Keys(OTHER)
DIGEST = "ab" * 32


# --- the rules, without a server


def test_every_key_of_the_layout_is_classified() -> None:
    members = set(keys_members())
    assert members == WORKER_READ_ONLY | set(WORKER_WRITES), (
        "a key was added to _keys.Keys: in src/redis_swarm/_ops/_commands.py, add it to "
        "WORKER_READ_ONLY, or to WORKER_WRITES with the write commands a worker runs on it"
    )
    assert not WORKER_READ_ONLY & set(WORKER_WRITES)
    assert WORKER_HIDDEN <= WORKER_READ_ONLY  # a key it may not read, it does not write


def _sample(member: str) -> str:
    """A key of the family ``member`` (its glob with the wildcards filled in)."""
    return key_patterns(SWARM, member).replace("?", "a").replace("*", "x")


def test_worker_patterns_leave_out_the_hidden_keys() -> None:
    """Redis ACL patterns only allow: the worker's readable keys are listed family by family,
    and no family's glob reaches a hidden one (webhooks: an A2A client's credentials)."""
    readable = worker_read_patterns(SWARM)
    for member in keys_members():
        reached = [p for p in readable if fnmatchcase(_sample(member), p)]
        assert bool(reached) is (member not in WORKER_HIDDEN), (member, reached)
    assert fnmatchcase(K.webhooks("t-1"), K.prefix + "*")  # what the old rule let through
    rules = acl_user("worker", SWARM, "w").rules
    keys = [r[1:] for r in rules if r.startswith("~")]
    assert keys == readable and K.prefix + "*" not in keys
    assert f"~{K.prefix}*" in acl_user("shard", SWARM, "s").rules  # it keeps the webhooks


def test_patterns_follow_the_key_layout() -> None:
    assert key_patterns(SWARM, "tasks") == K.tasks
    assert key_patterns(SWARM, "pending") == K.pending("*")
    assert key_patterns(SWARM, "pass_tasks") == "rs:{team-a}:pass:*:tasks"
    assert key_patterns(SWARM, "findings_by") == "rs:{team-a}:findings_by:*:*"
    chunk = key_patterns(SWARM, "chunk")
    assert chunk == "rs:chunk:{team-a.????????????????}:????????????????*"
    assert chunk_key(SWARM, DIGEST).startswith(chunk.split("?")[0])


def test_worker_writes_only_through_its_selectors() -> None:
    rules = acl_user("worker", SWARM, "w").rules
    assert "-@all" in rules and "+@all" not in rules
    assert "+hget" in rules and "+hset" not in rules and "+del" not in rules
    assert f"(~{K.tasks} +hset +hsetnx)" in rules
    assert f"(~{K.inbox('*')} +del +xadd +xtrim)" in rules
    assert not any(K.contexts in r for r in rules if r.startswith("("))
    assert not any(r.startswith("~") and "*}" in r for r in rules)  # no cross-swarm glob


def test_rules_start_with_reset_and_hash_the_password() -> None:
    spec = acl_user("shard", SWARM, "s", "a-password-of-20-chars")
    assert spec.rules[:2] == ("reset", "on")
    assert f"#{password_hash('a-password-of-20-chars')}" in spec.rules
    assert "a-password-of-20-chars" not in spec.line
    assert "a-password-of-20-chars" not in repr(spec)
    assert not spec.generated


def test_generated_passwords_are_strong_and_distinct() -> None:
    a, b = acl_user("worker", SWARM, "w"), acl_user("worker", SWARM, "w")
    assert a.generated and a.password and b.password
    assert a.password != b.password and len(a.password) >= 40


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("boss", SWARM, "u"), "unknown role"),
        (("worker", "a:b", "u"), "swarm name"),
        (("worker", SWARM, "bad user"), "user name"),
        (("worker", SWARM, "default"), "default"),
        (("worker", SWARM, "u", "short"), "at least 16"),
    ],
)
def test_bad_acl_requests_are_refused(args: tuple[Any, ...], fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        acl_user(*args)
    assert fragment in str(info.value)


# --- on a real server


@pytest.fixture(scope="module")
def acl_server(servers: ServerFactory) -> Iterator[RedisServer]:
    """A private Redis >= 7 (ACL key selectors): its users do not leak into other tests."""
    # DEBUG enabled, so that the ACL (not the server config) is what refuses it to non-admins.
    server = servers.start(binary=system_redis(), extra=["--enable-debug-command", "yes"])
    yield server
    server.stop()


def admin_settings(server: RedisServer) -> Settings:
    return Settings.from_url(server.url, swarm=SWARM)


@pytest.fixture(scope="module")
def users(acl_server: RedisServer) -> dict[str, AclUser]:
    wanted: dict[str, tuple[str, str, str]] = {role: (role, SWARM, f"{role}-a") for role in ROLES}
    wanted["shard-b"] = ("shard", OTHER, "shard-b")
    made: dict[str, AclUser] = {}
    for key, (role, swarm, name) in wanted.items():
        applied = apply_role(admin_settings(acl_server), role, name, swarm=swarm)
        assert len(applied.applied) == 1 and "memory only" in applied.applied[0]["persisted"]
        made[key] = applied.user
    return made


@pytest.fixture
def as_user(acl_server: RedisServer, users: dict[str, AclUser]) -> Iterator[Any]:
    opened: list[Swarm] = []
    admin = acl_server.client()
    admin.flushall()
    admin.close()

    def connect(name: str) -> Swarm:
        spec = users[name]
        url = f"redis://{spec.user}:{spec.password}@127.0.0.1:{acl_server.port}"
        swarm = Swarm(url, swarm=spec.swarm)
        opened.append(swarm)
        return swarm

    yield connect
    for swarm in opened:
        swarm.close()


def _one(request: Cmd | Call) -> Operation[Any]:
    reply = yield request
    return reply


def run(swarm: Swarm, *args: Any) -> Any:
    """One raw command through the shell: errors arrive translated, as in operations."""
    return swarm._run(_one(Cmd(*args)))


def denied(swarm: Swarm, *args: Any) -> str:
    with pytest.raises(PermissionDenied) as info:
        run(swarm, *args)
    return str(info.value)


def test_worker_can_work(as_user: Any) -> None:
    """The writes its operations do, as raw commands (its scripts run them with its rights)."""
    w = as_user("worker")
    run(w, "HSET", K.tasks, "t-1", "{}")
    run(w, "ZADD", K.pending("q1"), 1, "t-1")
    run(w, "ZADD", K.leases("q1"), 1, "t-1")
    run(w, "HSETNX", K.findings, "f-1", "{}")
    run(w, "ZADD", K.findings_by("shard", "s1"), 1, "f-1")
    run(w, "HINCRBY", K.pass_counts, "x|claimed", 1)
    run(w, "XADD", K.events, "*", "type", "task.claimed")
    run(w, "HSETNX", K.agents, "w1", "{}")
    run(w, "ZADD", K.presence, 1, "w1")
    run(w, "XADD", K.inbox("w1"), "*", "body", "hi")
    assert len(run(w, "XRANGE", K.inbox("w1"), "-", "+")) == 1
    run(w, "XTRIM", K.inbox("w1"), "MAXLEN", 0)
    run(w, "ZREM", K.pending("q1"), "t-1")
    assert run(w, "HGETALL", K.pass_tasks("P1")) == {}  # reads every key of its swarm
    assert w.ping() >= 0
    info = w.server_info()  # INFO and CONFIG GET refused: HELLO says the version
    assert info.version.startswith(("7.", "8.")) and info.aof_enabled is None
    assert info.appendfsync is None and info.server_time_ms > 0


def test_worker_reads_contexts(as_user: Any) -> None:
    shard = as_user("shard")
    run(shard, "HSET", K.contexts, "shard-1", '{"version": "v1"}')
    run(shard, "HSET", K.context_manifests, "shard-1|v1", "{}")
    run(shard, "ZADD", K.context_history("shard-1"), 1, "v1")
    run(shard, "HSET", K.chunk(DIGEST), "data", b"chunk bytes")
    run(shard, "SET", K.context_copy("shard-1"), b"the current bytes")
    w = as_user("worker")
    assert run(w, "HGET", K.contexts, "shard-1") == b'{"version": "v1"}'
    assert run(w, "HGET", K.context_manifests, "shard-1|v1") == b"{}"
    assert run(w, "ZRANGE", K.context_history("shard-1"), 0, -1) == [b"v1"]
    assert run(w, "HGET", K.chunk(DIGEST), "data") == b"chunk bytes"
    assert run(w, "GETRANGE", K.context_copy("shard-1"), 4, 10) == b"current"


def test_worker_cannot_publish_a_context(as_user: Any) -> None:
    w = as_user("worker")
    message = denied(w, "HSET", K.contexts, "shard-1", "{}")
    assert "no permissions" in message and "swarm acl" in message
    denied(w, "HSET", K.context_manifests, "shard-1|v2", "{}")
    denied(w, "ZADD", K.context_history("shard-1"), 2, "v2")
    denied(w, "HSET", K.chunk(DIGEST), "data", b"x")
    denied(w, "HINCRBY", K.chunk_refs, DIGEST, 1)
    denied(w, "SET", K.context_copy("shard-1"), b"x")
    denied(w, "DEL", K.context_copy("shard-1"))
    # nor through a script, declared key or not
    denied(w, "EVAL", "return redis.call('HSET', KEYS[1], 'o', '{}')", 1, K.contexts)
    denied(w, "EVAL", f"return redis.call('HSET', '{K.contexts}', 'o', '{{}}')", 0)


def test_worker_cannot_delete_or_administer(as_user: Any) -> None:
    w = as_user("worker")
    run(w, "HSET", K.tasks, "t-1", "{}")
    for args in (
        ("DEL", K.tasks),
        ("UNLINK", K.tasks),
        ("RENAME", K.tasks, K.tasks + "x"),
        ("EXPIRE", K.tasks, 1),
        ("FLUSHALL",),
        ("FLUSHDB",),
        ("CONFIG", "GET", "*"),
        ("CONFIG", "SET", "maxmemory", "1"),
        ("KEYS", "*"),
        ("SCAN", 0),
        ("RANDOMKEY",),
        ("DEBUG", "SLEEP", 0),
        ("SHUTDOWN", "NOSAVE"),
        ("ACL", "SETUSER", "evil", "on", "+@all", "~*"),
        ("ACL", "LIST"),
        ("SCRIPT", "FLUSH"),
        ("MONITOR",),
        ("FUNCTION", "FLUSH"),
    ):
        denied(w, *args)
    denied(w, "EVAL", f"return redis.call('DEL', '{K.tasks}')", 0)
    denied(w, "EVAL", "return redis.call('FLUSHALL')", 0)
    assert run(w, "HGET", K.tasks, "t-1") == b"{}"


def test_worker_cannot_touch_another_swarm(as_user: Any) -> None:
    shard_b = as_user("shard-b")
    run(shard_b, "HSET", KB.tasks, "t-b", "{}")
    run(shard_b, "HSET", KB.chunk(DIGEST), "data", b"b")
    w = as_user("worker")
    denied(w, "HGET", KB.tasks, "t-b")
    denied(w, "HSET", KB.tasks, "t-x", "{}")
    denied(w, "HGET", KB.chunk(DIGEST), "data")
    denied(w, "HGET", KB.contexts, "o")
    denied(w, "HGET", "some-unrelated-key", "f")
    denied(w, "XREAD", "STREAMS", KB.events, "0-0")
    # the chunk glob is exact: swarm "team-a.x" is another swarm
    denied(w, "HGET", chunk_key("team-a.x", DIGEST), "data")
    denied(w, "HGET", Keys("team-a.x").tasks, "t")


def test_worker_cannot_read_webhook_credentials(as_user: Any) -> None:
    """A webhook holds the token and credentials an A2A client gave for its endpoint: the
    shard or coordinator that runs 'swarm a2a' keeps and delivers them, a worker password
    gets NOPERM on the key."""
    shard = as_user("shard")
    task = shard.post_task("q1", "look")
    hook = shard.set_webhook(
        task.id,
        "https://example.com/hook",
        token="TOKEN-1",
        auth_scheme="Bearer",
        auth_credentials="SUPERSECRETCRED",
    )
    key = K.webhooks(task.id)
    w = as_user("worker")
    for args in (
        ("HGETALL", key),
        ("HGET", key, hook.id),
        ("HSCAN", key, 0),
        ("HKEYS", key),
        ("EXISTS", key),
    ):
        message = denied(w, *args)
        assert "keys" in message and "SUPERSECRETCRED" not in message
    with pytest.raises(PermissionDenied):
        w.webhooks(task.id)
    # the worker still does its work on the task
    claimed = w.claim("q1", worker="w1")
    assert claimed is not None and claimed.id == task.id
    # the coordinator (an A2A server's user too) reads, claims and removes it
    c = as_user("coordinator")
    (seen,) = c.webhooks(task.id)
    assert seen.auth_credentials == "SUPERSECRETCRED" and seen.token == "TOKEN-1"
    assert c.claim_webhook_event(task.id, hook.id, c.last_event_id())  # the claim's event
    assert c.delete_webhook(task.id, hook.id)


def test_worker_refused_webhooks_is_told_it_may_not_read_them(as_user: Any) -> None:
    """The webhooks operation only reads: a worker refused it was refused a key it may not
    read at all, so the refusal says that (not "a key its role may only read"), and who may."""
    task = as_user("shard").post_task("q1", "look")
    with pytest.raises(PermissionDenied) as info:
        as_user("worker").webhooks(task.id)
    said = str(info.value)
    assert "may not even read" in said and "webhooks" in said, said
    assert "may only read" not in said and "shard or coordinator user may" in said, said


def test_a_worker_may_cancel_but_not_requeue_as_docs_security_says(as_user: Any) -> None:
    """Cancel runs renew's script (rs_task_update), so a worker's rules allow it; requeue
    runs it too, but takes a task out of the dead-letter set, which the script refuses a
    worker (its rights to the queue's settings asked first): docs/security.md's role table
    and threat model say both, and the refusal says whose decision it is."""
    shard, w = as_user("shard"), as_user("worker")
    assert w.cancel(shard.post_task("q1", "drop me").id).status.value == "cancelled"
    dying = shard.post_task("q2", "fail me", max_attempts=1)
    claimed = w.claim("q2", worker="w1")
    assert claimed is not None and claimed.id == dying.id and claimed.token is not None
    w.fail(claimed.id, claimed.token, "broken")
    with pytest.raises(PermissionDenied) as info:
        w.requeue_dead(dying.id)
    said = str(info.value)
    assert "shard or coordinator user may" in said and "another swarm" not in said, said
    assert shard.requeue_dead(dying.id).status.value == "pending"


def test_a_worker_may_not_cancel_a_dead_task_as_docs_security_says(as_user: Any) -> None:
    """Cancelling a dead task takes it out of the dead-letter set, which the script refuses a
    worker: refused, and the task stays dead; a shard drops it for good."""
    shard, w = as_user("shard"), as_user("worker")
    dying = shard.post_task("q3", "fail me", max_attempts=1)
    claimed = w.claim("q3", worker="w1")
    assert claimed is not None and claimed.token is not None
    w.fail(claimed.id, claimed.token, "broken")
    with pytest.raises(PermissionDenied) as info:
        w.cancel(dying.id, dead=True)
    assert "docs/security.md" in str(info.value)  # (which says why: its worker row)
    assert shard.get_task(dying.id).status.value == "dead"
    assert shard.queue_stats()["q3"]["dead"] == 1
    assert shard.cancel(dying.id, dead=True).status.value == "cancelled"
    assert shard.queue_stats()["q3"]["dead"] == 0


def test_shard_owns_its_swarm_only(as_user: Any) -> None:
    s = as_user("shard")
    run(s, "HSET", K.contexts, "o", "{}")
    run(s, "HSET", K.chunk(DIGEST), "data", b"x")
    run(s, "HINCRBY", K.chunk_refs, DIGEST, 1)
    run(s, "DEL", K.contexts, K.chunk(DIGEST))
    for args in (
        ("HGET", KB.tasks, "t"),
        ("HSET", KB.chunk(DIGEST), "data", b"x"),
        ("EXPIRE", K.tasks, 100),  # no operation of its sets a TTL
        ("EVAL", "return 1", 0),
        ("FLUSHALL",),
        ("KEYS", "*"),
        ("SCAN", 0),
        ("CONFIG", "SET", "maxmemory", "1"),
        ("SCRIPT", "KILL"),
        ("ACL", "SETUSER", "evil", "on"),
    ):
        denied(s, *args)


def test_coordinator_is_like_a_shard(as_user: Any) -> None:
    c = as_user("coordinator")
    run(c, "XADD", K.inbox("shard-1"), "*", "kind", "synthesis_request")
    run(c, "HSET", K.contexts, "coord", "{}")
    denied(c, "XADD", KB.inbox("shard-1"), "*", "k", "v")
    denied(c, "FLUSHDB")


def test_admin_can_do_everything(as_user: Any) -> None:
    a = as_user("admin")
    run(a, "SET", KB.tasks, "x")
    assert run(a, "KEYS", "*")
    assert run(a, "CONFIG", "GET", "maxmemory")
    assert run(a, "ACL", "WHOAMI") == b"admin-a"
    assert a.server_info().appendfsync is not None


def test_wrong_password_is_refused_and_never_shown(acl_server: RedisServer) -> None:
    url = f"redis://worker-a:not-the-password-123@127.0.0.1:{acl_server.port}"
    with Swarm(url, swarm=SWARM) as swarm, pytest.raises(PermissionDenied) as info:
        swarm.ping()
    assert "not-the-password-123" not in str(info.value)
    assert "password" in str(info.value)


def test_reapplying_replaces_the_password(acl_server: RedisServer) -> None:
    settings = admin_settings(acl_server)
    first = apply_role(settings, "worker", "rotated").user
    second = apply_role(settings, "worker", "rotated").user
    base = f"127.0.0.1:{acl_server.port}"
    with Swarm(f"redis://rotated:{second.password}@{base}", swarm=SWARM) as ok:
        assert ok.ping() >= 0
    old_url = f"redis://rotated:{first.password}@{base}"
    with Swarm(old_url, swarm=SWARM) as old, pytest.raises(PermissionDenied):
        old.ping()


def test_cli_prints_lines_and_applies(acl_server: RedisServer) -> None:
    runner = CliRunner()
    printed = runner.invoke(main, ["acl", "--role", "worker", "--swarm", SWARM, "--user", "w9"])
    assert printed.exit_code == 0, printed.output
    lines = printed.stdout.splitlines()
    assert lines[-1].startswith("ACL SETUSER w9 reset on #")
    assert any(line.startswith("# password") for line in lines)

    result = runner.invoke(
        main,
        [
            *("--url", acl_server.url, "acl", "--role", "worker", "--swarm", SWARM),
            *("--user", "w9", "--apply", "--json"),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["role"] == "worker" and data["applied"][0]["persisted"]
    password = data["password"]
    assert password not in data["command"]
    url = f"redis://w9:{password}@127.0.0.1:{acl_server.port}"
    with Swarm(url, swarm=SWARM) as swarm:
        run(swarm, "HSET", K.tasks, "t", "{}")
        denied(swarm, "HSET", K.contexts, "o", "{}")
    # a doctor as that worker works, reading every record (the one it wrote, no task, fails
    # it: exit 1, named), and never prints the password
    doctor = runner.invoke(main, ["--url", url, "--swarm", SWARM, "doctor", "--json"])
    assert doctor.exit_code == 1, doctor.output
    report = json.loads(doctor.stdout)
    assert password not in doctor.output and report["corrupt_records"]["task"] == ["t"]
    assert report["corrupt_records"]["index"] == [K.task_index]  # (t was written alone)


def test_cli_suggests_the_url_in_use(acl_server: RedisServer, tmp_path: Path) -> None:
    """The URL to give the agents keeps the scheme, hosts, database and TLS options of the
    one in use, with the new user and a placeholder (never the admin's own password)."""
    runner = CliRunner()
    acl = ["acl", "--role", "worker", "--swarm", SWARM, "--user", "w9", "--redis-version", "7.0"]
    tls = "?ssl_ca_certs=/etc/swarm/ca.crt&ssl_certfile=/etc/swarm/a.crt&ssl_keyfile=/k.key"
    for url, expected in [
        (f"rediss://ops:s3cret@redis.example.com:6380{tls}",
         f"rediss://w9:<password>@redis.example.com:6380{tls}"),
        ("unix://ops:s3cret@/run/redis.sock?db=2", "unix://w9:<password>@/run/redis.sock?db=2"),
        ("rediss+cluster://:s3cret@a:7000,b:7001", "rediss+cluster://w9:<password>@a:7000,b:7001"),
        ("redis://[::1]:6390/3", "redis://w9:<password>@[::1]:6390/3"),
        ("embedded", f"unix://w9:<password>@{tmp_path}/redis.sock"),
    ]:  # fmt: skip
        out = runner.invoke(main, ["--url", url, "--home", str(tmp_path), *acl])
        assert out.exit_code == 0, out.output
        assert f"# agents connect with: {expected}\n" in out.stdout and "s3cret" not in out.stdout
        home = ["--home", str(tmp_path)]
        data = json.loads(runner.invoke(main, ["--url", url, *home, "--json", *acl]).stdout)
        assert data["agent_url"] == expected
    # the suggestion works, its placeholder filled in
    applied = runner.invoke(
        main, ["--url", acl_server.url, "--json", "acl", "--role", "worker", "--swarm", SWARM,
               "--user", "w10", "--apply"],
    )  # fmt: skip
    data = json.loads(applied.stdout)
    with Swarm(data["agent_url"].replace("<password>", data["password"]), swarm=SWARM) as swarm:
        assert swarm.ping() >= 0 and swarm.last_event_id()


def test_cli_refuses_an_empty_swarm_as_the_global_option_does() -> None:
    runner = CliRunner()
    version = ("--redis-version", "7.0")
    local = runner.invoke(
        main, ["acl", "--role", "worker", "--swarm", "", "--user", "x", *version],
        env={"SWARM_NAME": "legal"},
    )  # fmt: skip
    assert local.exit_code == 2 and local.stdout == "", local.output  # a bad option
    assert "swarm name is empty" in local.stderr
    global_ = runner.invoke(
        main, ["--swarm", "", "acl", "--role", "worker", "--user", "x", *version]
    )
    assert (global_.exit_code, global_.stderr) == (2, local.stderr)


def test_cli_given_password_is_never_printed(acl_server: RedisServer) -> None:
    secret = "correct-horse-battery-staple"
    result = CliRunner().invoke(
        main,
        [
            *("--url", acl_server.url, "acl", "--role", "shard", "--user", "s9"),
            *("--password-stdin", "--apply"),
        ],
        input=secret + "\n",
    )
    assert result.exit_code == 0, result.output
    assert secret not in result.output
    url = f"redis://s9:{secret}@127.0.0.1:{acl_server.port}"
    with Swarm(url, swarm="default") as swarm:
        assert swarm.ping() >= 0


def test_cli_apply_without_admin_rights_is_one_line(
    acl_server: RedisServer, users: dict[str, AclUser]
) -> None:
    spec = users["shard"]
    url = f"redis://{spec.user}:{spec.password}@127.0.0.1:{acl_server.port}"
    result = CliRunner().invoke(
        main, ["--url", url, "acl", "--role", "worker", "--user", "x1", "--apply"]
    )
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert "an admin user's URL" in result.output and (spec.password or "?") not in result.output


def test_raw_client_sees_noperm(acl_server: RedisServer, users: dict[str, AclUser]) -> None:
    """Sanity check of the fixture itself with plain redis-py."""
    spec = users["worker"]
    client = redis.Redis(port=acl_server.port or 0, username=spec.user, password=spec.password)
    try:
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.hset(K.contexts, "o", "{}")
    finally:
        client.close()


# --- the real operations, per role


def test_worker_runs_the_real_operations(as_user: Any) -> None:
    shard = as_user("shard")
    text = "".join(f"line {i}: evidence {i * 7}\n" for i in range(2000))
    info = shard.publish_context("shard-1", text, source="corpus.md")
    shard.register("shard", name="shard-1")
    worker = as_user("worker")
    me = worker.register("worker", name="w-1", model="haiku")
    shard.post_task("beats", "the task a heartbeat names", task_id="t-1")
    worker.heartbeat(me.id, current_task="t-1")  # (it checks that the task exists)
    assert worker.get_context("shard-1") == text  # the pointer and the copy together
    assert worker.get_context_bytes("shard-1", version=info.version) == text.encode()
    assert worker.context_info("shard-1").version == info.version
    assert [c.owner for c in worker.contexts()] == ["shard-1"]
    assert worker.read_context("shard-1", lines=(10, 11)).text.startswith("line 9:")
    assert worker.search_context("shard-1", "evidence 70\n", max_hits=1)
    shard.send(me.id, "look at lines 10-20", sender="shard-1")
    assert [m.body for m in worker.inbox(me.id)] == ["look at lines 10-20"]
    worker.send("shard-1", "done", sender=me.id)
    worker.broadcast("hello all", sender=me.id)
    assert any(e.type == "agent.joined" for e in worker.events())
    assert {a.id for a in worker.agents()} >= {me.id, "shard-1"}
    worker.deregister(me.id)  # drops its inbox: a DEL the worker selector allows


def test_worker_cannot_publish_through_the_operation(as_user: Any) -> None:
    worker = as_user("worker")
    with pytest.raises(PermissionDenied) as info:
        worker.publish_context("worker-notes", "some text", source="notes.md")
    assert "swarm acl" in str(info.value)
    shard = as_user("shard")
    with pytest.raises(NotFound):
        shard.context_info("worker-notes")  # nothing was half-published


def test_shard_republishes_and_old_chunks_are_released(as_user: Any) -> None:
    shard = as_user("shard")
    for i in range(5):  # past the kept versions: chunk_release deletes chunks
        shard.publish_context("shard-1", f"version {i}\n" * 1000, source="v.md")
    assert len(shard.context_versions("shard-1")) == 3


def test_other_swarm_shard_cannot_read_this_swarm(as_user: Any) -> None:
    as_user("shard").publish_context("shard-1", "secret plan", source="plan.md")
    other = as_user("shard-b")
    outsider = Swarm(other.settings.with_swarm(SWARM))
    try:
        with pytest.raises(PermissionDenied):
            outsider.get_context("shard-1")
    finally:
        outsider.close()


def test_worker_claims_renews_and_reports(as_user: Any) -> None:
    shard = as_user("shard")
    shard.publish_context("shard-1", "fact one\nfact two\n", source="facts.md")
    posted = shard.post_task("if.search_pass1", "find facts", {"lines": [1, 2]}, pass_name="P1")
    shard.post_task("if.search_pass1", "and more", pass_name="P1")
    worker = as_user("worker")
    task = worker.claim("if.search_pass1", worker="w-1")
    assert task is not None and task.id == posted.id
    worker.renew(task.id, task.token, lease_s=60)
    assert worker.read_context("shard-1", lines=(1, 1)).text == "fact one\n"
    finding = worker.report(
        task.id, task.token, {"summary": "two facts", "confidence": 0.9}, worker="w-1"
    )
    assert worker.get_finding(finding.id).summary == "two facts"
    second = worker.claim(["if.search_pass1"], worker="w-1")
    assert second is not None
    worker.fail(second.id, second.token, "model timed out")
    assert worker.queue_stats()["if.search_pass1"]["completed"] == 1
    assert worker.pass_stats("P1")
    assert [f.id for f in worker.findings(pass_name="P1").items] == [finding.id]
    assert worker.get_task(task.id).status == "completed"
    assert worker.list_tasks(queue="if.search_pass1").items
    worker.reap()
    # the shard synthesizes; the worker reads it (listing runs a script over the index)
    synthesis = shard.synthesize("shard-1", "P1", "one synthesis", [finding.id])
    assert [s.id for s in worker.syntheses(pass_name="P1").items] == [synthesis.id]
    with pytest.raises(PermissionDenied):
        worker.publish_context("shard-1", "overwritten", source="evil.md")


def test_worker_waits_for_its_next_task_behind_its_report(as_user: Any) -> None:
    """Under the worker role: woken for its task, a report that waits for the next sends
    the wait and the claim behind it (its own wake list: BLPOP, and RPUSH/PEXPIRE when a
    refused report ends that wait); nothing of it is refused."""
    shard, worker = as_user("shard"), as_user("worker")
    assert worker.claim("q", worker="w-1") is None
    timer = threading.Timer(0.3, lambda: shard.post_task("q", "first"))
    timer.start()
    task = worker.claim("q", worker="w-1", wait_s=10)
    timer.join()
    assert task is not None
    timer = threading.Timer(0.3, lambda: shard.post_task("q", "second"))
    timer.start()
    _, following = worker.report(
        task.id, task.token, {"summary": "1"}, worker="w-1", claim_next="q", wait_s=10
    )
    timer.join()
    assert following is not None and following.description == "second"
    forged = f"{task.token.partition('.')[0]}.{'x' * 22}"
    with pytest.raises(LeaseLost):  # refused: its push to the worker's own list is allowed
        worker.report(
            following.id, forged, {"summary": "x"}, worker="w-1", claim_next="q", wait_s=10
        )
    _, after = worker.report(
        following.id, following.token, {"summary": "2"}, worker="w-1", claim_next="q", wait_s=0.3
    )
    assert after is None and worker.queue_stats()["q"]["completed"] == 2


def test_worker_asks_for_peer_assist_and_another_worker_answers(as_user: Any) -> None:
    """Peer assist under the worker role: asking posts a question (task_post) into 'assist';
    another worker claims it and answers; the asker's own task lists the answer."""
    shard = as_user("shard")
    shard.post_task("main", "the blocked work")
    asker, helper = as_user("worker"), as_user("worker")
    task = asker.claim("main", worker="w-1")
    assert task is not None

    def answer_one() -> None:
        question = helper.claim("assist", worker="w-2", wait_s=10)
        assert question is not None and question.description == "which line says X?"
        helper.answer(question.id, question.token, "line 42", worker="w-2")

    thread = threading.Thread(target=answer_one)
    thread.start()
    got = asker.ask("assist", "which line says X?", asker=task, timeout_s=20)
    thread.join()
    assert (got.text, got.answerer, got.asker_task) == ("line 42", "w-2", task.id)
    assert [a.text for a in asker.answers_for(task.id)] == ["line 42"]
    asker.report(task.id, task.token, {"summary": "done with help"}, worker="w-1")
    # what asking gives the role is the question's writes; deleting and the shard's keys
    # stay refused
    denied(asker, "DEL", K.task_data)
    denied(asker, "HDEL", K.dedupe, f"assist|{got.question_id}")
    denied(asker, "HSET", K.queue_settings, "assist|max_abandons", "1")
    denied(asker, "HSET", K.syntheses, "s-1", "{}")
