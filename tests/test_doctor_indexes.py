"""``swarm doctor`` names the entries an index is wrong by, and ``--repair`` puts them right:
the records an index lacks (each id, the first ten and a count of the rest), re-added at the
score their script gave them (the record's ``created_at``), and the entries of records no
longer stored (what deleting a damaged record leaves), removed. A completed task whose finding
was deleted is named with what to do, and the damaged-finding repair says that consequence.
Every test writes the damage for real, with raw Redis commands."""

from __future__ import annotations

import contextlib
import shlex
from typing import Any

import pytest

from redis_swarm import AlreadyCompleted, PermissionDenied, Swarm
from redis_swarm._acl import acl_user
from redis_swarm._models import RECORD_KINDS, RecordDamage
from redis_swarm._protocol import Batch, Call, Cmd, Operation, items_of

from ._cli import Cli
from ._handles import must
from ._role_users import role_urls
from ._servers import (
    RedisServer,
    ServerFactory,
    old_worker_url,
    role_users,
    system_redis,
    user_url,
)


def _work(swarm: Swarm, n: int, pass_name: str = "P1") -> list[tuple[str, str]]:
    """``n`` tasks of ``pass_name`` posted by a shard and reported: (task id, finding id)."""
    for i in range(n):
        swarm.post_task("q", f"{pass_name} {i}", pass_name=pass_name, parent="shard")
    done = []
    for _ in range(n):
        task = must(swarm.claim("q", worker="w"))
        done.append((task.id, swarm.report(task.id, task.token, {"summary": "found"}).id))
    return done


def _scores(raw: Any, key: str) -> dict[str, float]:
    return dict(raw.zrange(key, 0, -1, withscores=True))


def _human(cli: Cli, *args: str, expect: int = 1) -> str:
    return " ".join(cli("doctor", *args, expect=expect).stdout.split())


def test_the_records_an_index_lacks_are_named_and_repair_adds_them_back(cli: Cli, raw: Any) -> None:
    with Swarm(cli.url, swarm="test") as swarm:
        done = _work(swarm, 12)
        k = swarm.keys
        tasks, findings = _scores(raw, k.task_index), _scores(raw, k.finding_index)
        by_pass = _scores(raw, k.findings_by("pass", "P1"))
        created = {t.id: t.created_at for t in swarm.list_tasks().items}
        raw.delete(k.task_index)  # every task lost from it
        lost = [f for _, f in done[:3]]
        raw.zrem(k.finding_index, *lost)
        raw.zrem(k.findings_by("pass", "P1"), lost[0])
        assert swarm.list_tasks().items == ()  # (what the damage costs)
        assert {f.id for f in swarm.findings().items} == set(findings) - set(lost)

    report = cli.json("doctor", expect=1)
    assert report["ok"] is False
    assert report["corrupt_records"]["index"] == sorted(
        [k.task_index, k.finding_index, k.findings_by("pass", "P1")]
    )
    rows = {row["index"]: row for row in report["index_entries"]}
    task_row = rows[k.task_index]
    assert task_row["lacking_count"] == 12 and task_row["lacking"] == sorted(tasks)[:10]
    assert rows[k.finding_index]["lacking"] == sorted(lost)
    assert rows[k.findings_by("pass", "P1")]["lacking"] == [lost[0]]
    assert all(row["dangling_count"] == 0 for row in rows.values())
    human = _human(cli)
    assert f"{k.task_index} lacks 12: {', '.join(sorted(tasks)[:10])} and 2 more" in human
    assert f"{k.finding_index} lacks 3: {', '.join(sorted(lost))}" in human
    assert "swarm doctor --repair" in human

    repaired = cli.json("doctor", "--repair")  # the check after it finds nothing: exit 0
    assert repaired["ok"] is True and "index_entries" not in repaired
    did = {row["index"]: row for row in repaired["indexes_repaired"]}
    assert did[k.task_index]["lacking_count"] == 12
    assert did[k.finding_index]["lacking"] == sorted(lost)
    # each back at the score its script gave it: the record's creation time
    assert _scores(raw, k.task_index) == tasks == {t: float(c) for t, c in created.items()}
    assert _scores(raw, k.finding_index) == findings
    assert _scores(raw, k.findings_by("pass", "P1")) == by_pass
    listed = cli.json("task", "list", "--limit", "100")
    items = listed["items"] if isinstance(listed, dict) else listed
    assert {t["id"] for t in items} == set(tasks)
    with Swarm(cli.url, swarm="test") as swarm:
        assert {f.id for f in swarm.findings().items} == set(findings)
    assert cli.json("doctor")["ok"] is True
    assert "nothing it could repair" in _human(cli, "--repair", expect=0)


def test_entries_of_deleted_records_are_named_and_repair_removes_them(
    swarm: Swarm, raw: Any
) -> None:
    done = _work(swarm, 3)
    k = swarm.keys
    gone_task = swarm.post_task("q", "deleted by hand", pass_name="P1").id
    (task_id, finding_id), kept = done[0], done[1:]
    raw.hdel(k.tasks, gone_task)  # its entries stay behind, dangling
    raw.hdel(k.findings, finding_id)
    # an index every record of which was deleted: met by no record, named by the counters
    swarm.post_task("q2", "alone", pass_name="P2")
    p2 = must(swarm.claim("q2", worker="w"))
    p2_finding = swarm.report(p2.id, p2.token, {"summary": "x"}).id
    raw.hdel(k.findings, p2_finding)

    from redis_swarm._models import IndexEntries  # (here: each test fails on its own)

    damage = swarm.record_damage()
    entries = {e.index: e for e in damage.indexes}
    assert entries[k.task_index] == IndexEntries(k.task_index, {}, (gone_task,))
    assert entries[k.pass_tasks("P1")].dangling == (gone_task,)
    assert entries[k.finding_index].dangling == tuple(sorted([finding_id, p2_finding]))
    for dimension, value in (("queue", "q"), ("pass", "P1"), ("shard", "shard")):
        assert entries[k.findings_by(dimension, value)].dangling == (finding_id,)
    assert entries[k.findings_by("pass", "P2")].dangling == (p2_finding,)
    assert damage.found["index"] == sorted(entries)
    # the completed tasks whose finding was deleted: their result is lost
    assert damage.lost_findings == {task_id: finding_id, p2.id: p2_finding}
    assert swarm.corrupt_records()["index"] == sorted(entries)

    repaired = swarm.repair_indexes()
    assert {e.index: e.dangling for e in repaired} == {
        key: e.dangling for key, e in entries.items()
    }
    for key, e in entries.items():
        assert not [i for i in e.dangling if raw.zscore(key, i) is not None]
    after = swarm.record_damage()
    assert after.indexes == () and after.found["index"] == []
    assert after.lost_findings == damage.lost_findings  # (no repair brings a result back)
    assert [f.id for f in swarm.findings().items] == [f for _, f in kept]
    assert swarm.repair_indexes() == ()


def test_a_task_whose_finding_was_deleted_is_named_with_what_to_do(cli: Cli, raw: Any) -> None:
    with Swarm(cli.url, swarm="test") as swarm:
        (task_id, finding_id), _ = _work(swarm, 2)
        k = swarm.keys
    raw.hset(k.findings, finding_id, "not json {")  # a damaged finding
    human = _human(cli)
    # its repair row says what deleting it costs, with the command as a shell runs it
    hdel = f"HDEL {shlex.quote(k.findings)} ID"
    assert hdel in human and "leaves its task completed with no result" in human
    assert "findings_lost" not in cli.json("doctor", expect=1)  # (still stored, damaged)

    raw.hdel(k.findings, finding_id)  # the repair named
    report = cli.json("doctor", "--repair", expect=1)
    assert report["corrupt_records"]["finding"] == [] and "index_entries" not in report
    assert report["findings_lost"] == {
        "count": 1,
        "tasks": [{"task": task_id, "finding": finding_id}],
    }
    human = _human(cli)
    assert f"task {task_id} (finding {finding_id})" in human
    assert "post each task again to redo its work" in human

    # what the row says to do: post it again (the lost one deleted: the doctor is satisfied)
    task = cli.json("task", "show", task_id)
    again = cli.json("task", "post", task["queue"], task["description"], "--pass", "P1")
    assert again["id"] != task_id and task["pass_name"] == "P1"
    raw.hdel(k.tasks, task_id)
    raw.hdel(k.task_data, task_id)
    assert cli.json("doctor", expect=1)["index_entries"]  # (its entries dangle now)
    assert cli.json("doctor", "--repair")["ok"] is True


class _Counting(Swarm):
    """A real handle counting the requests it sends (a batch is one round trip), and the
    commands in them."""

    on = False  # (counting: since ``counting``)
    trips = scans = 0
    commands: dict[str, int]

    def _attempt(self, request: Any) -> Any:
        if self.on and isinstance(request, Batch | Cmd | Call):
            self.trips += 1
            first = items_of(request)[0]
            if isinstance(first, Cmd) and first.args[0] == "HSCAN":
                self.scans += 1
            for item in items_of(request):
                name = item.script if isinstance(item, Call) else str(item.args[0]).upper()
                self.commands[name] = self.commands.get(name, 0) + 1
        return super()._attempt(request)

    def counting(self) -> None:
        self.trips = self.scans = 0
        self.commands = {}
        self.on = True


def test_the_doctor_reads_a_big_swarm_in_batches(redis_url: str, raw: Any) -> None:
    """20,000 tasks, their task index lost: named and repaired in round trips of a thousand
    records or more each (the records an index lacks looked for again with HEXISTS, ten
    thousand a round trip, their scores as the scan read them: no record is read twice), the
    repair's writes ten calls of a thousand ids a round trip."""
    n = 20_000
    swarm = _Counting(redis_url, swarm="test")
    with swarm:
        k = swarm.keys
        for start in range(0, n, 1_000):
            specs = [
                {"queue": "q", "description": f"t{i}", "pass_name": "P"}
                for i in range(start, start + 1_000)
            ]
            swarm.post_tasks(specs)
        created = _scores(raw, k.task_index)
        raw.delete(k.task_index)
        swarm.counting()
        damage = swarm.record_damage()
        assert {e.index: len(e.lacking) for e in damage.indexes} == {k.task_index: n}
        assert {e.index: e.lacking for e in damage.indexes}[k.task_index] == created
        # the scan: every hash side by side, a thousand records of each a round trip (HSCAN
        # COUNT 1,000 returns that many or more); the rest a handful: 30 in all here (it
        # took 48 when each record lacked was read again, a thousand a round trip)
        assert swarm.scans <= n // 1_000 + 1, (swarm.scans, swarm.commands)
        assert swarm.trips <= n // 1_000 + 15, (swarm.trips, swarm.commands)
        assert "HGET" not in swarm.commands, swarm.commands  # (no record read again)
        assert swarm.commands["HEXISTS"] == n  # (each lacked record looked for once)
        swarm.counting()
        repaired = swarm.repair_indexes()
        assert [len(e.lacking) for e in repaired] == [n]
        assert swarm.commands["index_repair"] == n // 1_000
        assert swarm.trips <= n // 1_000 + 15 + 2, (swarm.trips, swarm.commands)
        assert _scores(raw, k.task_index) == created and swarm.record_damage().indexes == ()


def test_a_shard_repairs_the_indexes_a_worker_may_not(servers: ServerFactory) -> None:
    """The repair removes entries, which a worker's role never may: refused to it, saying
    whose it is; a shard's user (made as ``swarm acl --apply`` makes it) repairs."""
    server = servers.start(binary=system_redis())
    try:
        urls = role_urls(server, "mended", "m")
        with Swarm(urls["shard"], swarm="mended") as shard:
            gone = shard.post_task("q", "deleted by hand").id
            kept = shard.post_task("q", "kept").id
            k = shard.keys
            with contextlib.closing(server.client()) as admin:
                admin.hdel(k.tasks, gone)
                admin.zrem(k.task_index, kept)
            worker = Cli(urls["worker"], swarm="mended")
            report = worker.json("doctor", expect=1)  # (a worker reads it all)
            rows = {row["index"]: row for row in report["index_entries"]}
            row = rows[k.task_index]
            assert (row["lacking"], row["dangling"]) == ([kept], [gone])
            assert rows[k.pending("q")]["dangling"] == [gone]  # (and the queue's set)
            refused = worker("doctor", "--repair", expect=None)
            assert refused.code != 0 and "never a worker user's" in refused.stderr
            mended = Cli(urls["shard"], swarm="mended").json("doctor", "--repair")
            assert mended["ok"] is True, mended
            assert [t.id for t in shard.list_tasks().items] == [kept]
            assert shard.queue_stats()["q"]["pending"] == 1  # (recounted after, as a shard)
    finally:
        server.stop()


# --- a report stored half-way is no index's to hold: its retry indexes it

HALF = "half-doc"


@pytest.mark.parametrize("settled", [False, True])
def test_a_report_stored_half_way_is_named_and_left_to_its_retry(
    acl_server: RedisServer, settled: bool
) -> None:
    """The first try of a report stored its finding, then an older worker's ACL refused a
    later command (Redis does not roll a script back): its finding is in no index and its
    task not completed with it. The retry knows the first try by the finding missing from
    the findings' index; a repair that indexed it made the retry answer "already stored"
    and leave the task dead (or, the task settled meanwhile, list two findings not
    superseded). The doctor names it in a row of its own, and the repair leaves it alone;
    the retry then completes the task (or keeps the finding superseded) as usual."""
    users = role_users(acl_server, HALF, f"hs-{settled}")
    old_user = f"hs-old-{settled}"
    admin: Any = acl_server.client()
    old_url = old_worker_url(acl_server, HALF, old_user)
    shard_url = user_url(acl_server, users["shard"])
    queue = f"hs-{settled}"
    with (
        Swarm(old_url, swarm=HALF) as old,
        Swarm(shard_url, swarm=HALF) as shard,
        Swarm(user_url(acl_server, users["worker"]), swarm=HALF) as worker,
    ):
        k = shard.keys
        task = shard.post_task(queue, "die", max_attempts=1)
        token = must(old.claim(queue, worker="wz")).token
        old.fail(task.id, token, "timeout", retry=False)
        fid = worker.new_finding_id()
        body = {"summary": "found it", "sources": ["s1"]}
        with pytest.raises(PermissionDenied):  # (its finding stored, then refused)
            old.report(task.id, token, body, worker="wz", finding_id=fid)
        winner = None
        if settled:  # settled meanwhile by another report
            shard.requeue_dead(task.id)
            other = must(worker.claim(queue, worker="wy"))
            winner = worker.report(other.id, other.token, {"summary": "first"}).id

        assert shard.repair_indexes() == ()  # (nothing to put right)
        assert admin.zscore(k.finding_index, fid) is None
        damage = shard.record_damage()
        assert damage.half_stored == {fid: task.id}
        assert damage.indexes == () and damage.found["index"] == []
        report = Cli(shard_url, swarm=HALF).json("doctor", "--repair", expect=1)
        assert report["indexes_repaired"] == [] and "index_entries" not in report
        assert report["reports_half_stored"] == {
            "count": 1,
            "findings": [{"finding": fid, "task": task.id}],
        }
        human = _human(Cli(shard_url, swarm=HALF))
        assert f"finding {fid} (task {task.id})" in human
        assert "retry the report with the same finding id" in human
        assert f"HDEL {shlex.quote(k.findings)} ID" in human

        # the retry (its user's rights put right) completes the report as usual
        if not settled:
            done = worker.report(task.id, token, body, worker="wz", finding_id=fid)
            assert done.id == fid
            after = shard.get_task(task.id)
            assert after.status.value == "completed" and after.finding_id == fid
            assert [f.id for f in shard.findings(queue=queue)] == [fid]
        else:
            with pytest.raises(AlreadyCompleted) as late:
                worker.report(task.id, token, body, worker="wz", finding_id=fid)
            kept = late.value.finding_id
            assert kept is not None and kept.startswith(fid + ".late-")
            listed = shard.findings(queue=queue).items
            assert [f.id for f in listed if not f.superseded] == [winner]
            assert shard.get_task(task.id).finding_id == winner
        assert shard.record_damage() == RecordDamage({kind: [] for kind in RECORD_KINDS})
    admin.close()


# --- the repair's writes: one script, refused up front, each record looked for again


def test_a_worker_repairing_only_lacking_entries_is_refused_and_writes_nothing(
    acl_server: RedisServer,
) -> None:
    """A worker may add to some indexes (ZADD), never remove from one: its repair of an
    index that only lacks entries was done (exit 0) before the repair's writes were one
    script. A user allowed the script but not ZREM on the index (made by hand) is refused
    by the script before any write, never half-way."""
    urls = role_urls(acl_server, "lacks", "lk")
    with Swarm(urls["shard"], swarm="lacks") as shard:
        k = shard.keys
        kept = [shard.post_task("q", f"kept {i}").id for i in range(3)]
        admin: Any = acl_server.client()
        admin.zrem(k.task_index, *kept)  # lacking only: nothing dangles
        worker = Cli(urls["worker"], swarm="lacks")
        refused = worker("doctor", "--repair", expect=None)
        assert refused.code != 0 and "never a worker user's" in refused.stderr, refused
        assert admin.zcard(k.task_index) == 0  # (nothing written)
        # a user given the script by hand, without the right to remove entries
        rules = acl_user("worker", "lacks", "lk-hand", password="p" * 20).rules
        admin.execute_command("ACL", "SETUSER", "lk-hand", *rules, "+fcall|rs_index_repair")
        hand_url = f"redis://lk-hand:{'p' * 20}@127.0.0.1:{acl_server.port}"
        with Swarm(hand_url, swarm="lacks") as hand, pytest.raises(PermissionDenied) as no:
            hand.repair_indexes()
        assert "nothing was changed" in str(no.value)
        assert admin.zcard(k.task_index) == 0
        repaired = shard.repair_indexes()
        assert [(e.index, sorted(e.lacking)) for e in repaired] == [(k.task_index, sorted(kept))]
        assert sorted(admin.zrange(k.task_index, 0, -1)) == sorted(i.encode() for i in kept)
        admin.close()


def test_the_repair_looks_for_each_record_again_before_its_write(swarm: Swarm, raw: Any) -> None:
    """A record retired after the scan is not re-added, and one stored after it (its entry
    looked dangling) keeps its entry: the script looks for each record before each write."""
    k = swarm.keys
    gone, there = swarm.post_task("q", "gone").id, swarm.post_task("q", "there").id
    raw.zrem(k.task_index, gone)
    raw.hdel(k.tasks, gone)  # retired meanwhile: the scan found it lacking
    # (as the repair sends it: re-add gone, remove there, whose record the scan missed)
    reply = swarm._run(_call("index_repair", (k.task_index, k.tasks), (1, "", "", 5, gone, there)))
    assert [list(r) for r in reply] == [[], []]
    assert raw.zscore(k.task_index, gone) is None
    assert raw.zscore(k.task_index, there) is not None


def _call(script: str, keys: tuple[str, ...], args: tuple[Any, ...]) -> Operation[Any]:
    reply = yield Call(script, keys, args)
    return reply


class _Retiring(Swarm):
    """A handle that deletes one record just before the doctor looks for the records an
    index lacks again (as a retirement between the two reads would)."""

    victim: tuple[str, str] | None = None
    retired = False
    raw: Any = None

    def _attempt(self, request: Any) -> Any:
        first = items_of(request)[0] if isinstance(request, Batch | Cmd | Call) else None
        if self.victim and isinstance(first, Cmd) and first.args[0] == "HEXISTS":
            self.raw.hdel(*self.victim)
            self.victim, self.retired = None, True
        return super()._attempt(request)


def test_a_record_retired_between_the_reads_is_not_lacked(redis_url: str, raw: Any) -> None:
    swarm = _Retiring(redis_url, swarm="test")
    with swarm:
        k = swarm.keys
        ids = [swarm.post_task("q", f"t{i}").id for i in range(3)]
        raw.delete(k.task_index)
        swarm.raw, swarm.victim = raw, (k.tasks, ids[0])
        damage = swarm.record_damage()
        assert swarm.retired  # (deleted between the two reads)
        assert [sorted(e.lacking) for e in damage.indexes] == [sorted(ids[1:])]


def test_a_queue_set_entry_of_a_deleted_task_is_named_and_repair_removes_it(
    cli: Cli, raw: Any
) -> None:
    with Swarm(cli.url, swarm="test") as swarm:
        kept = swarm.post_task("q", "kept").id
        gone = swarm.post_task("q", "deleted by hand").id
        k = swarm.keys
    raw.hdel(k.tasks, gone)  # its id stays in the queue's pending set: counted for ever
    assert cli.json("status")["queues"]["q"]["pending"] == 2

    report = cli.json("doctor", expect=1)
    assert report["ok"] is False
    assert k.pending("q") in report["corrupt_records"]["index"]
    rows = {row["index"]: row for row in report["index_entries"]}
    assert rows[k.pending("q")]["dangling"] == [gone]
    assert f"{k.pending('q')} holds 1 entry whose record is no longer stored: {gone}" in (
        _human(cli)
    )

    repaired = cli.json("doctor", "--repair")
    assert repaired["ok"] is True, repaired
    did = {row["index"]: row for row in repaired["indexes_repaired"]}
    assert did[k.pending("q")]["dangling"] == [gone]
    assert [
        (c["queue"], c["status"], c["was"], c["now"]) for c in repaired["counters_recounted"]
    ] == [("q", "pending", 2, 1)]
    assert raw.zrange(k.pending("q"), 0, -1) == [kept]
    assert cli.json("status")["queues"]["q"]["pending"] == 1
    assert cli.json("doctor")["ok"] is True


def test_the_lost_findings_row_says_how_a_task_posted_again_stops_being_named(
    cli: Cli, raw: Any
) -> None:
    with Swarm(cli.url, swarm="test") as swarm:
        k = swarm.keys
        task = swarm.post_task("q", "work")
        leased = must(swarm.claim("q", worker="w"))
        first = swarm.report(leased.id, leased.token, {"summary": "first"}).id
        raw.hdel(k.findings, first)  # its result lost
        report = cli.json("doctor", "--repair", expect=1)
        assert report["findings_lost"]["tasks"] == [{"task": task.id, "finding": first}]
        human = _human(cli)
        # a task posted again is a new one: the row says how the old one stops being named
        assert "A task posted again is a new task" in human
        # (two whole commands: each pasted as it is)
        assert (
            f"HDEL {shlex.quote(k.tasks)} ID, then redis-cli -u URL HDEL "
            f"{shlex.quote(k.task_data)} ID, then swarm doctor --repair"
        ) in human, human
        assert "swarm retire PASS" in human


def test_a_lost_task_reported_again_itself_is_no_longer_named(cli: Cli, raw: Any) -> None:
    with Swarm(cli.url, swarm="test") as swarm:
        k = swarm.keys
        task = swarm.post_task("q", "work")
        leased = must(swarm.claim("q", worker="w"))
        first = swarm.report(leased.id, leased.token, {"summary": "first"}).id
        raw.hdel(k.findings, first)  # its result lost
        assert swarm.record_damage().lost_findings == {task.id: first}
        # the task itself reported again (its worker's late report, kept superseded): a
        # finding of it is stored, so its result is not lost
        with pytest.raises(AlreadyCompleted) as late:
            swarm.report(leased.id, leased.token, {"summary": "again"})
        assert late.value.finding_id is not None
        assert swarm.get_task(task.id).finding_id == first  # (the record still names it)
        assert swarm.record_damage().lost_findings == {}
        report = cli.json("doctor", "--repair")  # (the deleted finding's entries removed)
        assert report["ok"] is True and "findings_lost" not in report
