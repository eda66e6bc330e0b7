"""Ask and answer (issue 18): a question is a task on its target's queue, its answer the finding
that completes it; ``ask`` blocks on the event stream until then. Real servers, both shells."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from redis_swarm import (
    AlreadyCompleted,
    Answer,
    AsyncSwarm,
    InvalidState,
    NotFound,
    PayloadTooLarge,
    Swarm,
    Task,
    TaskStatus,
    Timeout,
    Usage,
    ValidationError,
)
from redis_swarm._keys import ask_queue


def _answerer(
    swarm: Swarm,
    queue: str,
    reply: Callable[[Task], str],
    *,
    n: int = 1,
    name: str = "librarian",
    delay_s: float = 0.0,
) -> threading.Thread:
    """A thread that claims ``n`` questions of ``queue`` and answers each with ``reply``."""

    def run() -> None:
        for _ in range(n):
            task = swarm.claim(queue, worker=name, wait_s=20)
            assert task is not None
            time.sleep(delay_s)
            swarm.answer(task.id, task.token, reply(task), worker=name, model="m-1")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def owned(swarm: Swarm) -> Swarm:
    """A swarm where the shard "lib" has published its context."""
    swarm.publish_context("lib", "the answer is in chapter 42\n", source="book.md")
    return swarm


def test_a_question_to_an_owner_is_answered_by_whoever_serves_its_ask_queue(owned: Swarm) -> None:
    thread = _answerer(owned, ask_queue("lib"), lambda t: f"chapter 42 ({t.description})")
    got = owned.ask("lib", "where is the answer?", data={"hint": 1}, asker="w-7", timeout_s=20)
    thread.join(5)
    assert isinstance(got, Answer)
    assert got.text == "chapter 42 (where is the answer?)"
    assert (got.answerer, got.model, got.queue) == ("librarian", "m-1", "ask.lib")
    finding = owned.get_finding(got.finding_id)
    assert finding.task_id == got.question_id and finding.extra["kind"] == "answer"
    question = owned.get_task(got.question_id)
    assert question.status == "completed"
    assert question.data == {
        "kind": "question", "target": "lib", "asker": "w-7", "data": {"hint": 1}
    }  # fmt: skip


def test_the_answer_carries_what_the_answering_run_cost(owned: Swarm) -> None:
    def run() -> None:
        task = owned.claim(ask_queue("lib"), worker="librarian", wait_s=20)
        assert task is not None
        usage = Usage("claude-json", cost_usd=0.0123, tokens_in=900, tokens_out=40,
                      session_id="sess-1")  # fmt: skip
        owned.answer(task.id, task.token, "42", worker="librarian", usage=usage)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    got = owned.ask("lib", "how much?", timeout_s=20)
    thread.join(5)
    assert got.cost_usd == 0.0123 and got.usage is not None
    assert (got.usage.tokens_in, got.usage.session_id) == (900, "sess-1")


def test_a_long_answer_keeps_its_first_line_as_summary(owned: Swarm) -> None:
    body = "Short first line.\n" + "more detail " * 400
    thread = _answerer(owned, ask_queue("lib"), lambda _t: body)
    got = owned.ask("lib", "tell me everything", timeout_s=20)
    thread.join(5)
    assert got.text == body and got.summary == "Short first line."


def test_any_queue_posted_to_before_is_a_target(swarm: Swarm) -> None:
    swarm.post_task("assist", "warm-up")
    first = swarm.claim("assist", worker="helper")
    assert first is not None
    swarm.report(first.id, first.token, {"summary": "done"})
    thread = _answerer(swarm, "assist", lambda _t: "use a lock", name="peer")
    got = swarm.ask("assist", "how do I avoid the race?", timeout_s=20)
    thread.join(5)
    assert got.text == "use a lock" and got.answerer == "peer"


def test_timeout_unclaimed_cancels_the_question(owned: Swarm) -> None:
    with pytest.raises(Timeout, match="no answerer claimed it") as caught:
        owned.ask("lib", "anyone?", timeout_s=0.3)
    assert caught.value.claimed is False and caught.value.task_id
    assert owned.get_task(caught.value.task_id).status == "cancelled"
    assert "swarm serve" in str(caught.value)


def test_a_late_answer_is_kept_superseded(owned: Swarm) -> None:
    claimed = threading.Event()

    def slow() -> None:
        task = owned.claim(ask_queue("lib"), worker="slowpoke", wait_s=10)
        assert task is not None
        claimed.set()
        time.sleep(0.8)
        with pytest.raises(AlreadyCompleted) as late:
            owned.answer(task.id, task.token, "too late", worker="slowpoke")
        found = owned.get_finding(str(late.value.finding_id))
        assert found.superseded and found.summary == "too late"
        done.append(True)

    done: list[bool] = []
    thread = threading.Thread(target=slow, daemon=True)
    thread.start()
    with pytest.raises(Timeout, match="slowpoke claimed it") as caught:
        owned.ask("lib", "slow one?", timeout_s=0.5)
    assert claimed.is_set() and caught.value.claimed is True
    # (an answerer was at work on it: a longer wait is what helps)
    assert str(caught.value).endswith("Ask again with a longer timeout")
    thread.join(5)
    assert done == [True]


def test_a_kept_question_is_not_to_be_asked_again(owned: Swarm) -> None:
    # Asking a kept question again would post (and pay for) a second one: the timeout says
    # how to collect it instead; a withdrawn one nobody claimed says to start an answerer
    # first (a longer wait would not help a queue nobody serves).
    with pytest.raises(Timeout) as kept:
        owned.ask("lib", "kept, collect me", timeout_s=0.1, keep=True)
    assert "Ask again" not in str(kept.value) and "its answer will be" in str(kept.value)
    with pytest.raises(Timeout) as withdrawn:
        owned.ask("lib", "withdrawn", timeout_s=0.1)
    assert "no answerer claimed it" in str(withdrawn.value)
    assert str(withdrawn.value).endswith("Start an answerer (above), then ask again")


def test_keep_leaves_the_question_and_its_dedupe_key_returns_the_answer(owned: Swarm) -> None:
    with pytest.raises(Timeout, match="stays queued"):
        owned.ask("lib", "kept?", timeout_s=0.1, keep=True, dedupe_key="k1")
    thread = _answerer(owned, ask_queue("lib"), lambda _t: "yes, kept")
    thread.join(10)
    start = time.monotonic()
    got = owned.ask("lib", "kept?", timeout_s=0.01, dedupe_key="k1")
    assert got.text == "yes, kept" and time.monotonic() - start < 1
    again = owned.ask("lib", "kept?", timeout_s=0.01, dedupe_key="k1")
    assert again.finding_id == got.finding_id


def test_a_question_whose_answerers_all_fail_is_an_error_at_once(owned: Swarm) -> None:
    def failing() -> None:
        task = owned.claim(ask_queue("lib"), worker="broken", wait_s=10)
        assert task is not None
        owned.fail(task.id, task.token, "the agent printed nothing", retry=False)

    # Joined before the test ends: a fail retried after a lost reply must not outlive the test
    # (the next test empties the server, and the retry then met no task: seen once in CI).
    answerer = threading.Thread(target=failing, daemon=True)
    answerer.start()
    start = time.monotonic()
    with pytest.raises(InvalidState, match=r"died unanswered.*printed nothing") as raised:
        owned.ask("lib", "will it break?", timeout_s=20)
    assert time.monotonic() - start < 10
    assert str(raised.value).count("printed nothing") == 1, "the error said twice"
    # (no dedupe key: asking again posts another question; no key to put this one back)
    assert str(raised.value).endswith("then ask again (anew)"), raised.value
    answerer.join(10)
    assert not answerer.is_alive()


def test_bad_questions_are_refused_and_nothing_is_stored(owned: Swarm) -> None:
    with pytest.raises(NotFound, match=r"unknown target 'nobody'.*swarm serve"):
        owned.ask("nobody", "hello?")
    with pytest.raises(PayloadTooLarge, match="question is 40,000 characters"):
        owned.ask("lib", "x" * 40_000)
    with pytest.raises(ValidationError, match="non-empty"):
        owned.ask("lib", "  ")
    with pytest.raises(ValidationError, match="target"):
        owned.ask("a:b", "hello?")
    with pytest.raises(ValidationError, match="data must be a mapping"):
        owned.ask("lib", "q", data=[1])  # type: ignore[arg-type]
    assert owned.queue_stats() == {}


def test_the_asker_s_task_is_linked_and_its_lease_renewed_while_it_waits(owned: Swarm) -> None:
    owned.post_task("main", "write the report")
    mine = owned.claim("main", worker="w-1", lease_s=0.6)
    assert mine is not None
    thread = _answerer(owned, ask_queue("lib"), lambda _t: "chapter 42", delay_s=1.5)
    got = owned.ask("lib", "where?", asker=mine, timeout_s=20)
    thread.join(5)
    assert got.asker_task == mine.id
    assert owned.get_finding(got.finding_id).extra["asker_task"] == mine.id
    held = owned.get_task(mine.id)
    assert held.status == "claimed" and held.attempts == 1  # never expired meanwhile
    assert owned.get_task(got.question_id).data["asker"] == "w-1"
    (listed,) = owned.answers_for(mine.id)
    assert listed.finding_id == got.finding_id and listed.question == "where?"
    assert owned.answers_for("t-none") == []


def test_twenty_askers_three_answerers_each_gets_its_own_answer(server_url: str) -> None:
    with Swarm(server_url, swarm="test") as swarm:
        swarm.publish_context("lib", "context\n", source="c.md")
        stop = threading.Event()

        def serve(name: str) -> None:
            while not stop.is_set():
                task = swarm.claim(ask_queue("lib"), worker=name, wait_s=0.2)
                if task is not None:
                    swarm.answer(task.id, task.token, f"re: {task.description}", worker=name)

        answerers = [threading.Thread(target=serve, args=(f"a{i}",)) for i in range(3)]
        for thread in answerers:
            thread.start()
        try:
            with ThreadPoolExecutor(20) as pool:
                got = list(
                    pool.map(lambda i: swarm.ask("lib", f"question {i}", timeout_s=30), range(20))
                )
        finally:
            stop.set()
            for thread in answerers:
                thread.join(5)
        assert [a.text for a in got] == [f"re: question {i}" for i in range(20)]
        assert len({a.finding_id for a in got}) == 20
        assert {a.answerer for a in got} <= {"a0", "a1", "a2"}


def test_reasking_a_cancelled_question_returns_its_late_answer(owned: Swarm) -> None:
    with pytest.raises(Timeout) as caught:
        owned.ask("lib", "late?", timeout_s=0.05, dedupe_key="late")
    first = caught.value.task_id
    assert first is not None
    with pytest.raises(AlreadyCompleted):  # cancelled: the late answer is kept superseded
        owned.answer(first, None, "late but right", worker="slow")
    got = owned.ask("lib", "late?", timeout_s=0.01, dedupe_key="late")
    assert (got.text, got.question_id, got.answerer) == ("late but right", first, "slow")


def test_reasking_a_cancelled_unanswered_question_posts_it_anew(owned: Swarm) -> None:
    with pytest.raises(Timeout) as caught:
        owned.ask("lib", "anyone?", timeout_s=0.05, dedupe_key="anew")
    first = caught.value.task_id
    assert first is not None and owned.get_task(first).status == "cancelled"
    thread = _answerer(owned, ask_queue("lib"), lambda _t: "now answered")
    got = owned.ask("lib", "anyone?", timeout_s=10, dedupe_key="anew")
    thread.join(10)
    assert got.text == "now answered" and got.question_id != first
    again = owned.ask("lib", "anyone?", timeout_s=0.01, dedupe_key="anew")  # the new one's
    assert again.finding_id == got.finding_id


def test_a_cancelled_async_asker_withdraws_its_question(redis_url: str) -> None:
    """An asyncio task cancelled while its ask waits (a client gone, a timeout around it)
    cancels the question, as a timeout does: nobody answers it for nobody."""

    async def body() -> None:
        async with AsyncSwarm(redis_url, swarm="test") as handle:
            await handle.publish_context("lib", "chapter 42\n", source="book.md")
            asking = asyncio.create_task(handle.ask("lib", "still there?", timeout_s=60))
            for _ in range(200):
                page = await handle.list_tasks(queue=ask_queue("lib"))
                if page.items:
                    break
                await asyncio.sleep(0.02)
            (question,) = page.items
            await asyncio.sleep(0.2)
            asking.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asking
            assert (await handle.get_task(question.id)).status is TaskStatus.CANCELLED

    asyncio.run(body())


def _asking(swarm: Swarm, *args: object, **kwargs: object) -> tuple[threading.Thread, list[object]]:
    """``swarm.ask(*args, **kwargs)`` in a thread, once its question is posted: the thread
    and what the ask returned or raised (when it has ended)."""
    before = len(swarm.list_tasks(queue=ask_queue("lib")).items)
    out: list[object] = []

    def run() -> None:
        try:
            out.append(swarm.ask(*args, **kwargs))  # type: ignore[arg-type]
        except Exception as exc:  # (the test reads it)
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while len(swarm.list_tasks(queue=ask_queue("lib")).items) == before:
        assert time.monotonic() < deadline, "the question was never posted"
        time.sleep(0.01)
    return thread, out


def test_an_asker_sharing_a_question_leaves_it_to_the_asker_that_posted_it(owned: Swarm) -> None:
    """A later asker whose dedupe key met the question gives up without withdrawing it: the
    asker that posted it still waits, and gets its answer."""
    first, got = _asking(owned, "lib", "shared q", timeout_s=30, dedupe_key="dk")
    (question,) = owned.list_tasks(queue=ask_queue("lib")).items
    with pytest.raises(Timeout, match=r"stays open as .*shared with the asker that posted it"):
        owned.ask("lib", "shared q", timeout_s=0.2, dedupe_key="dk")
    assert owned.get_task(question.id).status is TaskStatus.PENDING
    _answerer(owned, ask_queue("lib"), lambda _t: "the shared answer").join(10)
    first.join(10)
    (answer,) = got
    assert isinstance(answer, Answer) and answer.question_id == question.id


def test_a_question_asked_to_be_kept_is_never_withdrawn_by_a_later_asker(owned: Swarm) -> None:
    with pytest.raises(Timeout, match="stays queued") as first:
        owned.ask("lib", "kept q", timeout_s=0.1, keep=True, dedupe_key="kk")
    with pytest.raises(Timeout, match="which asked to keep it") as later:
        owned.ask("lib", "kept q", timeout_s=0.1, dedupe_key="kk")
    qid = first.value.task_id
    assert later.value.task_id == qid and qid is not None
    assert owned.get_task(qid).status is TaskStatus.PENDING
    assert owned.get_task(qid).data["keep"] is True
    _answerer(owned, ask_queue("lib"), lambda _t: "kept and answered").join(10)
    assert owned.ask("lib", "kept q", timeout_s=0.01, dedupe_key="kk").text == "kept and answered"


def test_a_sharer_still_waiting_asks_anew_when_the_poster_withdraws(owned: Swarm) -> None:
    """The asker that posted the question gives up first and withdraws it; the one sharing
    it, still waiting, is not cut short: it posts the question anew and gets its answer."""
    poster, posted = _asking(owned, "lib", "who waits?", timeout_s=1.0, dedupe_key="sw")
    (original,) = owned.list_tasks(queue=ask_queue("lib")).items

    def answer_the_new_one() -> None:  # once the poster has given up: the question anew
        poster.join(10)
        _answerer(owned, ask_queue("lib"), lambda _t: "42").join(20)

    answerer = threading.Thread(target=answer_the_new_one, daemon=True)
    answerer.start()
    got = owned.ask("lib", "who waits?", timeout_s=30, dedupe_key="sw")
    answerer.join(10)
    (gave_up,) = posted
    assert isinstance(gave_up, Timeout) and "it was cancelled" in str(gave_up)
    assert owned.get_task(original.id).status is TaskStatus.CANCELLED
    assert got.text == "42" and got.question_id != original.id
    # The key names the new question: asked again, its answer comes back at once.
    assert owned.ask("lib", "who waits?", timeout_s=0.01, dedupe_key="sw").text == "42"


def test_a_question_cancelled_by_someone_else_says_so_truthfully(owned: Swarm) -> None:
    asking, got = _asking(owned, "lib", "cancel me?", timeout_s=30)
    (question,) = owned.list_tasks(queue=ask_queue("lib")).items
    owned.cancel(question.id)
    asking.join(10)
    (error,) = got
    assert isinstance(error, InvalidState)
    assert "not by this asker" in str(error) and "says by whom" not in str(error)
    assert "its task.cancelled event says when" in str(error)


def test_an_interrupted_asker_s_note_says_what_became_of_its_question(redis_url: str) -> None:
    """The interrupt goes on, with a note (PEP 678) a face shows: cancelled, kept, or left
    to the asker that posted it."""

    async def interrupted(handle: AsyncSwarm, **kwargs: object) -> tuple[str, str]:
        before = len((await handle.list_tasks(queue=ask_queue("lib"))).items)
        asking = asyncio.create_task(handle.ask("lib", "q?", timeout_s=60, **kwargs))  # type: ignore[arg-type]
        for _ in range(500):
            items = (await handle.list_tasks(queue=ask_queue("lib"))).items
            if len(items) > before:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        asking.cancel()
        with pytest.raises(asyncio.CancelledError) as caught:
            await asking
        return items[-1].id, " ".join(getattr(caught.value, "__notes__", []))

    async def body() -> None:
        async with AsyncSwarm(redis_url, swarm="test") as handle:
            await handle.publish_context("lib", "chapter 42\n", source="book.md")
            qid, note = await interrupted(handle)
            assert note == (
                f"interrupted while asking 'lib': it was cancelled ({qid}); an answer that "
                "still arrives is kept, superseded; ask again when you can wait for the answer"
            )
            qid, note = await interrupted(handle, keep=True, dedupe_key="n1")
            assert f"it stays queued as {qid}; its answer will be the finding" in note
            assert (await handle.get_task(qid)).status is TaskStatus.PENDING
            # Sharing that kept question: interrupted, it leaves it be.
            sharer = asyncio.create_task(handle.ask("lib", "q?", timeout_s=60, dedupe_key="n1"))
            await asyncio.sleep(0.3)
            sharer.cancel()
            with pytest.raises(asyncio.CancelledError) as caught:
                await sharer
            assert f"it stays open as {qid}" in " ".join(getattr(caught.value, "__notes__", []))
            assert (await handle.get_task(qid)).status is TaskStatus.PENDING

    asyncio.run(body())


def test_an_answer_can_wait_for_the_next_question_in_the_same_call(owned: Swarm) -> None:
    """``answer(..., claim_next=, wait_s=)``, as ``report``'s: a shard answering one question
    waits there for the next, which a second asker posts while it waits."""
    queue = ask_queue("lib")
    answers: list[Answer] = []
    first = threading.Thread(target=lambda: answers.append(owned.ask("lib", "one?", timeout_s=20)))
    first.start()
    question = owned.claim(queue, worker="librarian", wait_s=20)
    assert question is not None
    second: list[Answer] = []

    def ask_later() -> None:
        time.sleep(0.3)  # (the answer below is waiting by then, or finds it on arrival)
        second.append(owned.ask("lib", "two?", timeout_s=20))

    later = threading.Thread(target=ask_later)
    later.start()
    finding, following = owned.answer(
        question, question.token, "first answer", worker="librarian",
        claim_next=queue, wait_s=10,
    )  # fmt: skip
    first.join(5)
    assert answers[0].finding_id == finding.id
    assert following is not None and following.description == "two?"
    assert following.worker == "librarian" and following.token
    owned.answer(following, following.token, "second answer", worker="librarian")
    later.join(5)
    assert second[0].text == "second answer"
