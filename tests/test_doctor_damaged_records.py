"""``swarm doctor`` names what the reads refuse or miss that it said nothing of: context
versions whose manifest or chunks are damaged, message index entries and read cursors that
are not of their shape, and indexes that lost entries (a listing then misses records); a pass
counter whose pass lost its name is said so. Records found damaged fail the doctor (exit 1),
its row saying how to repair each kind. Every test writes the damage for real."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from redis_swarm import CorruptRecord, Swarm
from redis_swarm._keys import Keys, label_id
from redis_swarm._models import RECORD_KINDS
from redis_swarm._ops import doctor
from redis_swarm._protocol import Batch, Operation

from ._cli import Cli
from ._handles import must

T = TypeVar("T")

NOTHING: dict[str, list[str]] = {kind: [] for kind in RECORD_KINDS}


def _work(swarm: Swarm, pass_name: str, n: int = 2) -> list[str]:
    """``n`` tasks of ``pass_name`` posted by a shard, each reported: their finding ids."""
    for i in range(n):
        swarm.post_task("q", f"{pass_name} {i}", pass_name=pass_name, parent="shard")
    found = []
    for _ in range(n):
        task = must(swarm.claim("q", worker="w"))
        found.append(swarm.report(task.id, task.token, {"summary": "found"}).id)
    return found


def _parts(raw: Any, swarm: Swarm, owner: str, version: str) -> list[Any]:
    manifest = raw.hget(swarm.keys.context_manifests, f"{owner}|{version}")
    return list(json.loads(manifest)["parts"])


def test_a_healthy_swarm_has_nothing_damaged(swarm: Swarm) -> None:
    findings = _work(swarm, "P1") + _work(swarm, "old", 1)
    swarm.synthesize("shard", "P1", "so", findings[:1])
    swarm.retire_pass("old")  # (its records and their index entries go together)
    for text in ("one\n", "two\n", "three\n", "four\n"):
        swarm.publish_context("o", text, source="t")
    swarm.register("worker", name="a")
    swarm.register("coordinator", name="lead")
    swarm.send("a", "hello", sender="lead")
    swarm.broadcast("to all", sender="lead")
    swarm.inbox("a", limit=1)
    swarm.inbox("a")
    assert swarm.corrupt_records() == NOTHING


def test_damaged_context_versions_and_their_chunks_are_named(
    swarm: Swarm, raw: Any, redis_url: str
) -> None:
    versions = [swarm.publish_context("o", f"text {i}\n", source="t").version for i in range(3)]
    bad_manifest, lost, short = versions
    lost_digest = _parts(raw, swarm, "o", lost)[0][0]
    short_digest = _parts(raw, swarm, "o", short)[0][0]
    raw.hset(swarm.keys.context_manifests, f"o|{bad_manifest}", "not json {")
    raw.delete(swarm.keys.chunk(lost_digest))
    raw.hset(swarm.keys.chunk(short_digest), "data", "x")  # (not its stored length)
    with Swarm(redis_url, swarm="test") as reader:  # (no cache: the publisher kept each)
        for version in versions:  # what a read refuses
            with pytest.raises(CorruptRecord):
                reader.get_context("o", version=version)
    found = swarm.corrupt_records()
    assert found["version"] == sorted(f"o|{v}" for v in versions)
    assert found["chunk"] == sorted([lost_digest, short_digest])
    assert found["context"] == []  # (the pointer itself reads)


def test_junk_cursors_and_message_entries_are_named(swarm: Swarm, raw: Any) -> None:
    swarm.register("worker", name="a")
    swarm.register("worker", name="b")
    swarm.register("coordinator", name="lead")
    sent = swarm.send("a", "hello", sender="lead")
    kept = swarm.send("b", "hello", sender="lead")
    swarm.broadcast("to all", sender="lead")
    swarm.inbox("a", limit=1)
    swarm.inbox("b")
    k = swarm.keys
    damage = {
        "a": "junk",
        "a|inbox": "12-x",
        "a|pending": "r-1 nope - 1",
        "b|orphan": "r-1 - 99999999999999999999999-0 - -",
    }
    raw.hset(k.cursors, mapping=damage)
    raw.hset(k.messages, sent.id, "junk")
    found = swarm.corrupt_records()
    assert found["cursor"] == sorted(damage) and found["message"] == [sent.id]
    assert kept.id not in found["message"] and "b" not in found["cursor"]


def test_an_index_short_of_its_records_is_named(swarm: Swarm, raw: Any) -> None:
    findings = _work(swarm, "P1", 3)
    _work(swarm, "P2")
    swarm.synthesize("shard", "P1", "so", findings[:1])
    k = swarm.keys
    lost = [k.task_index, k.finding_index, k.findings_by("pass", "P1"), k.pass_tasks("P2")]
    for key in lost:
        raw.delete(key)
    raw.zrem(k.findings_by("queue", "q"), findings[0])  # one entry fewer
    found = swarm.corrupt_records()
    assert found["index"] == sorted([*lost, k.findings_by("queue", "q")])
    assert swarm.list_tasks().items == ()  # (what the lost index costs)
    assert {kind: ids for kind, ids in found.items() if kind != "index"} == {
        kind: [] for kind in RECORD_KINDS if kind != "index"
    }


def test_a_lost_entry_beside_a_dangling_one_is_named(swarm: Swarm, raw: Any) -> None:
    """An index that lost one entry and holds one whose record was deleted (as the repair
    "delete the record" leaves it) is of the right size: the index is read entry by entry,
    so the lost one is named all the same."""
    findings = _work(swarm, "P1", 3)
    k = swarm.keys
    raw.zrem(k.finding_index, findings[0])
    raw.hdel(k.findings, findings[1])  # (its entries stay, dangling)
    assert raw.zcard(k.finding_index) == 2  # (as many as the records left)
    found = swarm.corrupt_records()
    # (the dangling entry named too, in every index of its finding)
    by = [k.findings_by(dimension, value) for dimension, value in
          (("queue", "q"), ("pass", "P1"), ("shard", "shard"))]  # fmt: skip
    assert found["index"] == sorted([k.finding_index, *by]), found
    entries = {e.index: e for e in swarm.record_damage().indexes}
    assert list(entries[k.finding_index].lacking) == [findings[0]]
    assert entries[k.finding_index].dangling == (findings[1],)
    assert [f.id for f in swarm.findings().items] == [findings[2]]  # (what it costs)


def test_the_doctor_fails_on_damaged_records_saying_how_to_repair(cli: Cli, raw: Any) -> None:
    cli("task", "post", "q", "work")
    cli("agents", "register", "a", "--role", "worker")
    with Swarm(cli.url, swarm="test") as swarm:
        k = swarm.keys
        version = swarm.publish_context("o", "some text\n", source="t").version
        raw.delete(k.chunk(_parts(raw, swarm, "o", version)[0][0]))
    raw.hset(k.cursors, "a|inbox", "junk")
    raw.delete(k.task_index)
    report = cli.json("doctor", expect=1)
    assert report["ok"] is False
    records = report["corrupt_records"]
    assert records["cursor"] == ["a|inbox"] and records["index"] == [k.task_index]
    assert records["version"] == [f"o|{version}"] and len(records["chunk"]) == 1
    human = " ".join(cli("doctor", expect=1).stdout.split())
    assert "cursor a|inbox" in human and "swarm msg inbox AGENT --peek says it" in human
    assert "swarm context publish FILE --owner OWNER --repair" in human
    assert f"index {k.task_index}" in human and "swarm doctor --repair" in human
    assert cli.json("doctor", "--quick")["ok"] is True  # (the records are not read)


def test_a_pass_counter_without_its_pass_name_is_said_so(cli: Cli, raw: Any) -> None:
    cli("task", "post", "q", "work", "--pass", "P1")
    k = Keys("test")
    pid = label_id("P1")
    raw.hdel(k.pass_counts, pid)  # (swarm status then leaves the pass out)
    report = cli.json("doctor", expect=1)
    assert f"pass id {pid} (its name missing from {k.pass_counts})" in report["counters"]
    assert any("HSET that field ID back to the pass's name" in w for w in report["warnings"])
    raw.hset(k.pass_counts, f"{pid}|pending", "junk")
    report = cli.json("doctor", expect=1)
    assert (
        f"pass id {pid} (its name missing from {k.pass_counts}) pending: not a number"
        in (report["counters"])
    )


def _around_the_scan(
    op: Operation[T], before: Callable[[], object], after: Callable[[], object]
) -> Operation[T]:
    """``op``, with ``before()`` run just before its first HSCAN batch is sent and
    ``after()`` right after it is answered: other clients' work while it reads."""
    step = next(op)
    first = True
    while True:
        scans = isinstance(step, Batch) and any(c.args[0] == "HSCAN" for c in step.items)
        if first and scans:
            before()
        reply = yield step
        if first and scans:
            after()
            first = False
        try:
            step = op.send(reply)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]


def test_posts_and_retires_while_it_reads_are_no_shortfall(server_url: str) -> None:
    with Swarm(server_url, swarm="test") as swarm, Swarm(server_url, swarm="test") as other:
        _work(swarm, "old")
        _work(swarm, "P1")

        def post() -> None:  # (met by the scan, not counted in the sizes read before it)
            for i in range(3):
                other.post_task("q", f"new {i}", pass_name="P1", parent="shard")

        def retire() -> None:  # (met by the scan, gone from the sizes read after it)
            other.retire_pass("old")

        op = _around_the_scan(doctor.corrupt_records(swarm._ctx), post, retire)
        assert swarm._run(op) == NOTHING
        assert other.list_tasks(pass_name="old").items == ()  # (it did retire)


def test_keys_of_another_type_are_named_and_the_doctor_reads_on(cli: Cli, raw: Any) -> None:
    """A key redis-swarm reads holding another type (written around it: a SET over a hash)
    made the whole doctor fail with a raw WRONGTYPE: it names the key (a chunk key as a
    damaged chunk) and checks the rest."""
    cli("task", "post", "q", "work")
    with Swarm(cli.url, swarm="test") as swarm:
        k = swarm.keys
        version = swarm.publish_context("o", "some text\n", source="t").version
        chunk = _parts(raw, swarm, "o", version)[0][0]
    raw.set(k.chunk(chunk), "short")
    raw.delete(k.cursors, k.task_index)
    raw.set(k.cursors, "junk")
    raw.set(k.task_index, "junk")
    raw.hset(k.task_data, must(raw.hkeys(k.tasks))[0], "{not json")
    report = cli.json("doctor", expect=1)
    records = report["corrupt_records"]
    # (the chunk key too: DEL it before the repair, whose writes it would refuse)
    assert records["key"] == sorted([k.cursors, k.task_index, k.chunk(chunk)]), records
    assert records["chunk"] == [chunk] and records["version"] == [f"o|{version}"]
    assert len(records["task"]) == 1  # (the rest is checked)
    human = " ".join(cli("doctor", expect=1).stdout.split())
    assert f"key {k.cursors}" in human and "DEL each" in human
