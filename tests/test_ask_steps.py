"""``ask`` driven step by step against a real server (each request it sends passed through
a gate the test holds): two sharers taking a withdrawn question over at the same instant,
an asker whose lease is nearly spent, a wait that fails, and what ``answers_for`` costs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from redis_swarm import Answer, ConnectionFailed, Swarm, Task, TaskStatus, Timeout
from redis_swarm._keys import ask_queue
from redis_swarm._ops import ask as ask_ops
from redis_swarm._protocol import Batch, Call, Cmd, Operation

from ._servers import ServerFactory

QUEUE = ask_queue("lib")


@pytest.fixture
def owned(server_url: str) -> Iterator[Swarm]:
    with Swarm(server_url, swarm="test") as handle:
        handle.publish_context("lib", "the answer is in chapter 42\n", source="book.md")
        yield handle


def _items(request: Any) -> tuple[Any, ...]:
    return request.items if isinstance(request, Batch) else (request,)


def _posts(request: Any) -> int:
    """How many task posts a request sends."""
    return sum(1 for i in _items(request) if isinstance(i, Call) and i.script == "task_post")


def _waits(request: Any) -> bool:
    """Whether the request blocks on the event stream (the ask waits for its answer)."""
    return any(isinstance(i, Cmd) and i.args[0] == "XREAD" for i in _items(request))


def _gated(
    op: Operation[Any],
    before_post: Callable[[int], None],
    waiting: Callable[[], None],
    failed: Callable[[BaseException], None] = lambda _exc: None,
    sending: Callable[[Any], None] = lambda _request: None,
) -> Operation[Any]:
    """``op``, its requests passed through as they are, but ``before_post(n)`` is called
    before its n-th task post is sent (a test holds it there), ``waiting()`` before it
    blocks on the event stream, ``failed(error)`` before a request's error is thrown into
    it, and ``sending(request)`` before every request. What a hook raises (an interrupt)
    is thrown into ``op`` in place of the request's reply, as a shell does."""
    posts = 0
    try:
        request = next(op)
        while True:
            try:
                for _ in range(_posts(request)):
                    posts += 1
                    before_post(posts)
                if _waits(request):
                    waiting()
                sending(request)
            except BaseException as exc:  # (an interrupt while it sends)
                request = op.throw(exc)
                continue
            try:
                reply = yield request
            except BaseException as exc:  # (an error reply, an interrupt: the op's to judge)
                failed(exc)
                request = op.throw(exc)
            else:
                request = op.send(reply)
    except StopIteration as stop:
        return stop.value


class _Sharer:
    """An asker in a thread, whose ask is held before its second post (the one that takes
    the question over) until ``go`` is set."""

    def __init__(self, swarm: Swarm, timeout_s: float) -> None:
        self.taking_over = threading.Event()  # it is about to post the question anew
        self.go = threading.Event()
        self.waiting = threading.Event()  # let go, it waits for the answer
        self.out: list[object] = []
        op = ask_ops.ask(swarm._ctx, "lib", "who waits?", timeout_s=timeout_s, dedupe_key="race")
        self.thread = threading.Thread(target=self._run, args=(swarm, op), daemon=True)
        self.thread.start()

    def _hold(self, n: int) -> None:
        if n == 2:
            self.taking_over.set()
            assert self.go.wait(20), "never let go"

    def _waiting(self) -> None:
        if self.go.is_set():
            self.waiting.set()

    def _run(self, swarm: Swarm, op: Operation[Answer]) -> None:
        try:
            self.out.append(swarm._run(_gated(op, self._hold, self._waiting)))
        except Exception as exc:  # (the test reads it)
            self.out.append(exc)


def _live(swarm: Swarm) -> list[str]:
    live = {TaskStatus.PENDING, TaskStatus.CLAIMED, TaskStatus.DELAYED}
    return [t.id for t in swarm.list_tasks(queue=QUEUE).items if t.status in live]


def test_two_sharers_taking_a_withdrawn_question_over_at_once_post_it_once(
    owned: Swarm, server_url: str
) -> None:
    """Both sharers see the question withdrawn, and both post it anew at the same instant:
    one question is posted (the other sharer's post meets it), and both get its answer. It
    posted two before, each a question live for answerers to spend on."""

    def withdrawing() -> None:  # the asker that posts it, and gives up first
        with pytest.raises(Timeout):
            owned.ask("lib", "who waits?", timeout_s=1.5, dedupe_key="race")

    poster = threading.Thread(target=withdrawing, daemon=True)
    poster.start()
    while not _live(owned):
        time.sleep(0.01)
    (original,) = _live(owned)
    with Swarm(server_url, swarm="test") as one, Swarm(server_url, swarm="test") as two:
        sharers = [_Sharer(one, 30), _Sharer(two, 30)]
        for sharer in sharers:  # both share the poster's question, then it withdraws it
            assert sharer.taking_over.wait(20), "the sharer never took the question over"
        poster.join(10)
        assert owned.get_task(original).status is TaskStatus.CANCELLED
        assert _live(owned) == []
        for sharer in sharers:  # both take it over at once
            sharer.go.set()
        for sharer in sharers:  # both posted (or met) the question anew, and wait for it
            assert sharer.waiting.wait(20), sharer.out
        task = owned.claim(QUEUE, worker="librarian", wait_s=10)
        assert task is not None
        assert _live(owned) == [task.id], "a second question was posted"
        owned.answer(task.id, task.token, "chapter 42", worker="librarian")
        for sharer in sharers:
            sharer.thread.join(20)
        got = [sharer.out for sharer in sharers]
        assert all(isinstance(a, Answer) and a.question_id == task.id for (a,) in got), got
    assert len(owned.list_tasks(queue=QUEUE).items) == 2  # the withdrawn one and its successor
    # The key names the question anew: asked again, its answer comes back at once.
    assert owned.ask("lib", "who waits?", timeout_s=0.01, dedupe_key="race").question_id == task.id


def test_an_asker_late_in_its_lease_renews_it_before_it_waits(owned: Swarm) -> None:
    """A worker that asks when less than a third of its lease is left renewed it only a
    third of a lease after it began to wait: by then the lease had expired, and another
    worker's claim took the task away (the ask then failed with LeaseLost)."""
    owned.post_task("main", "write the report")
    mine = owned.claim("main", worker="w-1", lease_s=1.5)
    assert mine is not None
    time.sleep(1.2)  # 0.3 s of the lease left
    stolen: list[Task | None] = []

    def waiting() -> None:  # the first wait: hold it while another worker tries its claim
        if not stolen:
            time.sleep(0.5)  # past the lease the claim gave
            stolen.append(owned.claim("main", worker="w-2"))
            _answerer = owned.claim(QUEUE, worker="librarian")
            assert _answerer is not None
            owned.answer(_answerer.id, _answerer.token, "chapter 42", worker="librarian")

    op = ask_ops.ask(owned._ctx, "lib", "where?", asker=mine, timeout_s=20)
    got = owned._run(_gated(op, lambda _n: None, waiting))
    assert stolen == [None], "another worker claimed the asker's task"
    assert got.text == "chapter 42" and got.asker_task == mine.id
    assert owned.get_task(mine.id).attempts == 1


def test_an_asker_whose_own_task_is_taken_from_it_still_gets_its_answer(owned: Swarm) -> None:
    """The asker's task is cancelled while it waits, so its renewal is refused: the ask
    failed with LeaseLost, and left its question open for answerers to spend on with nobody
    waiting. A lost lease ends the renewals, not the wait (the work is not void for that:
    a report with a lost lease is accepted while the task is open)."""
    owned.post_task("main", "write the report")
    mine = owned.claim("main", worker="w-1", lease_s=0.6)
    assert mine is not None
    waits: list[int] = []

    def waiting() -> None:
        waits.append(1)
        if len(waits) == 1:
            owned.cancel(mine.id)  # (by the coordinator, say)
        elif len(waits) == 3:  # two renewals refused meanwhile (one every 0.2 s)
            task = owned.claim(QUEUE, worker="librarian")
            assert task is not None
            owned.answer(task.id, task.token, "chapter 42", worker="librarian")

    op = ask_ops.ask(owned._ctx, "lib", "where?", asker=mine, timeout_s=20)
    got = owned._run(_gated(op, lambda _n: None, waiting))
    assert got.text == "chapter 42" and got.asker_task == mine.id


def test_an_asker_whose_wait_fails_withdraws_its_question(servers: ServerFactory) -> None:
    """The server stops while the asker waits (a restart): its wait fails, and it gave up
    without withdrawing its question, left open for answerers to spend on with nobody
    waiting. It withdraws it now, as an interrupted asker does, once the server is back,
    and the error says so."""
    server = servers.start(appendonly=True)
    with Swarm(f"{server.url}?retries=1", swarm="test") as swarm:
        swarm.publish_context("lib", "chapter 42\n", source="book.md")
        asked: list[str] = []

        def waiting() -> None:
            if not asked:
                (question,) = swarm.list_tasks(queue=QUEUE).items
                asked.append(question.id)
                server.stop()  # (its AOF written: the question is there once restarted)

        def failed(_exc: BaseException) -> None:
            if server.proc.poll() is not None:
                server.restart()

        op = ask_ops.ask(swarm._ctx, "lib", "where?", timeout_s=20)
        with pytest.raises(ConnectionFailed) as lost:
            swarm._run(_gated(op, lambda _n: None, waiting, failed))
        (qid,) = asked
        assert swarm.get_task(qid).status is TaskStatus.CANCELLED
        assert f"stopped waiting while asking 'lib': it was cancelled ({qid})" in str(lost.value)


def _cancels(request: Any) -> bool:
    return any(
        isinstance(i, Call) and i.script == "task_update" and "cancel" in i.args
        for i in _items(request)
    )


@pytest.mark.parametrize("interrupted", [False, True])
def test_an_answer_arriving_as_the_asker_gives_up_is_not_lost(
    owned: Swarm, interrupted: bool
) -> None:
    """The answer is stored between the asker's last look and its withdrawal (held just
    before the cancel is sent): a timed-out asker returns it instead of raising Timeout; an
    interrupted one goes on with the interrupt, its note naming the answer."""
    answered: list[str] = []

    def sending(request: Any) -> None:
        if _cancels(request) and not answered:
            task = owned.claim(QUEUE, worker="librarian")
            assert task is not None
            found = owned.answer(task.id, task.token, "just in time", worker="librarian")
            answered.append(found.id)

    def waiting() -> None:
        if interrupted:
            raise KeyboardInterrupt  # (as Ctrl-C does, while the ask waits)

    op = ask_ops.ask(owned._ctx, "lib", "in time?", timeout_s=0 if not interrupted else 20)
    if not interrupted:
        got = owned._run(_gated(op, lambda _n: None, waiting, sending=sending))
        assert isinstance(got, Answer) and (got.text, got.finding_id) == ("just in time", *answered)
        return
    with pytest.raises(KeyboardInterrupt) as caught:
        owned._run(_gated(op, lambda _n: None, waiting, sending=sending))
    (fid,) = answered
    (note,) = getattr(caught.value, "__notes__", [])
    assert note.startswith("interrupted while asking 'lib': t-")
    assert note.endswith(f" was answered meanwhile: its answer is {fid}")


def _requests(swarm: Swarm, op: Operation[Any]) -> tuple[Any, int]:
    """What ``op`` returns, and how many round trips it took."""
    sent: list[Any] = []

    def counted() -> Operation[Any]:
        try:
            request = next(op)
            while True:
                sent.append(request)
                request = op.send((yield request))
        except StopIteration as stop:
            return stop.value

    return swarm._run(counted()), len(sent)


def test_answers_for_costs_three_round_trips_however_many_were_asked(owned: Swarm) -> None:
    """It read each question, then its answer, one round trip each (up to 201)."""
    owned.post_task("main", "write the report")
    mine = owned.claim("main", worker="w-1", lease_s=60)
    assert mine is not None
    for n in range(12):
        asking = threading.Thread(
            target=lambda n=n: owned.ask("lib", f"question {n}?", asker=mine, timeout_s=20),
            daemon=True,
        )
        asking.start()
        task = owned.claim(QUEUE, worker="librarian", wait_s=10)
        assert task is not None
        owned.answer(task.id, task.token, f"answer {n}", worker="librarian")
        asking.join(10)
    got, trips = _requests(owned, ask_ops.answers_for(owned._ctx, mine.id))
    assert [a.text for a in got] == [f"answer {n}" for n in range(12)]
    assert [a.question for a in got] == [f"question {n}?" for n in range(12)]
    assert trips == 3
    assert _requests(owned, ask_ops.answers_for(owned._ctx, "t-none")) == ([], 1)


def test_stop_ends_the_wait_as_its_timeout_would(owned: Swarm) -> None:
    """``stop()`` true ends the wait within a slice: the question this asker posted is
    withdrawn, Timeout says how long it waited; a question met by its dedupe key (another
    asker's) is left open."""
    began = time.monotonic()

    def after_a_second() -> bool:
        return time.monotonic() - began > 1

    # (seen at the first look after it turns true: stop() is asked a second apart at most)
    with pytest.raises(
        Timeout, match=r"no answer from 'lib' after [12](\.\d)? s \(the caller stopped waiting\)"
    ) as info:
        owned.ask("lib", "Who signs?", timeout_s=60, stop=after_a_second)
    assert time.monotonic() - began < 4
    assert "longer timeout" not in str(info.value)
    assert info.value.task_id is not None
    assert owned.get_task(info.value.task_id).status is TaskStatus.CANCELLED
    # Met by its key: another asker's question, left to it.
    shared = owned.post_task(QUEUE, "Who pays?", dedupe_key="payer")
    with pytest.raises(Timeout):
        owned.ask("lib", "Who pays?", timeout_s=60, dedupe_key="payer", stop=lambda: True)
    assert owned.get_task(shared.id).status is TaskStatus.PENDING
