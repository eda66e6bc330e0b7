"""What a walk through docs/security.md and docs/tasks.md found, on a real Redis >= 7 with the
per-role users `swarm acl` makes: a worker's report of a task dead-lettered meanwhile (the
first report wins, docs/tasks.md), a report left half-stored by a refused command and its
retry, the wording of refusals and lease losses, `swarm acl --apply --redis-version`, and a
finding's "usage" key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from redis_swarm import PermissionDenied, Settings, Swarm, ValidationError, apply_role
from redis_swarm._acl import AclUser
from redis_swarm._errors import AlreadyCompleted, Conflict, LeaseLost

from ._cli import Cli
from ._servers import RedisServer, old_worker_url, role_users, user_url

SWARM = "walk-a"


@pytest.fixture(scope="module")
def users(acl_server: RedisServer) -> dict[str, AclUser]:
    return role_users(acl_server, SWARM, "walk")


def _as(server: RedisServer, user: AclUser) -> Swarm:
    return Swarm(user_url(server, user), swarm=SWARM)


def _dead(shard: Swarm, worker: Swarm, queue: str) -> tuple[str, str]:
    """A task of ``queue`` the worker claimed and failed without retry: its id and token."""
    task = shard.post_task(queue, "die", max_attempts=1)
    claimed = worker.claim(queue, worker="wz")
    assert claimed is not None and claimed.id == task.id and claimed.token is not None
    worker.fail(claimed.id, claimed.token, "timeout", retry=False)
    assert shard.get_task(task.id).status.value == "dead"
    return task.id, claimed.token


def test_a_worker_reports_a_task_dead_lettered_meanwhile(
    acl_server: RedisServer, users: dict[str, AclUser]
) -> None:
    """docs/tasks.md: the first report wins whatever the age of its token, even when the task
    was dead-lettered meanwhile; a worker user's report did not (NOPERM on the dead set, its
    finding left stored and counted nowhere). Its lease's renew, release and fail are
    refused as the lease's (LeaseLost), not by the ACL."""
    with _as(acl_server, users["shard"]) as shard, _as(acl_server, users["worker"]) as worker:
        task_id, token = _dead(shard, worker, "walk-q1")
        with pytest.raises(LeaseLost, match="is dead"):
            worker.renew(task_id, token)
        with pytest.raises(LeaseLost, match="is dead"):
            worker.release(task_id, token)
        with pytest.raises(LeaseLost, match="is dead"):
            worker.fail(task_id, token, "again")
        found = worker.report(task_id, token, {"summary": "found it after all"}, worker="wz")
        task = shard.get_task(task_id)
        assert task.status.value == "completed" and task.finding_id == found.id
        assert [f.id for f in shard.findings(queue="walk-q1")] == [found.id]
        assert shard.queue_stats()["walk-q1"]["dead"] == 0
        assert shard.check_counters().ok
        # the same through the CLI, as docs/tasks.md's walk ran it
        task_id, token = _dead(shard, worker, "walk-q2")
        cli = Cli(user_url(acl_server, users["worker"]), SWARM)
        cli("task", "report", task_id, "--token", token, "--summary", "late", "--worker", "wz")
        assert shard.get_task(task_id).status.value == "completed"


def test_a_report_stopped_half_way_is_completed_by_its_retry(
    acl_server: RedisServer, users: dict[str, AclUser]
) -> None:
    """A script is not rolled back: a report refused a command after it stored its finding
    left the finding stored and its task dead. Its retry under the same finding id answered
    success from the stored finding while the task stayed dead; it completes the task now.
    The refusal, a key of the user's own swarm, blames the role's rules, not another swarm."""
    old = Swarm(old_worker_url(acl_server, SWARM, "walk-old-worker"), swarm=SWARM)
    with _as(acl_server, users["shard"]) as shard, _as(acl_server, users["worker"]) as worker:
        task_id, token = _dead(shard, old, "walk-q3")
        fid = worker.new_finding_id()
        with pytest.raises(PermissionDenied) as info:
            old.report(task_id, token, {"summary": "s"}, worker="wz", finding_id=fid)
        said = str(info.value)
        assert "another swarm" not in said, said
        assert "the rules of the user's role lack a command" in said, said
        assert "swarm acl --role ROLE --user NAME --apply" in said and "report a bug" in said
        assert shard.get_finding(fid).task_id == task_id  # (stored before the refusal)
        assert shard.get_task(task_id).status.value == "dead"
        with pytest.raises(PermissionDenied):  # (the same rules: refused again, not success)
            old.report(task_id, token, {"summary": "s"}, worker="wz", finding_id=fid)
        with pytest.raises(Conflict, match="holds another finding"):  # not this one
            worker.report(task_id, token, {"summary": "other"}, worker="wz", finding_id=fid)
        assert shard.get_task(task_id).status.value == "dead"
        stored = shard.get_finding(fid)
        again = worker.report(task_id, token, {"summary": "s"}, worker="wz", finding_id=fid)
        assert again.id == fid and again.created_at == stored.created_at
        task = shard.get_task(task_id)
        assert task.status.value == "completed" and task.finding_id == fid
        assert [f.id for f in shard.findings(queue="walk-q3")] == [fid]
        assert shard.check_counters().ok
        # and a retry now answers the stored finding, changing nothing
        assert worker.report(task_id, token, {"summary": "s"}, finding_id=fid).id == fid
        # Half-stored, then the task settled by another report: the retry is a late report,
        # its finding kept superseded and indexed (a copy: the stored finding says "not
        # superseded", which a worker cannot rewrite; tests/test_report_half_stored_late.py).
        task_id, token = _dead(shard, old, "walk-q4")
        fid = worker.new_finding_id()
        with pytest.raises(PermissionDenied):
            old.report(task_id, token, {"summary": "s"}, worker="wz", finding_id=fid)
        shard.requeue_dead(task_id)
        other = must_claim(worker, "walk-q4")
        winner = worker.report(other.id, other.token, {"summary": "first"})
        with pytest.raises(AlreadyCompleted) as kept:
            worker.report(task_id, token, {"summary": "s"}, worker="wz", finding_id=fid)
        assert kept.value.finding_id is not None
        assert shard.get_finding(kept.value.finding_id).superseded
        listed = {f.id for f in shard.findings(queue="walk-q4")}
        assert listed == {winner.id, kept.value.finding_id}
    old.close()


def must_claim(worker: Swarm, queue: str) -> Any:
    claimed = worker.claim(queue, worker="wb")
    assert claimed is not None and claimed.token is not None
    return claimed


def test_a_finding_key_usage_is_refused_by_the_core(swarm: Swarm) -> None:
    """Swarm.report kept a finding's "usage" in extra, counted nowhere (the CLI alone refused
    it); the core refuses it, pointing at the report's own usage, and stores nothing."""
    task = swarm.post_task("walk-u", "d")
    claimed = swarm.claim("walk-u", worker="w")
    assert claimed is not None and claimed.token is not None
    with pytest.raises(ValidationError, match=r'holds "usage".*usage= in Python'):
        swarm.report(task.id, claimed.token, {"summary": "s", "usage": {"cost_usd": 0.1}})
    assert swarm.get_task(task.id).status.value == "claimed" and not swarm.findings().items


@pytest.mark.parametrize("given", ["6.2", "7.2"])
def test_an_apply_uses_the_servers_version_and_refuses_another(
    acl_server: RedisServer, given: str
) -> None:
    """`swarm acl --apply --redis-version X` applied X's rules, not the server's: 6.2's on a
    7.0 server silently (a worker without its selectors), 7.2's refused by ACL SETUSER in
    Redis's raw words. An apply asks the servers and refuses another version, making no user."""
    user = f"walk-v{given.replace('.', '')}"
    cli = Cli(acl_server.url, SWARM)
    out = cli("acl", "--role", "worker", "--user", user, "--redis-version", given, "--apply",
              expect=2)  # fmt: skip
    admin = acl_server.client()
    try:
        server = ".".join(admin.info("server")["redis_version"].split(".")[:2])
        assert admin.acl_getuser(user) is None
    finally:
        admin.close()
    assert f"asked for Redis {given}, but the servers run {server}" in out.stderr, out
    assert "Leave --redis-version (version=) out" in out.stderr, out
    assert "Unknown command" not in out.stderr, out
    with pytest.raises(ValidationError, match="but the servers run"):
        apply_role(Settings.from_url(acl_server.url, swarm=SWARM), "worker", user,
                   version=(int(given[0]), int(given[2])))  # fmt: skip
    # the servers' own version, given, is theirs: applied; without --apply, any is printed
    major, minor = (int(part) for part in server.split("."))
    made = apply_role(Settings.from_url(acl_server.url, swarm=SWARM), "worker", user,
                      version=(major, minor))  # fmt: skip
    assert made.version == (major, minor) and made.persisted
    printed = cli("--json", "acl", "--role", "worker", "--user", user, "--redis-version", given)
    assert printed.json()["redis_version"] == given and printed.json()["applied"] == []


def test_a_worker_refused_publishing_a_context_is_told_a_shard_publishes(
    acl_server: RedisServer, users: dict[str, AclUser], tmp_path: Path
) -> None:
    """A worker's `swarm context publish` said only that it "may not run this operation's
    function": it says whose job publishing is, as the other role refusals do."""
    source = tmp_path / "notes.md"
    source.write_text("line one\n")
    cli = Cli(user_url(acl_server, users["worker"]), SWARM)
    said = cli("context", "publish", "--owner", "shard-1", str(source), expect=1).stderr
    assert "a worker may not publish a context" in said, said
    assert "a shard or coordinator user may" in said, said


def test_a_lease_released_then_claimed_again_is_said_ended_not_expired(swarm: Swarm) -> None:
    """After a release and another worker's claim, the old holder's renew and fail said its
    lease "expired": it was released. Said "ended" (the record does not tell which)."""
    swarm.post_task("walk-r", "d")
    first = swarm.claim("walk-r", worker="w1")
    assert first is not None and first.token is not None
    swarm.release(first.id, first.token)
    assert swarm.claim("walk-r", worker="w2") is not None
    for refused in (swarm.renew, lambda i, t: swarm.fail(i, t, "e")):
        with pytest.raises(LeaseLost) as info:
            refused(first.id, first.token)
        said = str(info.value)
        assert f"the lease of attempt 1 on task {first.id} ended" in said, said
        assert "expired and attempt" not in said and "attempt 2 holds it now" in said, said


def test_an_admins_refusal_puts_the_admin_url_in_swarm_url_not_on_the_command_line(
    acl_server: RedisServer, users: dict[str, AclUser]
) -> None:
    """The hint of a command only an admin may run said `--url ADMIN_URL`, which shows the
    admin's password in ps and the shell's history: it says SWARM_URL."""
    cli = Cli(user_url(acl_server, users["worker"]), SWARM)
    said = cli("acl", "--role", "worker", "--user", "walk-x", "--apply", expect=1).stderr
    assert f"SWARM_URL=redis://ADMIN:PASSWORD@127.0.0.1:{acl_server.port}" in said, said
    assert "--url redis://ADMIN" not in said, said
    nobody = Cli(f"redis://walk-nosuch:{'p' * 20}@127.0.0.1:{acl_server.port}", SWARM)
    said = nobody("acl", "--role", "worker", "--user", "walk-y", "--apply", expect=1).stderr
    assert "'SWARM_URL=ADMIN_URL swarm acl --role admin --user walk-nosuch" in said, said
    assert "swarm --url" not in said, said


def test_a_worker_cannot_requeue_through_a_settings_key_of_its_choosing(
    acl_server: RedisServer, users: dict[str, AclUser]
) -> None:
    """The requeue's refusal asked the caller's rights on KEYS[11] as sent: a worker calling
    the script with a key it may write there (the tasks hash) passed it, and put the dead
    task back. The settings key is named from the tasks key now."""
    import redis

    from redis_swarm._keys import Keys
    from redis_swarm._ops.tasks import RECORD_LIMITS
    from redis_swarm._scripts import fcall

    with _as(acl_server, users["shard"]) as shard, _as(acl_server, users["worker"]) as worker:
        task_id, _ = _dead(shard, worker, "walk-q9")
        k, q = Keys(SWARM), "walk-q9"
        keys = [k.tasks, k.counts, k.pass_counts, k.events, k.pending(q), k.delayed(q)]
        keys += [k.leases(q), k.dead(q), k.task_data, k.wake(q), k.tasks, k.presence]
        user = users["worker"]
        raw: Any = redis.Redis(  # (execute_command: untyped)
            port=acl_server.port or 0, username=user.user, password=user.password
        )
        args = ("0", "1000", "requeue", task_id, q, "o-x", "", RECORD_LIMITS)
        with pytest.raises(redis.ResponseError, match="may not take a task out of the dead-letter"):
            raw.execute_command(*fcall("task_update", tuple(keys), args))
        raw.close()
        assert shard.get_task(task_id).status.value == "dead"
