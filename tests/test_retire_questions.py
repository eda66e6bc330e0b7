"""Retiring settled questions (``retire_questions``, ``swarm retire --questions``): the
answered, withdrawn and dead questions asked of a target removed with their data, answers
and index entries, the counters brought down by exactly that, open and recent ones kept,
the swarm's invariants true after every step; a dry run changes nothing; the dedupe key
posts anew afterwards; lineage says a question was retired; a worker may not retire."""

from __future__ import annotations

import json
import math
from collections.abc import Generator
from typing import Any

import pytest
import redis

from redis_swarm import (
    AlreadyCompleted,
    NotFound,
    PermissionDenied,
    RetiredAsk,
    Settings,
    Swarm,
    Task,
    TaskStatus,
    Timeout,
    ValidationError,
    apply_role,
)
from redis_swarm._keys import ASSIST_QUEUE, Keys, ask_queue
from redis_swarm._ops import retire_questions as retiring
from redis_swarm._pipeline.lineage import lineage, lineage_text
from redis_swarm._protocol import Call

from ._cli import Cli
from ._clock import FakeClock
from ._handles import must
from ._invariants import check_swarm
from ._servers import RedisServer
from .test_retire import _contents, _first_steps
from .test_script_keys import ran  # noqa: F401 (the fixture that checks a script's keys)

K = Keys("test")
OWNER = "lib"
QUEUE = ask_queue(OWNER)


def _asked(swarm: Swarm, text: str, **kw: Any) -> str:
    """A question to OWNER, left in its queue (kept: its asker stopped waiting at once)."""
    with pytest.raises(Timeout) as waited:
        swarm.ask(OWNER, text, timeout_s=0.05, keep=True, **kw)
    qid = waited.value.task_id
    assert qid is not None
    return qid


def _claimed(swarm: Swarm, qid: str) -> Task:
    task = must(swarm.claim(QUEUE, worker="librarian"))
    assert task.id == qid
    return task


def _questions(swarm: Swarm, n_answered: int = 1) -> dict[str, Any]:
    """Questions to OWNER in every state: answered (the first asked by a worker on task
    ``asker``, with dedupe key "k1", and answered twice: the second answer superseded),
    withdrawn (its asker timed out), dead, and one open; and work they must not touch: a
    task of another queue and a question to the assist queue."""
    swarm.publish_context(OWNER, "the answer is in chapter 42\n", source="book.md")
    swarm.post_task("work", "a task whose worker asks")
    asker = must(swarm.claim("work", worker="w1"))
    made: dict[str, Any] = {"asker": asker, "answered": [], "findings": []}
    for i in range(n_answered):
        extra: dict[str, Any] = {"asker": asker, "dedupe_key": "k1"} if i == 0 else {}
        qid = _asked(swarm, f"question {i}?", **extra)
        lease = _claimed(swarm, qid)
        made["findings"].append(swarm.answer(qid, lease.token, f"answer {i}").id)
        made["answered"].append(qid)
        if i == 0:
            with pytest.raises(AlreadyCompleted) as late:
                swarm.answer(qid, lease.token, "a second answer, late")
            made["findings"].append(late.value.finding_id)
    with pytest.raises(Timeout) as withdrawn:
        swarm.ask(OWNER, "nobody answers this in time", timeout_s=0.05)
    made["withdrawn"] = withdrawn.value.task_id
    made["dead"] = _asked(swarm, "this one dies")
    lease = _claimed(swarm, made["dead"])
    swarm.fail(lease.id, lease.token, "fatal", retry=False)
    made["open"] = _asked(swarm, "still open")
    swarm.report(asker.id, asker.token, {"summary": "done, with an answer"})
    swarm.post_task("other", "not a question")
    with pytest.raises(Timeout):
        swarm.ask(ASSIST_QUEUE, "help, anyone?", timeout_s=0.05)
    return made


def test_settled_questions_go_with_their_answers_and_open_ones_stay(
    swarm: Swarm, raw: redis.Redis
) -> None:
    made = _questions(swarm)
    before = swarm.queue_stats()
    assert before[QUEUE]["completed"] == 1 and before[QUEUE]["cancelled"] == 1

    done = swarm.retire_questions(OWNER, older_than_s=0)

    assert (done.queue, done.questions, done.findings, done.open, done.dry_run) == (
        QUEUE, 3, 2, 1, False,
    )  # fmt: skip
    check_swarm(raw, "test")
    gone = [*made["answered"], made["withdrawn"], made["dead"]]
    assert not set(gone) & set(raw.hkeys(K.tasks))
    assert not set(gone) & set(raw.hkeys(K.task_data))
    assert not set(gone) & set(raw.zrange(K.task_index, 0, -1))
    assert not set(made["findings"]) & set(raw.hkeys(K.findings))
    assert not set(made["findings"]) & set(raw.zrange(K.finding_index, 0, -1))
    assert not raw.exists(K.dead(QUEUE), K.findings_by("queue", QUEUE))
    assert f"{QUEUE}|k1" not in raw.hkeys(K.dedupe)
    assert swarm.get_task(made["open"]).status.value == "pending"
    # the counters went down by exactly what went; other queues are untouched
    after = swarm.queue_stats()
    assert after[QUEUE] == {**before[QUEUE], "completed": 0, "cancelled": 0, "dead": 0}
    assert {q: s for q, s in after.items() if q != QUEUE} == {
        q: s for q, s in before.items() if q != QUEUE
    }
    assert swarm.queue_stats()[ASSIST_QUEUE]["cancelled"] == 1
    # one event per step that removed something, and the record
    events = [e for e in swarm.events() if e.type == "questions.retired"]
    assert {e.fields["queue"] for e in events} == {QUEUE}
    assert sum(int(e.fields["questions"]) for e in events) == 3
    record = swarm.retired_questions()[QUEUE]
    assert (record.questions, record.findings) == (3, 2) and record.at == done.at
    # again: nothing left to remove, and not an unknown target
    assert swarm.retire_questions(QUEUE, older_than_s=0).questions == 0
    check_swarm(raw, "test")


def test_the_dedupe_key_of_a_retired_question_posts_anew(swarm: Swarm, raw: redis.Redis) -> None:
    made = _questions(swarm)
    first = made["answered"][0]
    assert swarm.ask(OWNER, "question 0?", timeout_s=0.05, dedupe_key="k1").question_id == first
    swarm.retire_questions(OWNER, older_than_s=0)
    again = _asked(swarm, "question 0?", dedupe_key="k1")
    assert again != first and swarm.get_task(again).status.value == "pending"
    check_swarm(raw, "test")


def test_older_than_keeps_the_recently_settled(swarm: Swarm, raw: redis.Redis) -> None:
    _questions(swarm)
    kept = swarm.retire_questions(OWNER, older_than_s=3600)
    assert (kept.questions, kept.findings, kept.recent, kept.open) == (0, 0, 3, 1)
    assert swarm.queue_stats()[QUEUE]["completed"] == 1
    assert swarm.retire_questions(OWNER, older_than_s=0).questions == 3
    check_swarm(raw, "test")


def test_a_dry_run_counts_and_changes_nothing(swarm: Swarm, raw: redis.Redis) -> None:
    _questions(swarm)
    before = _contents(raw)
    seen = swarm.retire_questions(OWNER, older_than_s=0, dry_run=True)
    assert (seen.questions, seen.findings, seen.open, seen.dry_run) == (3, 2, 1, True)
    assert _contents(raw) == before
    done = swarm.retire_questions(OWNER, older_than_s=0)
    assert (done.questions, done.findings) == (seen.questions, seen.findings)


def test_the_assist_queue_never_asked_is_not_offered_as_what_to_name(swarm: Swarm) -> None:
    with pytest.raises(NotFound, match='no question was ever asked of "assist"') as unknown:
        swarm.retire_questions(ASSIST_QUEUE)
    assert 'or "assist"' not in str(unknown.value)  # (it named it)
    with pytest.raises(NotFound) as other:
        swarm.retire_questions("nobody")
    # (never asked, it is offered to nobody: only the queues asked are)
    assert '"assist"' not in str(other.value) and "there is: none yet" in str(other.value)


def test_bad_input_is_refused(swarm: Swarm, raw: redis.Redis) -> None:
    _questions(swarm)
    with pytest.raises(NotFound, match='no question was ever asked of "nobody"') as unknown:
        swarm.retire_questions("nobody")
    assert QUEUE in str(unknown.value)
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValidationError, match="older_than_s"):
            swarm.retire_questions(OWNER, older_than_s=bad)
    with pytest.raises(ValidationError):
        swarm.retire_questions("not a name!")
    assert swarm.queue_stats()[QUEUE]["completed"] == 1  # nothing went


def test_a_run_stopped_mid_way_leaves_a_whole_swarm_and_a_rerun_ends_it(
    raw: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retiring, "RETIRE_CHUNK", 2)
    with Swarm(redis_url, swarm="test") as swarm:
        made = _questions(swarm, n_answered=7)
        runs = 0
        # seven steps at a time, stopped between: the swarm is whole after each, and the
        # next run goes on with what is left (it walks the findings left first)
        while not swarm._run(
            _first_steps(retiring.retire_questions(swarm._ctx, OWNER, older_than_s=0), 7)
        ):
            runs += 1
            check_swarm(raw, "test")
            assert swarm.retired_questions()[QUEUE].findings  # what it did is done
            assert runs < 30
        assert runs >= 1, runs
        check_swarm(raw, "test")
        record = swarm.retired_questions()[QUEUE]
        assert (record.questions, record.findings) == (9, 8)
        assert swarm.queue_stats()[QUEUE] == {
            "pending": 1, "delayed": 0, "claimed": 0, "completed": 0, "dead": 0, "cancelled": 0,
        }  # fmt: skip
        assert not set(made["findings"]) & set(raw.hkeys(K.findings))
        assert swarm.retire_questions(OWNER, older_than_s=0).questions == 0


def _calls(op: Generator[Any, Any, Any], made: list[int]) -> Generator[Any, Any, Any]:
    """Drive ``op`` to its end, counting its script calls in ``made``."""
    request = op.send(None)
    while True:
        made[0] += len([r for r in getattr(request, "items", (request,)) if isinstance(r, Call)])
        try:
            request = op.send((yield request))
        except StopIteration as stop:
            return stop.value


def test_tasks_created_in_the_same_millisecond_are_walked_once(
    raw: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A clock that stands still: every task has the same creation time, so the task index
    # orders them by id alone, and the walk's cursor (the last entry it examined) is often
    # a question the next step removes: the walk resumes right after it, not from the
    # first task of that millisecond again.
    monkeypatch.setattr(retiring, "RETIRE_CHUNK", 2)
    with Swarm(redis_url, swarm="test", clock=FakeClock()) as swarm:
        for i in range(12):
            if i % 3 == 0:
                swarm.post_task("other", f"not a question {i}")
            else:
                swarm.cancel(swarm.post_task(QUEUE, f"withdrawn question {i}").id)
        made = [0]
        done = swarm._run(
            _calls(retiring.retire_questions(swarm._ctx, OWNER, older_than_s=0), made)
        )
        assert done.questions == 8
        check_swarm(raw, "test")
        assert made[0] <= 8, made  # a findings step, then 12 entries two at a time, and one
        assert swarm.queue_stats()[QUEUE]["cancelled"] == 0


def test_lineage_says_a_question_was_retired(swarm: Swarm, raw: redis.Redis) -> None:
    made = _questions(swarm)
    finding = swarm.findings(queue="work").items[0]
    assert lineage(swarm, finding.id)["answers"][0]["question"] == "question 0?"
    done = swarm.retire_questions(OWNER, older_than_s=0)
    tree = lineage(swarm, finding.id)
    assert "answers" not in tree
    assert [q["id"] for q in tree["retired_questions"]] == [made["answered"][0]]
    text = "\n".join(lineage_text(tree))
    assert f"question {made['answered'][0]} (retired with its answer on " in text
    assert swarm.retired_asked(made["asker"].id) == {
        made["answered"][0]: RetiredAsk(done.at, TaskStatus.COMPLETED)
    }
    check_swarm(raw, "test")


def test_retired_questions_do_not_crowd_out_the_answers_still_held(
    swarm: Swarm, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retired question stays in its asker's index (at minus its retirement time): the
    answers listed (at most MAX_ANSWERS_LISTED) are those still held, not the retired."""
    made = _questions(swarm, n_answered=3)
    asker = made["asker"]
    swarm.cancel(made["open"])  # (the later questions are then the only ones to claim)
    swarm.retire_questions(OWNER, older_than_s=0)  # the three answered questions go
    swarm.post_task("work", "a second task whose worker asks")
    second = must(swarm.claim("work", worker="w1"))
    for i in range(2):  # and two more are asked while on the first task: held
        qid = _asked(swarm, f"later question {i}?", asker=asker)
        swarm.answer(qid, _claimed(swarm, qid).token, f"later answer {i}")
    monkeypatch.setattr("redis_swarm._ops.ask.MAX_ANSWERS_LISTED", 2)
    assert [a.summary for a in swarm.answers_for(asker.id)] == ["later answer 0", "later answer 1"]
    assert list(swarm.retired_asked(asker.id)) == [made["answered"][0]]
    swarm.report(second.id, second.token, {"summary": "done"})


def test_the_cli_retires_questions_and_says_what_went(cli: Cli, redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        _questions(swarm)
    assert cli("retire", "--questions", OWNER, "--older-than", "0", "--dry-run").stdout == (
        f"would retire questions of {QUEUE}: 3 questions, 2 findings (1 open question kept)\n"
    )
    assert cli("retire", "--questions", OWNER, "--older-than", "3600").stdout == (
        f"retired questions of {QUEUE}: 0 questions, 0 findings (1 open question kept; "
        "3 settled within 3600 s kept)\n"
    )
    out = cli.json("retire", "--questions", QUEUE, "--older-than", "0")
    assert (out["queue"], out["questions"], out["findings"], out["open"]) == (QUEUE, 3, 2, 1)
    # exactly one of PASS and --questions; --older-than only with --questions
    for args in ((), ("P", "--questions", OWNER), ("P", "--older-than", "5")):
        refused = cli("retire", *args, expect=2)
        assert "exactly one of PASS" in refused.stderr or "--older-than goes" in refused.stderr
    for bad in ("-1", "nan", "soon"):
        cli("retire", "--questions", OWNER, "--older-than", bad, expect=2)
    unknown = cli("retire", "--questions", "nobody", expect=1)
    assert 'no question was ever asked of "nobody"' in unknown.stderr


def test_a_worker_may_not_retire_questions(redis_server: RedisServer, redis_url: str) -> None:
    settings = Settings.from_url(redis_url, swarm="test")
    users = {
        role: apply_role(settings, role, f"retire-q-{role}").user
        for role in ("worker", "shard", "coordinator")
    }

    def handle(role: str) -> Swarm:
        user = users[role]
        return Swarm(
            f"redis://{user.user}:{user.password}@127.0.0.1:{redis_server.port}", swarm="test"
        )

    try:
        with Swarm(redis_url, swarm="test") as admin:
            admin.load_functions()
            made = _questions(admin)
        with handle("worker") as worker, pytest.raises(PermissionDenied):
            worker.retire_questions(OWNER, older_than_s=0)
        with handle("worker") as worker:
            assert worker.queue_stats()[QUEUE]["completed"] == 1  # nothing went
            assert worker.retired_questions() == {}  # (a worker may read the records)
            assert worker.retired_asked(made["asker"].id) == {}
        with handle("coordinator") as coordinator:
            assert coordinator.retire_questions(OWNER, older_than_s=0, dry_run=True).questions == 3
        with handle("shard") as shard:
            assert shard.retire_questions(OWNER, older_than_s=0).questions == 3
    finally:
        client = redis_server.client()
        client.acl_deluser(*(user.user for user in users.values()))
        client.close()


def test_the_script_touches_only_the_keys_it_is_given(
    ran: set[str],  # noqa: F811 (the fixture)
    server_url: str,
) -> None:
    with Swarm(server_url, swarm="test") as swarm:
        _questions(swarm)
        assert swarm.retire_questions(OWNER, older_than_s=0, dry_run=True).questions == 3
        assert swarm.retire_questions(OWNER, older_than_s=0).questions == 3
    assert "questions_retire" in ran


def _taken_over(swarm: Swarm) -> tuple[str, str]:
    """A question asked with dedupe key "K" and withdrawn (its asker timed out), then asked
    again with the key by an asker that keeps it: that one posts a successor under a key of
    its own and points "K" at it. The successor is answered. Returns both ids."""
    swarm.publish_context(OWNER, "the answer is in chapter 42\n", source="book.md")
    with pytest.raises(Timeout) as withdrawn:
        swarm.ask(OWNER, "what is in chapter 42?", timeout_s=0.05, dedupe_key="K")
    first = withdrawn.value.task_id
    successor = _asked(swarm, "what is in chapter 42?", dedupe_key="K")
    assert successor != first and swarm.get_task(successor).dedupe_key != "K"
    swarm.answer(successor, _claimed(swarm, successor).token, "the answer")
    assert first is not None
    return first, successor


def test_a_key_a_successor_took_over_goes_with_it(swarm: Swarm, raw: redis.Redis) -> None:
    _first, successor = _taken_over(swarm)
    assert raw.hget(K.dedupe, f"{QUEUE}|K") == successor
    assert swarm.retire_questions(OWNER, older_than_s=0).questions == 2
    assert f"{QUEUE}|K" not in raw.hkeys(K.dedupe)  # (not left naming a task gone)
    again = _asked(swarm, "what is in chapter 42?", dedupe_key="K")
    assert again != successor and swarm.get_task(again).status.value == "pending"
    check_swarm(raw, "test")


def test_a_dedupe_entry_of_a_task_gone_posts_anew(swarm: Swarm, raw: redis.Redis) -> None:
    # An entry left naming a retired question (by a retirement of an earlier version, which
    # did not know the key a successor took over) is as none: the next ask posts anew
    _first, successor = _taken_over(swarm)
    swarm.retire_questions(OWNER, older_than_s=0)
    raw.hset(K.dedupe, f"{QUEUE}|K", successor)
    again = _asked(swarm, "what is in chapter 42?", dedupe_key="K")
    assert again != successor and raw.hget(K.dedupe, f"{QUEUE}|K") == again
    # the entry now names a task stored: a post with the key meets it
    assert swarm.post_task(QUEUE, "posted with the key", dedupe_key="K").id == again
    check_swarm(raw, "test")


def test_lineage_names_a_retired_question_its_asker_shared(swarm: Swarm, raw: redis.Redis) -> None:
    made = _questions(swarm)
    shared = made["answered"][0]
    swarm.post_task("work", "a second task, whose worker asks the same question")
    second = must(swarm.claim("work", worker="w2"))
    answer = swarm.ask(OWNER, "question 0?", timeout_s=0.05, dedupe_key="k1", asker=second)
    assert answer.question_id == shared
    swarm.report(second.id, second.token, {"summary": "done, with a shared answer"})
    (finding,) = [f for f in swarm.findings(queue="work").items if f.task_id == second.id]
    assert [a.question_id for a in swarm.answers_for(second.id)] == [shared]

    swarm.retire_questions(OWNER, older_than_s=0)

    # its poster's entry alone says when it went; the sharer's says it went
    assert swarm.retired_asked(second.id) == {shared: RetiredAsk(None)}
    tree = lineage(swarm, finding.id)
    assert tree["retired_questions"] == [
        {"kind": "question", "id": shared, "retired": None, "ended": None}
    ]
    text = "\n".join(lineage_text(tree))
    assert f"question {shared} (no longer stored: retired with its answer, when unknown" in text
    assert list(swarm.retired_asked(made["asker"].id)) == [shared]  # (its poster's: timed)


def test_tasks_of_a_pass_in_the_queue_are_taken_from_their_own_figure(
    redis_url: str, raw: redis.Redis
) -> None:
    clock = FakeClock()
    with Swarm(redis_url, swarm="test", clock=clock) as swarm:

        def answered(text: str) -> None:
            task = swarm.post_task(QUEUE, text)
            lease = must(swarm.claim(QUEUE, worker="librarian"))
            assert lease.id == task.id
            swarm.report(task.id, lease.token, {"summary": "answered"})

        answered("an old question")
        swarm.post_task(QUEUE, "a task of a pass, open", pass_name="p1", priority=-1)
        clock.advance(7200)
        answered("a question answered within the hour")
        done = swarm.retire_questions(QUEUE, older_than_s=3600)
        assert (done.questions, done.open, done.recent, done.other) == (1, 0, 1, 1)
        seen = swarm.retire_questions(QUEUE, older_than_s=3600, dry_run=True)
        assert (seen.questions, seen.open, seen.recent, seen.other) == (0, 0, 1, 1)


def _walked(raw: redis.Redis) -> int:
    return int(json.loads(str(raw.hget(K.retired_questions, QUEUE)))["walked"])


def test_an_unreadable_task_of_another_queue_is_not_counted_nor_pins_the_walk(
    swarm: Swarm, raw: redis.Redis
) -> None:
    # (each settled first: a claim of its queue would meet it unreadable)
    other = swarm.post_task("work", "a task stored unreadable, of another queue")
    swarm.cancel(other.id)
    raw.hset(K.tasks, other.id, '{"queue":"work", cut short')
    _questions(swarm)
    done = swarm.retire_questions(OWNER, older_than_s=0)
    assert (done.questions, done.corrupt) == (3, 0)
    assert _walked(raw) > other.created_at  # the next run walks on from the open question
    # one of the queue's own is counted, and the next run walks from it
    mine = swarm.post_task(QUEUE, "a question stored unreadable")
    swarm.cancel(mine.id)
    raw.hset(K.tasks, mine.id, f'{{"queue":"{QUEUE}", cut short')
    assert swarm.retire_questions(OWNER, older_than_s=0).corrupt == 1
    assert _walked(raw) <= mine.created_at


def test_by_default_a_question_settled_just_now_stays(cli: Cli, redis_url: str) -> None:
    # (an asker reads its answer within milliseconds of the task.completed event: a run
    # at that moment must not remove it first)
    with Swarm(redis_url, swarm="test") as swarm:
        _questions(swarm)
        kept = swarm.retire_questions(OWNER)
        assert (kept.questions, kept.recent, kept.older_than_s) == (0, 3, 60)
        assert cli("retire", "--questions", OWNER).stdout == (
            f"retired questions of {QUEUE}: 0 questions, 0 findings (1 open question kept; "
            "3 settled within 60 s kept)\n"
        )
        assert swarm.retire_questions(OWNER, older_than_s=0).questions == 3
