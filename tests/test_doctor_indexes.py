"""``swarm doctor`` names the entries an index is wrong by, and ``--repair`` puts them right:
the records an index lacks (each id, the first ten and a count of the rest), re-added at the
score their script gave them (the record's ``created_at``), and the entries of records no
longer stored (what deleting a damaged record leaves), removed. A completed task whose finding
was deleted is named with what to do, and the damaged-finding repair says that consequence.
Every test writes the damage for real, with raw Redis commands."""

from __future__ import annotations

import contextlib
import shlex
import time
from typing import Any

from redis_swarm import Swarm

from ._cli import Cli
from ._handles import must
from ._role_users import role_urls
from ._servers import ServerFactory, system_redis


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
    assert "nothing to repair" in _human(cli, "--repair", expect=0)


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
    hdel = f"redis-cli HDEL {shlex.quote(k.findings)} ID"
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


def test_doctor_on_a_big_swarm_stays_fast(cli: Cli, raw: Any) -> None:
    """20,000 tasks, their task index lost: named and repaired in a few round trips per ten
    thousand entries, in well under a second each on a local server."""
    n = 20_000
    with Swarm(cli.url, swarm="test") as swarm:
        k = swarm.keys
        for start in range(0, n, 1_000):
            specs = [
                {"queue": "q", "description": f"t{i}", "pass_name": "P"}
                for i in range(start, start + 1_000)
            ]
            swarm.post_tasks(specs)
        raw.delete(k.task_index)
        began = time.perf_counter()
        damage = swarm.record_damage()
        took = time.perf_counter() - began
        assert {e.index: len(e.lacking) for e in damage.indexes} == {k.task_index: n}
        assert took < 5, took
        swarm.repair_indexes()
        assert raw.zcard(k.task_index) == n and swarm.record_damage().indexes == ()


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
            row = report["index_entries"][0]
            assert (row["lacking"], row["dangling"]) == ([kept], [gone])
            refused = worker("doctor", "--repair", expect=None)
            assert refused.code != 0 and "never a worker user's" in refused.stderr
            mended = Cli(urls["shard"], swarm="mended").json("doctor", "--repair")
            assert mended["ok"] is True, mended
            assert [t.id for t in shard.list_tasks().items] == [kept]
    finally:
        server.stop()
