"""``swarm doctor`` names a stored task its queue's set of its status lacks (pending, delayed,
claimed or dead, its id out of the queue's pending, delayed, leases or dead set: claims read
the sets, so it is never claimed, reclaimed, promoted or requeued, and counted for ever), and
``--repair`` puts it back at the score its record gives it there (re-reading the record just
before the write: a task moved since is left), then recounts the counters. ``--quick
--repair`` names the records it could not re-add, as the full run does. Every test writes the
damage for real, with raw Redis commands."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from redis_swarm import Swarm
from redis_swarm._protocol import Call, Operation

from ._cli import Cli
from ._handles import must


def _human(cli: Cli, *args: str, expect: int = 1) -> str:
    return " ".join(cli("doctor", *args, expect=expect).stdout.split())


def _call(script: str, keys: tuple[str, ...], args: tuple[Any, ...]) -> Operation[Any]:
    reply = yield Call(script, keys, args)
    return reply


def test_a_task_out_of_its_queues_set_is_named_and_repair_puts_it_back(cli: Cli, raw: Any) -> None:
    with Swarm(cli.url, swarm="test") as swarm:
        k = swarm.keys
        swarm.post_task("q", "claimed", priority=9)
        leased = must(swarm.claim("q", worker="w", lease_s=600))
        swarm.post_task("q", "dies", priority=8, max_attempts=1)
        dead = must(swarm.claim("q", worker="w"))
        swarm.fail(dead.id, dead.token, "boom")
        assert swarm.get_task(dead.id).status.value == "dead"
        waiting = swarm.post_task("q", "pending", priority=3).id
        swarm.post_task("q", "pending too")
        later = swarm.post_task("q", "delayed", delay_s=3600).id
        sets = {
            k.pending("q"): waiting,
            k.delayed("q"): later,
            k.leases("q"): leased.id,
            k.dead("q"): dead.id,
        }
        scores = {key: raw.zscore(key, i) for key, i in sets.items()}
        for key, task_id in sets.items():
            raw.zrem(key, task_id)  # its record still says the status: never claimed again

        report = cli.json("doctor", expect=1)
        assert report["ok"] is False
        assert set(sets) <= set(report["corrupt_records"]["index"])
        rows = {row["index"]: row for row in report["index_entries"]}
        for key, task_id in sets.items():
            assert (rows[key]["lacking"], rows[key]["dangling"]) == ([task_id], []), key
        assert f"{k.delayed('q')} lacks 1: {later}" in _human(cli)

        repaired = cli.json("doctor", "--repair")
        assert repaired["ok"] is True, repaired
        did = {row["index"]: row["lacking"] for row in repaired["indexes_repaired"]}
        assert did == {key: [task_id] for key, task_id in sets.items()}
        # each at the score the scripts gave it there (priority and posting order, due time,
        # lease deadline, time of death), and the counters found right (recounted after)
        assert {key: raw.zscore(key, i) for key, i in sets.items()} == scores
        assert repaired["counters_recounted"] == []
        assert cli.json("doctor")["ok"] is True
        swarm.requeue_dead(dead.id)  # (out of its dead set again)
        assert swarm.get_task(dead.id).status.value == "pending"
        assert raw.zscore(k.dead("q"), dead.id) is None


def test_a_pending_task_out_of_its_set_is_claimed_once_repaired(cli: Cli, raw: Any) -> None:
    with Swarm(cli.url, swarm="test") as swarm:
        k = swarm.keys
        task_id = swarm.post_task("q", "lost").id
        raw.zrem(k.pending("q"), task_id)
        assert swarm.claim("q", worker="w") is None  # (claims read the set)
        cli.json("doctor", "--repair")
        assert must(swarm.claim("q", worker="w")).id == task_id


def test_the_repair_reads_the_task_again_before_putting_it_back(swarm: Swarm, raw: Any) -> None:
    """A task moved after the scan (claimed: its record says so) is not put back in the set
    the scan found it out of; one still of the set's status is, at its score."""
    k = swarm.keys
    moved, kept = swarm.post_task("q", "moved").id, swarm.post_task("q", "kept").id
    score = raw.zscore(k.pending("q"), kept)
    raw.zrem(k.pending("q"), kept)
    assert must(swarm.claim("q", worker="w")).id == moved  # (out of pending, claimed)
    args = (2, "pending", "q", "", moved, "", kept)
    reply = swarm._run(_call("index_repair", (k.pending("q"), k.tasks), args))
    assert [list(map(_text, r)) for r in reply] == [[kept, str(int(score or 0))], []]
    assert raw.zscore(k.pending("q"), moved) is None
    assert raw.zscore(k.pending("q"), kept) == score


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def test_quick_repair_names_the_records_it_could_not_re_add(cli: Cli, raw: Any) -> None:
    with Swarm(cli.url, swarm="test") as swarm:
        k = swarm.keys
        task_id = swarm.post_task("q", "no creation time").id
    record = json.loads(raw.hget(k.tasks, task_id))
    del record["created_at"]  # (written around redis-swarm: no score to place it at)
    raw.hset(k.tasks, task_id, json.dumps(record))
    raw.zrem(k.task_index, task_id)

    full = cli.json("doctor", "--repair", expect=1)
    quick = cli.json("doctor", "--quick", "--repair", expect=1)
    for report in (full, quick):
        assert report["ok"] is False
        rows = {row["index"]: row for row in report["index_entries"]}
        assert rows[k.task_index]["unscored"] == [task_id], report
        assert report["indexes_repaired"] == []
    said = _human(cli, "--quick", "--repair")
    assert f"it cannot re-add {task_id}: the record holds no creation time" in said


def test_a_pending_task_without_a_creation_time_is_put_back_too(swarm: Swarm, raw: Any) -> None:
    """Its pending score comes from its priority and posting number, not its creation time:
    it was left out of the queue's set (said as 'could not re-add') for want of the latter."""
    k = swarm.keys
    task = swarm.post_task("q", "no stamp")
    score = raw.zscore(k.pending("q"), task.id)
    record = json.loads(raw.hget(k.tasks, task.id))
    del record["created_at"]
    raw.hset(k.tasks, task.id, json.dumps(record))
    raw.zrem(k.pending("q"), task.id)
    repaired = {e.index: e.lacking for e in swarm.repair_indexes()}
    assert repaired[k.pending("q")] == {task.id: int(score)}  # at the score it was written
    assert raw.zscore(k.pending("q"), task.id) == score
    assert must(swarm.claim("q", worker="w")).id == task.id


def test_a_task_put_back_tells_the_queues_claimers(swarm: Swarm, raw: Any) -> None:
    """A pending task put back pushes a wake-up token (a claim waiting on the queue takes it
    at once, not at the end of its wait); a lease or a delayed task put back lowers the
    queue's due hint to its time (else no claim scans for it before the hint comes)."""
    k = swarm.keys
    due = f"due:{k.delayed('q')}"
    pending = swarm.post_task("q", "lost while a worker waits").id
    raw.zrem(k.pending("q"), pending)
    raw.delete(k.wake("q"))  # (the token of its post taken, as a claim that found it takes it)
    assert swarm.claim("q", worker="w") is None
    hint = int(raw.hget(k.counts, due))
    woken: list[float] = []

    def wait() -> None:
        # (a long socket timeout: a wait looks again every 5 s at most, block_chunk_s)
        with Swarm(swarm.settings.replace(socket_timeout=60)) as other:
            task = other.claim("q", worker="waiter", wait_s=20)
            woken.append(time.monotonic() if task and task.id == pending else -1.0)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.5)  # (waiting)
    repaired = {e.index: e.lacking for e in swarm.repair_indexes()}
    repaired_at = time.monotonic()
    waiter.join(timeout=25)
    assert set(repaired) == {k.pending("q")}
    assert woken and woken[0] - repaired_at < 2.0, woken  # (woken by the repair)

    swarm.post_task("q", "to lease")
    leased = must(swarm.claim("q", worker="w", lease_s=30))  # (a lease before the hint)
    later = swarm.post_task("q", "later", delay_s=40)
    lease_deadline = int(raw.zscore(k.leases("q"), leased.id))
    raw.zrem(k.leases("q"), leased.id)
    raw.zrem(k.delayed("q"), later.id)
    raw.hset(k.counts, due, hint + 3_600_000)  # (a hint an hour ahead: as a scan left it)
    swarm.repair_indexes()
    assert int(raw.hget(k.counts, due)) <= lease_deadline
