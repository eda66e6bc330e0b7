"""What a user tour of the cost views found, mended: ``swarm status --pass`` says what its
total never counts (a pipeline's planner and synthesizer tasks, answers to questions asked)
and words a retired or unknown pass rightly; lineage shows what an answer cost and keeps
multi-line summaries on one line; a task's cost says how many of its runs reported no
cost; ``swarm retire`` says "1 task", not "1 tasks"."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from redis_swarm import Swarm
from redis_swarm._codec import counted
from redis_swarm._errors import Timeout
from redis_swarm._hints import LIST_PASSES
from redis_swarm._keys import ask_queue
from redis_swarm._models import PassCosts, RetiredPass, RetiredQuestions, Task
from redis_swarm._pipeline.lineage import lineage, lineage_text
from redis_swarm._pipeline.report import retired_note
from redis_swarm._usage import Usage
from redis_swarm.cli._retire import _pass_line, _questions_line
from redis_swarm.mcp_server import build_server

from ._cli import Cli
from .mcp_server._helpers import connect

OWNER = "lib"


@pytest.fixture
def handle(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as swarm:
        yield swarm


def _claimed(swarm: Swarm, queue: str, worker: str = "w1") -> Task:
    task = swarm.claim([queue], worker=worker)
    assert task is not None and task.token is not None
    return task


# --- 1. what a pass's cost never counts, said where it is shown


def test_status_pass_says_what_its_cost_never_counts(handle: Swarm, redis_url: str) -> None:
    handle.post_task("q", "a", pass_name="p1")
    task = _claimed(handle, "q")
    assert task.token is not None
    handle.report(task.id, task.token, {"summary": "a"}, usage=Usage("x", cost_usd=0.1))
    out = Cli(redis_url)("status", "--pass", "p1").stdout
    assert f"  not counted: {PassCosts.NOT_COUNTED}" in out
    assert "swarm pipeline status counts them" in out and "questions its workers asked" in out

    async def body() -> dict[str, Any]:
        async with connect(build_server(handle, role="worker")) as worker:
            asked, _ = await worker("swarm_status", pass_name="p1")
            return dict(asked["pass_costs"])

    assert anyio.run(body)["not_counted"] == PassCosts.NOT_COUNTED


# --- 2. an answer's cost in lineage


def test_lineage_shows_what_an_answer_to_a_question_asked_cost(handle: Swarm) -> None:
    handle.publish_context(OWNER, "the answer is in chapter 42\n", source="book.md")
    handle.post_task("work", "a task whose worker asks")
    asker = _claimed(handle, "work")
    with pytest.raises(Timeout) as waited:
        handle.ask(OWNER, "where is it?", timeout_s=0.05, keep=True, asker=asker)
    qid = waited.value.task_id
    assert qid is not None
    question = _claimed(handle, ask_queue(OWNER), "librarian")
    assert question.id == qid and question.token is not None
    spent = Usage("claude-json", cost_usd=0.0125, tokens_in=800, tokens_out=20)
    answer = handle.answer(qid, question.token, "chapter 42", usage=spent)
    assert asker.token is not None
    finding = handle.report(asker.id, asker.token, {"summary": "done"})
    tree = lineage(handle, finding.id)
    (node,) = tree["answers"]
    assert node["usage"] == {"cost_usd": 0.0125, "tokens_in": 800, "cached_in": None,
                             "tokens_out": 20}  # fmt: skip
    text = "\n".join(lineage_text(tree))
    assert (
        f"asked {ask_queue(OWNER)}: where is it? -> answer {answer.id} by librarian "
        "($0.0125 · 800 in / 20 out): chapter 42"
    ) in text


# --- 3. a task's runs that reported no cost


def _failed_then_codex(swarm: Swarm) -> Task:
    """A task whose first run failed at $0.02 and whose second, a Codex run, reported
    tokens only."""
    posted = swarm.post_task("q", "one task")
    first = _claimed(swarm, "q")
    assert first.token is not None
    failed = Usage("claude-json", cost_usd=0.02, tokens_in=6, tokens_out=1)
    swarm.fail(first.id, first.token, "crashed", usage=failed, retry_after_s=0)
    second = _claimed(swarm, "q", "w2")
    assert second.token is not None and second.id == posted.id
    swarm.report(second.id, second.token, {"summary": "done"}, model="gpt-5-codex",
                 usage=Usage("codex-jsonl", tokens_in=900, tokens_out=30))  # fmt: skip
    return posted


def test_a_tasks_cost_says_how_many_runs_reported_no_cost(handle: Swarm, redis_url: str) -> None:
    task = _failed_then_codex(handle)
    assert handle.task_costs(task.id).runs() == (2, 1)
    cli = Cli(redis_url)
    shown = cli("task", "show", task.id).stdout
    assert "$0.0200 · 906 in / 31 out (1 of 2 runs reported no cost) (its finding" in shown
    tree = cli.json("lineage", task.id)
    assert (tree["runs"], tree["runs_without_cost"]) == (2, 1)
    text = cli("lineage", task.id).stdout
    assert "  total: $0.0200 · 906 in / 31 out (1 of 2 runs reported no cost)" in text


# --- 4. status --pass on a retired pass and on an unknown one


def test_status_pass_words_a_retired_and_an_unknown_pass(handle: Swarm, redis_url: str) -> None:
    handle.post_task("q", "one", pass_name="day-2")
    task = _claimed(handle, "q")
    assert task.token is not None
    handle.fail(task.id, task.token, "no", retry=False, usage=Usage("claude-json", cost_usd=0.5))
    assert handle.retire_pass("day-2").tasks == 1
    cli = Cli(redis_url)
    retired = cli("status", "--pass", "day-2")
    assert "pass cost: no record of an agent run left: the pass was retired (" in retired.stdout
    assert "no agent run recorded yet" not in retired.stdout
    assert "note: the pass was retired on " in retired.stdout
    said = " ".join(retired.stderr.split())  # (its zeros: said to be no misspelling)
    assert 'pass "day-2" was retired on ' in said and "nothing to wait for" not in said
    assert "were removed, so there is nothing of them left to count" in said
    handle.post_task("q", "two", pass_name="day-3")
    typo = cli("status", "--pass", "day-33")
    assert 'no task has ever been posted to pass "day-33": no agent run to count' in typo.stderr
    assert "nothing to wait for" not in typo.stderr
    assert f'(the passes: "day-3"; {LIST_PASSES})' in typo.stderr
    assert "swarm status --all lists them" in typo.stderr  # (plain status hides some)


# --- 5. retire's counts, singular and plural


def test_retire_says_one_thing_in_the_singular() -> None:
    one = RetiredPass("P", tasks=1, findings=1, kept=1, cited=1, corrupt=1)
    assert _pass_line(one) == (
        "retired pass P: 1 task, 1 finding (1 open task kept; 1 settled task kept: a "
        "synthesis of another pass cites it; 1 record stored unreadable kept: swarm doctor "
        "names it)"
    )
    two = RetiredPass("P", tasks=2, findings=0, kept=0, cited=2, corrupt=2)
    assert _pass_line(two) == (
        "retired pass P: 2 tasks, 0 findings (0 open tasks kept; 2 settled tasks kept: a "
        "synthesis of another pass cites them; 2 records stored unreadable kept: swarm "
        "doctor names them)"
    )
    asked = RetiredQuestions("ask.lib", questions=1, findings=1, open=1, cited=1, other=1)
    assert _questions_line(asked) == (
        "retired questions of ask.lib: 1 question, 1 finding (1 open question kept; 1 kept: "
        "a synthesis cites its answer; 1 task with a pass or shard kept: swarm retire PASS "
        "frees it)"
    )


def test_retire_cli_counts_one_task_as_one(handle: Swarm, redis_url: str) -> None:
    handle.post_task("q", "one", pass_name="P")
    task = _claimed(handle, "q")
    assert task.token is not None
    handle.report(task.id, task.token, {"summary": "done"})
    out = Cli(redis_url)("retire", "P").stdout
    assert out == "retired pass P: 1 task, 1 finding (0 open tasks kept)\n"


# --- 6. a multi-line summary in lineage


def test_lineage_keeps_a_multi_line_summary_on_its_line(handle: Swarm, redis_url: str) -> None:
    handle.post_task("q", "first line of the task\nsecond line of the task", pass_name="P")
    task = _claimed(handle, "q")
    assert task.token is not None
    finding = handle.report(task.id, task.token, {"summary": "first line\nsecond line"})
    handle.synthesize("shard-1", "P", "all", [finding.id])
    cli = Cli(redis_url)
    for ident in (finding.id, task.id):
        lines = cli("lineage", ident).stdout.splitlines()
        assert all(line.startswith(("finding", "task", "  ")) for line in lines), lines
        text = "\n".join(lines)
        assert f"finding {finding.id}: first line second line" in text
        assert "second line" not in text.replace("first line second line", "").replace(
            "first line of the task second line of the task", ""
        ), text


# --- 7. one plural rule, and the counts that read wrong in the singular


def test_counted_says_one_thing_in_the_singular() -> None:
    assert counted(1, "task") == "1 task"
    assert counted(0, "finding") == "0 findings"
    assert counted(1206, "settled pass", "settled passes") == "1,206 settled passes"


def test_status_pass_of_a_retired_pass_counts_one_task_as_one(
    handle: Swarm, redis_url: str
) -> None:
    handle.cancel(handle.post_task("q", "one", pass_name="day-2").id)
    assert handle.retire_pass("day-2").tasks == 1
    shown = Cli(redis_url)("status", "--pass", "day-2")
    said = "its 1 settled task and 0 findings were removed"
    assert said in " ".join(shown.stderr.split())  # unknown_pass, retired
    assert said in " ".join(shown.stdout.split())  # PassCosts.caveats


def test_a_pass_with_one_corrupt_record_says_one_record() -> None:
    costs = PassCosts("p", total={}, failed={}, by_model={}, corrupt=1)
    assert costs.caveats() == [
        "left out: 1 record of the pass stored unreadable (swarm doctor names each)"
    ]


def test_pipeline_status_counts_one_retired_task_as_one() -> None:
    row = {"name": "Pass 2", "synthesis": "s-1",
           "retired": {"at": "2026-12-05T10:12:31.802Z", "tasks": 1, "findings": 1}}  # fmt: skip
    assert "its 1 settled task and 1 finding were removed" in retired_note(row)
    assert "(s)" not in retired_note(row)


def test_lineage_of_a_task_counts_one_attempt_as_one(handle: Swarm) -> None:
    handle.post_task("q", "one task", pass_name="P")
    task = _claimed(handle, "q")
    assert task.token is not None
    handle.report(task.id, task.token, {"summary": "done"})
    text = "\n".join(lineage_text(lineage(handle, task.id)))
    assert f"task {task.id} (completed, 1 attempt): one task" in text


def test_lineage_escapes_control_characters_itself(handle: Swarm) -> None:
    handle.post_task("q", "a \x1b]52;c;evil\x07 task", pass_name="P")
    task = _claimed(handle, "q")
    assert task.token is not None
    handle.report(task.id, task.token, {"summary": "done"})
    text = "\n".join(lineage_text(lineage(handle, task.id)))
    assert "\x1b" not in text and "a \\x1b]52;c;evil\\x07 task" in text


# --- 8. what a pass's cost never counts: one sentence, in every face and in JSON


def test_the_mcp_tool_says_not_counted_in_the_cores_words(handle: Swarm) -> None:
    async def body() -> str:
        server = build_server(handle, role="worker")
        (spec,) = [s for s in await server.list_tools() if s.name == "swarm_status"]
        return str(spec.input_schema["properties"]["pass_name"]["description"])

    described = " ".join(anyio.run(body).split())
    assert PassCosts.NOT_COUNTED in described and PassCosts.COVERS in described


def test_status_pass_json_says_what_its_cost_never_counts(handle: Swarm, redis_url: str) -> None:
    handle.post_task("q", "a", pass_name="p1")
    shown = Cli(redis_url).json("status", "--pass", "p1")
    assert shown["pass"]["costs"]["not_counted"] == PassCosts.NOT_COUNTED
