"""A model-based test of retiring passes (``retire_pass``): tasks of a few passes are posted,
worked (claims, reports, failures with and without retry, releases, cancels, requeues of dead
tasks, reaps, clock advances), syntheses of one pass cite findings of others, and passes are
retired (dry runs too) at random points, against Redis and against a plain-Python model.

The model says when a retirement is refused (Conflict while the pass has a pending, delayed or
claimed task; NotFound for a pass never posted to nor retired), what goes (every task of the
pass, with all its findings, superseded ones too) and what stays (a finding a synthesis of
another pass cites, with its task and that task's current finding), and the counts returned.
After every step the two agree on every task, finding and synthesis, and on every counter
(queue_stats, pass_stats, shard_stats, status); a retired task is a NotFound, a report on it
says it was retired, a dry run changes nothing and counts what the real run removes, and no
synthesis cites a missing finding but one of its own pass, retired with it."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from redis_swarm import AlreadyCompleted, Conflict, LeaseLost, NotFound, RetiredPass, Swarm
from redis_swarm._models import OPEN_STATUSES
from redis_swarm._ops import retire as retire_ops
from redis_swarm._pipeline.lineage import lineage

from ._clock import FakeClock
from ._invariants import STATUSES, check_swarm
from .test_retire import _contents, _first_steps
from .test_tasks_model import QUEUES, Model, ModelTask, QueueMachine

PASSES = ("p1", "p2", "p3")
SHARDS = ("s1", "s2")


@dataclass
class PassTask(ModelTask):
    pass_name: str = ""
    parent: str | None = None
    dedupe_key: str | None = None


@dataclass(frozen=True)
class ModelFinding:
    id: str
    task_id: str
    pass_name: str
    shard: str | None
    superseded: bool


@dataclass(frozen=True)
class Retirement:
    """What retiring a pass removes: its tasks and findings, and the tasks kept (``cited``)."""

    tasks: list[str]
    findings: list[str]
    cited: set[str]


@dataclass
class RetireModel(Model):
    """The queue's model (test_tasks_model), with passes, findings, syntheses, dedupe keys
    and retirements. ``tasks`` holds the tasks still stored; the retired ones move to
    ``retired``, their findings to ``gone``."""

    tasks: dict[str, ModelTask] = field(default_factory=dict)
    seq: int = 0
    findings: dict[str, ModelFinding] = field(default_factory=dict)
    gone: dict[str, ModelFinding] = field(default_factory=dict)
    retired: dict[str, PassTask] = field(default_factory=dict)
    syntheses: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # pass, sources
    dedupe: dict[tuple[str, str], str] = field(default_factory=dict)  # (queue, key) -> task
    records: dict[str, tuple[int, int]] = field(default_factory=dict)  # retired_passes
    queues: set[str] = field(default_factory=set)  # every queue ever posted to

    def of_pass(self, name: str) -> list[PassTask]:
        return [t for t in self.tasks.values() if isinstance(t, PassTask) and t.pass_name == name]

    def counts(self) -> dict[str, dict[str, int]]:
        """queue_stats: every queue ever posted to, zeros too (retiring leaves them)."""
        out = {q: dict.fromkeys(STATUSES, 0) for q in self.queues}
        for t in self.tasks.values():
            out[t.queue][t.status] += 1
        return out

    def pass_counts(self, name: str) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        for t in self.of_pass(name):
            out[t.status] += 1
        return out

    def refusal(self, name: str) -> tuple[type[Exception], str] | None:
        """Why retiring ``name`` is refused (the error and a part of its message), or None."""
        mine = self.of_pass(name)
        if not mine and name not in self.records:
            return NotFound, f'no task has ever been posted to pass "{name}"'
        held = Counter(t.status for t in mine if t.status in OPEN_STATUSES)
        if held:
            said = ", ".join(f"{held[s]} {s}" for s in OPEN_STATUSES if held[s])
            return Conflict, f"still has open tasks ({said})"
        return None

    def retirement(self, name: str) -> Retirement:
        """What retiring settled pass ``name`` removes (see lua/pass_retire.lua)."""
        cited = {f for pass_name, sources in self.syntheses.values() if pass_name != name
                 for f in sources}  # fmt: skip
        mine = [f for f in self.findings.values() if f.pass_name == name]
        kept = {f.task_id for f in mine if f.id in cited}
        tasks = [t.id for t in self.of_pass(name) if t.id not in kept]
        current = {self.tasks[tid].finding for tid in kept}  # kept with their task
        findings = [f.id for f in mine if f.id not in cited and f.id not in current]
        return Retirement(tasks, findings, kept)

    def retire(self, name: str, went: Retirement) -> None:
        for tid in went.tasks:
            t = self.tasks.pop(tid)
            assert isinstance(t, PassTask)
            self.retired[tid] = t
            if t.dedupe_key is not None:
                self.dedupe.pop((t.queue, t.dedupe_key), None)
        for fid in went.findings:
            self.gone[fid] = self.findings.pop(fid)
        if went.tasks or went.findings:
            tasks, findings = self.records.get(name, (0, 0))
            self.records[name] = (tasks + len(went.tasks), findings + len(went.findings))


def _numbers(done: RetiredPass) -> tuple[Any, ...]:
    return done.pass_name, done.tasks, done.findings, done.kept, done.cited, done.corrupt


class RetireMachine(QueueMachine):
    """QueueMachine's rules on tasks of passes, with syntheses and retirements; a rule on a
    retired task expects the NotFound the docs promise."""

    tasks = QueueMachine.tasks

    def __init__(self, swarm: Swarm, raw: redis.Redis, clock: FakeClock) -> None:
        super().__init__(swarm, raw, clock)
        self.model: RetireModel = RetireModel()
        self.raw = raw
        self.lineage_seen = False

    # --- posting and working

    @rule(
        target=tasks,
        queue=st.sampled_from(QUEUES),
        pass_name=st.sampled_from(PASSES),
        parent=st.sampled_from([None, *SHARDS]),
        dedupe_key=st.sampled_from([None, None, "k1", "k2"]),
        priority=st.integers(-1, 1),
        max_attempts=st.integers(1, 2),
        max_abandons=st.integers(1, 2),
        delay_s=st.sampled_from([None, None, 5]),
    )
    def post(
        self,
        queue: str,
        pass_name: str,
        parent: str | None,
        dedupe_key: str | None,
        priority: int,
        max_attempts: int,
        max_abandons: int,
        delay_s: int | None,
    ) -> str:
        return self._posted(
            queue, pass_name, parent, dedupe_key, priority, max_attempts, max_abandons, delay_s
        )

    def _posted(
        self,
        queue: str,
        pass_name: str,
        parent: str | None,
        dedupe_key: str | None,
        priority: int,
        max_attempts: int,
        max_abandons: int,
        delay_s: int | None,
    ) -> str:
        """A task posted, in the model too; the one already posted with its dedupe key
        (unless that one was retired since: its key went with it)."""
        not_before = None if delay_s is None else self.clock.now + delay_s * 1000
        task = self.swarm.post_task(
            queue, "d", pass_name=pass_name, parent=parent, dedupe_key=dedupe_key,
            priority=priority, max_attempts=max_attempts, lease_s=5, not_before=not_before,
            max_abandons=max_abandons,
        )  # fmt: skip
        m = self.model
        existing = None if dedupe_key is None else m.dedupe.get((queue, dedupe_key))
        if existing is not None:
            assert task.id == existing
            return existing
        assert task.id not in m.tasks and task.id not in m.retired
        m.seq += 1
        m.queues.add(queue)
        delayed = not_before is not None and not_before > self.clock.now
        m.tasks[task.id] = PassTask(
            task.id, queue, priority, m.seq, max_attempts, max_abandons, 5000,
            "delayed" if delayed else "pending", self.clock.now, not_before,
            pass_name=pass_name, parent=parent, dedupe_key=dedupe_key,
        )  # fmt: skip
        if dedupe_key is not None:
            m.dedupe[(queue, dedupe_key)] = task.id
        return task.id

    # QueueMachine's rules that are not rules here (test_tasks_model covers them): fewer
    # rules, so that more of each example's steps bring passes to their retirement.
    def renew(self, task: str, which: str) -> None:
        super().renew(task, which)

    def claim_batch(self, queues: tuple[str, ...], worker: str, n: int) -> None:
        super().claim_batch(queues, worker, n)

    def report_and_claim_next(self, task: str, which: str, queues: tuple[str, ...]) -> None:
        super().report_and_claim_next(task, which, queues)

    @initialize(
        target=tasks,
        posts=st.lists(
            st.tuples(
                st.sampled_from(PASSES), st.sampled_from(QUEUES), st.sampled_from([None, *SHARDS]),
                st.booleans(),
            ),
            max_size=6,
        ),
    )  # fmt: skip
    def some_work(self, posts: list[tuple[str, str, str | None, bool]]) -> Any:
        """Tasks to begin with, some completed: more of each example's steps on retiring."""
        ids = []
        for pass_name, queue, parent, completed in posts:
            ids.append(self._posted(queue, pass_name, parent, None, 0, 2, 2, None))
            t = self.model.tasks[ids[-1]]
            if completed and t.status == "pending":
                assert isinstance(t, PassTask)
                self._completed_outside(t)
        return multiple(*ids)

    def _gone(self, task: str, call: Any) -> bool:
        """Whether ``task`` was retired (then ``call`` on it must be a NotFound)."""
        if task not in self.model.retired:
            return False
        self._refused(NotFound, call)
        return True

    def _any_token(self, task: str) -> str:
        return self._real(task, self.model.retired[task].attempts)

    @rule(task=tasks, which=st.sampled_from(["current", "current", "stale"]), retry=st.booleans())
    def fail(self, task: str, which: str, retry: bool) -> None:
        if not self._gone(task, lambda: self.swarm.fail(task, self._any_token(task), "e")):
            super().fail(task, which, retry)

    @rule(task=tasks, which=st.sampled_from(["current", "stale"]))
    def release(self, task: str, which: str) -> None:
        if not self._gone(task, lambda: self.swarm.release(task, self._any_token(task))):
            super().release(task, which)

    @rule(task=tasks, drop=st.booleans())
    def cancel(self, task: str, drop: bool = False) -> None:
        if not self._gone(task, lambda: self.swarm.cancel(task, dead=drop)):
            super().cancel(task, drop)

    @rule(task=tasks)
    def requeue_dead(self, task: str) -> None:
        if not self._gone(task, lambda: self.swarm.requeue_dead(task)):
            super().requeue_dead(task)

    @rule(task=tasks)
    def get(self, task: str) -> None:
        if not self._gone(task, lambda: self.swarm.get_task(task)):
            assert self.swarm.get_task(task).status.value == self.model.tasks[task].status

    @rule(task=tasks, which=st.sampled_from(["current", "current", "stale", "outside"]))
    def report(self, task: str, which: str) -> None:
        self._reported(task, which)

    def _reported(self, task: str, which: str) -> None:
        """A report with the token of a lease (QueueMachine's rules) or from outside any lease
        (``which`` "outside": token None), the finding it stored added to the model: the
        task's own, or a superseded one (the task completed or cancelled); none on a task
        retired (a NotFound that says so), from a lease it never issued, or from outside
        while a live lease holds it."""
        m = self.model
        t = m.tasks.get(task) or m.retired[task]
        assert isinstance(t, PassTask)
        token = None if which == "outside" else self._token(t, which)
        real = None if token is None else self._real(task, token)

        def call() -> Any:
            return self.swarm.report(task, real, {"summary": "x"})

        if token is None:  # from outside: refused while a live lease holds the task
            lease_lost = t.status == "claimed" and (t.deadline or 0) > self.clock.now
        else:  # refused when the task never issued that lease
            lease_lost = not 1 <= token <= t.attempts

        if task in m.retired:
            said = f'task {task} was retired with its pass "{t.pass_name}" on '
            with pytest.raises(NotFound, match=re.escape(said)):
                call()
        elif lease_lost:
            self._refused(LeaseLost, call)
        elif t.status in ("completed", "cancelled"):
            with pytest.raises(AlreadyCompleted) as refused:
                call()
            fid = refused.value.finding_id
            assert fid is not None
            m.findings[fid] = ModelFinding(fid, task, t.pass_name, t.parent, superseded=True)
        elif token is None:
            self._completed_outside(t)
        else:
            finding = call()
            assert finding.worker == t.claims[token] and not finding.superseded
            t.status, t.worker, t.deadline = "completed", t.claims[token], None
            t.since, t.finding = self.clock.now, finding.id
            m.findings[finding.id] = ModelFinding(
                finding.id, task, t.pass_name, t.parent, superseded=False
            )

    @rule(pass_name=st.sampled_from(PASSES), data=st.data())
    def settle(self, pass_name: str, data: st.DataObject) -> None:
        """Every open task of the pass settled, so that it can be retired: reported by the
        holder of its live lease, else cancelled or reported from outside any lease (a shard
        recording what a worker found: ``token`` None)."""
        for t in self.model.of_pass(pass_name):
            if t.status not in OPEN_STATUSES:
                continue
            if t.status == "claimed" and (t.deadline or 0) > self.clock.now:
                self._reported(t.id, "current")
            elif data.draw(st.booleans(), label=f"cancel {t.id}"):
                super().cancel(t.id, False)  # (open: not dead)
            else:
                self._completed_outside(t)

    def _completed_outside(self, t: PassTask) -> None:
        """``t`` (open, no live lease) completed by a report from outside any lease."""
        finding = self.swarm.report(t.id, None, {"summary": "x"})
        assert finding.worker is None and not finding.superseded
        t.status, t.worker, t.deadline = "completed", None, None
        t.since, t.finding = self.clock.now, finding.id
        self.model.findings[finding.id] = ModelFinding(
            finding.id, t.id, t.pass_name, t.parent, superseded=False
        )

    @precondition(lambda self: bool(self.model.findings or self.model.gone))
    @rule(data=st.data())
    def synthesize(self, data: st.DataObject) -> None:
        """A synthesis citing findings stored (of one pass or several), written for the pass
        of the first (its own findings: retired with it) or another; now and then citing a
        finding retired since too, which is refused."""
        m = self.model
        if not m.findings or (m.gone and data.draw(st.integers(0, 4), label="any gone") == 0):
            cite = st.lists(st.sampled_from(list(m.gone)), min_size=1, max_size=2)
        else:
            cite = st.lists(st.sampled_from(list(m.findings)), min_size=1, max_size=3)
        sources = data.draw(cite.map(lambda ids: list(dict.fromkeys(ids))), label="sources")
        first = m.findings.get(sources[0]) or m.gone[sources[0]]
        pass_name = data.draw(st.sampled_from([first.pass_name, *PASSES, "px"]), label="pass")
        if any(fid not in m.findings for fid in sources):
            self._refused(
                NotFound,
                lambda: self.swarm.synthesize("s1", pass_name, "t", sources, across_passes=True),
            )
            return
        # (across passes: what a retirement keeps for another pass's synthesis is the model)
        made = self.swarm.synthesize("s1", pass_name, "t", sources, across_passes=True)
        m.syntheses[made.id] = (pass_name, sources)

    # --- retiring

    @rule(
        pass_name=st.sampled_from(PASSES),
        mode=st.sampled_from(["real", "dry", "dry, real", "killed, rerun"]),
        settle_first=st.booleans(),
        data=st.data(),
    )
    def retire(self, pass_name: str, mode: str, settle_first: bool, data: st.DataObject) -> None:
        """Retire the pass (``settle_first``: once its open tasks are settled), or a dry run
        of it, or both, or a run killed mid-way (after a few of its steps) and a run again."""
        if settle_first:
            self.settle(pass_name, data)
        self._retired(pass_name, mode, data)

    def _retired(self, pass_name: str, mode: str, data: st.DataObject) -> None:
        m = self.model
        refusal = m.refusal(pass_name)
        if refusal is not None:
            error, said = refusal
            for dry_run in (True, False):
                with pytest.raises(error) as refused:
                    self.swarm.retire_pass(pass_name, dry_run=dry_run)
                assert said in str(refused.value)
            return
        went = m.retirement(pass_name)
        expected = (pass_name, len(went.tasks), len(went.findings), 0, len(went.cited), 0)
        if mode != "real":
            before = _contents(self.raw)
            seen = self.swarm.retire_pass(pass_name, dry_run=True)
            assert _contents(self.raw) == before, "a dry run changed something"
            assert (_numbers(seen), seen.dry_run, seen.at) == (expected, True, self.clock.now)
            if mode == "dry":
                return
        if mode == "killed, rerun":
            steps = data.draw(st.integers(1, 4), label="steps before it is killed")
            op = retire_ops.retire_pass(self.swarm._ctx, pass_name)
            self.swarm._run(_first_steps(op, steps))
            check_swarm(self.raw, "test")  # whole between two steps
        done = self.swarm.retire_pass(pass_name)
        if mode == "killed, rerun":  # what the killed run removed is not in the rerun's counts
            assert done.tasks <= len(went.tasks) and done.findings <= len(went.findings)
            assert (done.kept, done.cited, done.corrupt) == (0, len(went.cited), 0)
            assert (done.pass_name, done.dry_run, done.at) == (pass_name, False, self.clock.now)
        else:
            assert (_numbers(done), done.dry_run, done.at) == (expected, False, self.clock.now)
        m.retire(pass_name, went)
        for tid in went.tasks:
            self._refused(NotFound, lambda tid=tid: self.swarm.get_task(tid))
        assert {  # (all the runs removed in all, the killed one's too)
            name: (r.tasks, r.findings) for name, r in self.swarm.retired_passes().items()
        } == m.records
        check_swarm(self.raw, "test")
        if not self.lineage_seen:
            self._lineage_says_retired(pass_name, went)

    def _lineage_says_retired(self, pass_name: str, went: Retirement) -> None:
        """Once: lineage of a synthesis of the pass that cites a finding retired with it says
        so, and shows the findings it cites that stay."""
        for sid, (of, sources) in self.model.syntheses.items():
            if of != pass_name or not set(sources) & set(went.findings):
                continue
            nodes = {node["id"]: node for node in lineage(self.swarm, sid)["findings"]}
            for fid in sources:
                if fid in went.findings:
                    assert nodes[fid].get("retired", {}).get("pass") == pass_name, nodes[fid]
                else:
                    assert not nodes[fid].get("missing"), nodes[fid]
            self.lineage_seen = True
            return

    # --- agreement (tasks_agree: QueueMachine's)

    @invariant()
    def counters_agree(self) -> None:
        m = self.model
        counts = m.counts()
        assert self.swarm.queue_stats() == counts
        for name in PASSES:
            assert self.swarm.pass_stats(name) == m.pass_counts(name), name
        shards = self.swarm.shard_stats(list(SHARDS))
        for shard in SHARDS:
            tasks = dict.fromkeys(STATUSES, 0)
            for t in m.tasks.values():
                if isinstance(t, PassTask) and t.parent == shard:
                    tasks[t.status] += 1
            found = sum(f.shard == shard for f in m.findings.values())
            assert shards[shard] == {"findings": found, "tasks": tasks}, shard
        status = self.swarm.status()
        # (a queue whose every task was retired is left out of the views: nothing is left)
        assert status.queues == {q: c for q, c in counts.items() if any(c.values())}
        assert status.totals == {s: sum(c[s] for c in counts.values()) for s in STATUSES}
        assert {p.name: p.counts for p in status.passes} == {
            name: m.pass_counts(name) for name in PASSES if m.of_pass(name)
        }

    @invariant()
    def findings_agree(self) -> None:
        m = self.model
        stored: set[str] = set()
        for name in PASSES:
            listed = self.swarm.findings(pass_name=name, limit=1000).items
            assert {f.id: (f.task_id, f.superseded) for f in listed} == {
                f.id: (f.task_id, f.superseded) for f in m.findings.values() if f.pass_name == name
            }, name
            stored.update(f.id for f in listed)
        syntheses = self.swarm.syntheses(limit=1000).items
        assert {s.id: (s.pass_name, list(s.sources)) for s in syntheses} == m.syntheses
        for synthesis in syntheses:
            for fid in synthesis.sources:
                # missing only when retired with the synthesis's own pass
                assert fid in stored or m.gone[fid].pass_name == synthesis.pass_name, (
                    synthesis.id,
                    fid,
                )


@pytest.mark.parametrize("swarm", ["sync"], indirect=True)  # the standalone server only
def test_retiring_passes_follows_the_model(
    swarm: Swarm, raw: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    swarm._ctx.clock = clock
    monkeypatch.setattr(retire_ops, "RETIRE_CHUNK", 2)  # most passes retired in several steps

    class Bound(RetireMachine):
        def __init__(self) -> None:
            super().__init__(swarm, raw, clock)

    run_state_machine_as_test(
        Bound,
        settings=settings(
            max_examples=80,
            stateful_step_count=50,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
