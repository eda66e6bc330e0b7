"""``swarm task ...``, ``swarm findings``, ``swarm synth ...`` against a real server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import Swarm
from redis_swarm._codec import iso

from ._cli import Cli
from ._clock import FakeClock
from ._handles import must


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def test_post_claim_report_lifecycle_human(cli: Cli, swarm: Swarm) -> None:
    out = cli("task", "post", "q1", "Find the signals", "--pass", "Pass 1", "--parent", "shard-a")
    assert out.stdout.startswith("posted t-") and out.stdout.strip().endswith("to q1")
    task_id = out.stdout.split()[1]
    claimed = cli("task", "claim", "q1", "--worker", "w1")
    assert claimed.stdout.startswith(f"claimed {task_id} (token 1.")
    token = claimed.stdout.split("(token ", 1)[1].split(")", 1)[0]
    assert "Find the signals" in claimed.stdout and "shard-a" in claimed.stdout
    renewed = cli("task", "renew", task_id, "--token", token, "--lease", "60")
    assert renewed.stdout.startswith(f"renewed {task_id} until 20")
    finding = '{"summary": "three signals", "confidence": 0.7, "sources": ["l. 1"]}'
    reported = cli(
        "task", "report", task_id, "--token", token, "--finding", finding, "--worker", "w1"
    )
    assert reported.stdout.startswith("reported f-") and task_id in reported.stdout
    shown = cli("task", "show", task_id).stdout
    assert "completed" in shown and "Pass 1" in shown
    listing = cli("task", "list", "--queue", "q1").stdout
    assert task_id in listing and "completed" in listing
    found = cli("findings", "--pass", "Pass 1").stdout
    assert "three signals" in found and task_id in found
    fid = reported.stdout.split()[1]
    detail = cli("findings", fid).stdout
    assert "three signals" in detail and "l. 1" in detail and "shard-a" in detail
    assert swarm.get_task(task_id).status == "completed"


def test_json_outputs_are_the_records(cli: Cli, swarm: Swarm) -> None:
    posted = cli.json("task", "post", "q1", "d", "--data", '{"k": [1, 2]}', "--priority", "5")
    assert posted["status"] == "pending" and posted["data"] == {"k": [1, 2]}
    assert posted["priority"] == 5 and posted["token"] is None
    assert set(posted) >= {"id", "queue", "description", "attempts", "max_attempts", "lease_s"}
    claimed = cli.json("task", "claim", "q1", "--worker", "w1")
    assert claimed["id"] == posted["id"] and claimed["token"].startswith("1.")
    assert claimed["status"] == "claimed" and claimed["worker"] == "w1"
    assert claimed["data"] == {"k": [1, 2]}
    finding = cli.json(
        "task", "report", claimed["id"], "--token", claimed["token"], "--summary", "ok"
    )
    assert finding["task_id"] == claimed["id"] and finding["summary"] == "ok"
    assert finding == swarm.get_finding(finding["id"]).to_dict()
    page = cli.json("task", "list")
    assert page["cursor"] is None and [t["id"] for t in page["items"]] == [posted["id"]]
    assert cli.json("task", "show", posted["id"])["finding_id"] == finding["id"]
    findings = cli.json("findings")
    assert findings == {"items": [finding], "cursor": None, "corrupt": []}
    assert cli.json("findings", finding["id"]) == finding


def test_claim_nothing_exits_3(cli: Cli) -> None:
    out = cli("task", "claim", "empty", "--worker", "w", expect=3)
    assert out.stdout == "" and "nothing to claim in empty" in out.stderr
    out = cli("--json", "task", "claim", "empty", "--wait", "0.2", expect=3)
    assert json.loads(out.stderr)["error"] == "Empty"


def test_claim_a_batch_and_report_claiming_the_next(cli: Cli, swarm: Swarm) -> None:
    posted = swarm.post_tasks([{"queue": "q", "description": f"t{i}"} for i in range(4)])
    out = cli.json("task", "claim", "q", "--worker", "w1", "--count", "2")
    assert list(out) == ["items"]  # as every command that returns several records
    batch = out["items"]
    assert [t["id"] for t in batch] == [t.id for t in posted[:2]]
    assert len({t["token"] for t in batch}) == 2
    first = batch[0]
    out = cli.json(
        "task", "report", first["id"], "--token", first["token"], "--summary", "one",
        "--claim-next", "q", "--next-lease", "30",
    )  # fmt: skip
    assert out["finding"]["task_id"] == first["id"] and out["finding"]["summary"] == "one"
    following = out["next"]
    assert following["id"] == posted[2].id and following["worker"] == "w1"
    assert following["token"].startswith("1.")
    human = cli(
        "task", "report", following["id"], "--token", following["token"], "--summary", "two",
        "--claim-next", "q",
    ).stdout  # fmt: skip
    assert human.startswith("reported f-") and f"claimed {posted[3].id} (token 1." in human
    token = human.split("(token ", 1)[1].split(")", 1)[0]
    out = cli.json(
        "task", "report", posted[3].id, "--token", token, "--summary", "3", "--claim-next", "q"
    )
    assert out["next"] is None  # nothing left: the report stands
    assert cli("task", "claim", "q", "--count", "3", expect=3).stdout == ""
    assert swarm.queue_stats()["q"] == {**swarm.queue_stats()["q"], "completed": 3, "claimed": 1}


def test_claim_worker_defaults_to_swarm_agent(cli: Cli) -> None:
    cli("task", "post", "q", "d")
    claimed = cli.json("task", "claim", "q", env={"SWARM_AGENT": "agent-7"})
    assert claimed["worker"] == "agent-7"


def test_report_finding_from_stdin_and_file(cli: Cli, tmp_path: Path) -> None:
    for _ in range(2):
        cli("task", "post", "q", "d")
    a = cli.json("task", "claim", "q", "--worker", "w")
    big = {"summary": "from stdin", "details": "x" * 100_000, "extra_key": {"n": 1}}
    out = cli.json(
        "task", "report", a["id"], "--token", a["token"], "--finding", "-", input=json.dumps(big)
    )
    assert out["details"] == "x" * 100_000 and out["extra"] == {"extra_key": {"n": 1}}
    b = cli.json("task", "claim", "q", "--worker", "w")
    path = tmp_path / "f.json"
    path.write_text('{"summary": "from a file"}')
    out = cli.json("task", "report", b["id"], "--token", b["token"], "--finding", f"@{path}")
    assert out["summary"] == "from a file"


def test_bad_findings_change_nothing(cli: Cli, swarm: Swarm) -> None:
    cli("task", "post", "q", "d")
    t = cli.json("task", "claim", "q", "--worker", "w")
    lease = ("task", "report", t["id"], "--token", t["token"])
    out = cli(*lease, "--finding", "{not json", expect=2)
    assert "--finding" in out.stderr and "not valid JSON" in out.stderr
    out = cli(*lease, "--finding", "[1, 2]", expect=2)
    assert "JSON object" in out.stderr
    out = cli(*lease, "--finding", '{"details": "x"}', expect=2)
    assert out.stderr.startswith("error: ") and "summary" in out.stderr
    out = cli(*lease, expect=2)
    assert "--finding" in out.stderr
    assert swarm.get_task(t["id"]).status == "claimed"
    assert len(swarm.findings()) == 0


def test_report_and_fail_record_what_the_run_cost(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    cli("task", "post", "q", "d", "--max-attempts", "3")
    t = cli.json("task", "claim", "q", "--worker", "w")
    spent = '{"cost_usd": 0.02, "tokens_in": 900, "cached_in": 800, "tokens_out": 40}'
    failed = cli.json("task", "fail", t["id"], "--token", t["token"], "--error", "-",
                      "--usage", spent, input="it broke")  # fmt: skip
    assert failed["failed_usage"]["cost_usd"] == 0.02 and failed["failed_usage"]["tokens_in"] == 900
    assert "$0.0200 · 900 in (800 cached) / 40 out" in cli("task", "show", t["id"]).stdout
    again = cli.json("task", "claim", "q", "--worker", "w", "--wait", "5")
    path = tmp_path / "usage.json"
    path.write_text('{"cost_usd": 0.5, "tokens_out": 7, "source": "my-agent"}')
    reported = cli.json("task", "report", again["id"], "--token", again["token"],
                        "--summary", "-", "--usage", f"@{path}", input="found it")  # fmt: skip
    assert reported["usage"] == {
        "source": "my-agent", "cost_usd": 0.5, "tokens_in": None, "tokens_out": 7,
        "cached_in": None, "session_id": None, "models": {},
    }  # fmt: skip
    assert reported["extra"] == {}
    assert "$0.5000" in cli("findings", reported["id"]).stdout


def test_a_usage_that_is_not_one_is_a_usage_error(cli: Cli, swarm: Swarm) -> None:
    cli("task", "post", "q", "d")
    t = cli.json("task", "claim", "q", "--worker", "w")
    lease = ("--token", t["token"])
    report = ("task", "report", t["id"], *lease, "--summary", "s")
    out = cli(*report, "--usage", '{"tokens_in": 1.5}', expect=2)
    assert "--usage" in out.stderr and "usage tokens_in is 1.5: give a whole number" in out.stderr
    out = cli(*report, "--usage", '{"tokens": 5}', expect=2)
    assert "usage has no field tokens: give any of source, cost_usd" in out.stderr
    out = cli(*report, "--usage", '{"tokens_in": 1, "cached_in": 2}', expect=2)
    assert "cached_in (2) is more than tokens_in (1)" in out.stderr
    out = cli("task", "fail", t["id"], *lease, "--error", "e", "--usage", "[1]", expect=2)
    assert "usage must be a JSON object" in out.stderr
    out = cli("task", "fail", t["id"], *lease, "--error", "-", "--usage", "-", expect=2)
    assert "cannot both read stdin" in out.stderr
    # a finding's "usage" would be kept in extra and counted nowhere: it points at --usage
    finding = '{"summary": "s", "usage": {"cost_usd": 0.1}}'
    out = cli("task", "report", t["id"], *lease, "--finding", finding, expect=2)
    assert 'holds "usage"' in out.stderr and "--usage on the command line" in out.stderr
    task = swarm.get_task(t["id"])
    assert task.status == "claimed" and task.failures == 0 and len(swarm.findings()) == 0


def test_unknown_task_and_bad_token(cli: Cli, swarm: Swarm) -> None:
    out = cli("task", "show", "t-nope", expect=1)
    assert out.stderr.startswith("error: ") and "t-nope" in out.stderr
    assert out.stderr.count("\n") == 1
    guessed = "1." + "A" * 22
    out = cli("--json", "task", "renew", "t-nope", "--token", guessed, expect=1)
    assert json.loads(out.stderr)["error"] == "NotFound"
    cli("task", "post", "q", "d")
    t = cli.json("task", "claim", "q", "--worker", "w")
    out = cli("task", "renew", t["id"], "--token", "1", expect=2)
    assert "token" in out.stderr and "ATTEMPT.SECRET" in out.stderr
    out = cli("task", "fail", t["id"], "--token", guessed, "--error", "x", expect=1)
    assert "never issued" in out.stderr
    assert swarm.get_task(t["id"]).status == "claimed"
    out = cli("task", "show", "bad id!", expect=2)
    assert "task id" in out.stderr


def test_fail_release_cancel_requeue(cli: Cli, swarm: Swarm) -> None:
    t = cli.json("task", "post", "q", "d", "--max-attempts", "1")
    first = cli.json("task", "claim", "q", "--worker", "w")
    released = cli.json("task", "release", t["id"], "--token", first["token"])
    assert released["status"] == "pending"
    second = cli.json("task", "claim", "q", "--worker", "w")
    lease = ("--token", second["token"])
    out = cli("task", "fail", t["id"], *lease, "--error", "-", input="it broke\n")
    assert out.stdout.startswith(f"failed {t['id']}: now dead")
    assert must(swarm.get_task(t["id"]).last_error).strip() == "it broke"
    dead = cli.json("task", "list", "--status", "dead")
    assert [x["id"] for x in dead["items"]] == [t["id"]]
    out = cli("task", "requeue", t["id"])
    assert out.stdout.startswith(f"requeued {t['id']} to q")
    cancelled = cli.json("task", "cancel", t["id"])
    assert cancelled["status"] == "cancelled"


def test_a_second_cancel_says_it_was_already_cancelled(cli: Cli, swarm: Swarm) -> None:
    """The core's cancel of a cancelled task returns it unchanged: the command says so, with
    when, rather than 'cancelled' as if it did it again (exit 0, the JSON the same Task)."""
    t = cli.json("task", "post", "q", "d")
    assert cli("task", "cancel", t["id"]).stdout == f"cancelled {t['id']}\n"
    when = swarm.get_task(t["id"]).status_since
    again = cli("task", "cancel", t["id"])
    assert again.stdout == (f"{t['id']} was already cancelled at {iso(when)}: nothing changed\n")
    assert cli.json("task", "cancel", t["id"]) == swarm.get_task(t["id"]).to_dict()


def test_cancel_of_a_dead_task_drops_it_and_says_so(cli: Cli, swarm: Swarm) -> None:
    """A coordinator drops a dead task rather than requeue it; a completed one stays
    refused, saying why."""
    t = cli.json("task", "post", "q", "d", "--max-attempts", "1")
    claimed = must(swarm.claim("q", worker="w1"))
    swarm.fail(claimed.id, must(claimed.token), "broken")
    out = cli("task", "cancel", t["id"])
    said = f"cancelled {t['id']}: it was dead; dropped from the dead letters for good\n"
    assert out.stdout == said
    assert cli.json("task", "list", "--status", "dead")["items"] == []
    assert swarm.queue_stats()["q"]["cancelled"] == 1
    cli.json("task", "post", "q", "e")
    done = must(swarm.claim("q", worker="w1"))
    swarm.report(done.id, must(done.token), {"summary": "ok"})
    refused = cli("task", "cancel", done.id, expect=1)
    assert "is already completed and cannot be cancelled: its finding stands" in refused.stderr


def test_requeue_of_a_cancelled_task_says_how_to_run_it_again(cli: Cli) -> None:
    t = cli.json("task", "post", "q.x", "d")
    cli("task", "cancel", t["id"])
    out = cli("task", "requeue", t["id"], expect=1)
    assert "is cancelled, not dead: only dead-lettered tasks can be requeued" in out.stderr
    assert "post it anew ('swarm task post q.x DESCRIPTION --data JSON'" in out.stderr
    assert f"'swarm task show {t['id']}'" in out.stderr
    pending = cli.json("task", "post", "q.x", "e")
    out = cli("task", "requeue", pending["id"], expect=1)  # open: no such step to take
    assert out.stderr.rstrip().endswith("only dead-lettered tasks can be requeued")


def test_post_jsonl_from_stdin_with_defaults(cli: Cli) -> None:
    lines = "\n".join(
        [
            json.dumps({"description": "a", "data": {"i": 1}}),
            "",
            json.dumps({"description": "b", "priority": 3, "queue": "other"}),
        ]
    )
    out = cli.json("task", "post", "q", "--pass", "P", "--parent", "s", "--jsonl", "-", input=lines)
    items = out["items"]
    assert [t["description"] for t in items] == ["a", "b"]
    assert [t["queue"] for t in items] == ["q", "other"]
    assert all(t["pass_name"] == "P" and t["parent"] == "s" for t in items)
    out = cli("task", "post", "q", "--jsonl", "-", input="{bad\n", expect=2)
    assert "line 1" in out.stderr
    out = cli("task", "post", "q", "--jsonl", "-", input="", expect=2)
    assert "stdin was empty" in out.stderr and "or give it as a file path" in out.stderr
    out = cli("task", "post", "q", "--jsonl", "-", input="\n \n", expect=2)
    assert "no task" in out.stderr


def test_post_description_from_stdin_and_delay(cli: Cli) -> None:
    t = cli.json("task", "post", "q", "-", "--delay", "60", input="a long description\n")
    assert t["description"] == "a long description\n" and t["status"] == "delayed"
    cli("task", "claim", "q", "--worker", "w", expect=3)


def test_post_dedupe(cli: Cli) -> None:
    a = cli.json("task", "post", "q", "d", "--dedupe", "k1")
    b = cli.json("task", "post", "q", "d", "--dedupe", "k1")
    assert a["id"] == b["id"]


def test_a_post_that_meets_its_dedupe_key_says_nothing_was_posted(cli: Cli, swarm: Swarm) -> None:
    first = cli("task", "post", "dq", "first", "--dedupe", "k1").stdout
    assert first.startswith("posted t-") and first.endswith(" to dq\n")
    task_id = first.split()[1]
    out = cli("task", "post", "dq", "second", "--dedupe", "k1", "--priority", "5")
    assert out.stdout == f"already posted as {task_id} (dedupe key k1): nothing posted\n"
    again = cli.json("task", "post", "dq", "third", "--dedupe", "k1")
    # JSON: the task posted before, as stored (its description, priority and created_at)
    stored = swarm.get_task(task_id)
    assert again["id"] == task_id and again["created_at"] == stored.created_at
    assert (stored.description, stored.priority) == ("first", 0)
    assert swarm.queue_stats()["dq"]["pending"] == 1


def test_post_jsonl_refuses_dedupe(cli: Cli, swarm: Swarm) -> None:
    lines = '{"description": "a"}\n{"description": "b"}\n'
    out = cli("task", "post", "q", "--jsonl", "-", "--dedupe", "k", input=lines, expect=2)
    assert '"dedupe_key" in each line' in out.stderr
    assert swarm.queue_stats() == {}
    # a key per line is the way: a line meeting one says so
    keyed = '{"description": "a", "dedupe_key": "ka"}\n{"description": "b", "dedupe_key": "ka"}\n'
    out = cli("task", "post", "q", "--jsonl", "-", input=keyed)
    posted, met = out.stdout.splitlines()
    task_id = posted.split()[1]
    assert posted == f"posted {task_id} to q"
    assert met == f"already posted as {task_id} (dedupe key ka): nothing posted"


def test_post_jsonl_takes_every_other_option_as_a_default(cli: Cli, swarm: Swarm) -> None:
    lines = '{"description": "a"}\n{"description": "b", "priority": 7, "data": 2}\n'
    options = ["--data", "1", "--pass", "P", "--priority", "3", "--max-attempts", "4",
               "--max-abandons", "5", "--lease", "60", "--delay", "600",
               "--parent", "s"]  # fmt: skip
    a, b = cli.json("task", "post", "q", "--jsonl", "-", *options, input=lines)["items"]
    assert (a["data"], a["priority"], b["data"], b["priority"]) == (1, 3, 2, 7)
    for t in (a, b):
        assert (t["pass_name"], t["max_attempts"], t["max_abandons"], t["lease_s"]) == (
            "P",
            4,
            5,
            60,
        )
        assert t["parent"] == "s" and t["status"] == "delayed" and t["not_before"]


def test_post_jsonl_errors_name_the_line_of_the_file(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_text('{"description": "a"}\n\n{"description": "b", "priority": "high"}\n')
    out = cli("task", "post", "q", "--jsonl", str(path), expect=2)
    assert out.stderr.startswith("error: line 3: priority must be")
    path.write_text('{"description": "a"}\n\n{"description": "b"\n')
    assert "line 3" in cli("task", "post", "q", "--jsonl", str(path), expect=2).stderr
    assert swarm.queue_stats() == {}


@pytest.mark.parametrize("value", ["NaN", "-Infinity", '{"x": 1e999}'])
def test_data_that_is_not_json_is_a_usage_error(cli: Cli, swarm: Swarm, value: str) -> None:
    out = cli("task", "post", "q", "d", "--data", value, expect=2)
    assert "--data" in out.stderr and "finite number" in out.stderr
    assert swarm.queue_stats() == {}


def test_report_takes_a_finding_or_a_summary(cli: Cli, swarm: Swarm) -> None:
    t = swarm.post_task("q", "d")
    token = must(swarm.claim("q", worker="w")).token
    assert token is not None
    both = ["--finding", '{"summary": "x"}', "--summary", "y"]
    out = cli("task", "report", t.id, "--token", token, *both, expect=2)
    assert "give --finding or --summary, not both" in out.stderr
    out = cli("task", "report", t.id, "--token", token, expect=2)
    assert "--finding JSON|@FILE|- or --summary TEXT" in out.stderr
    extra = ["--finding", '{"summary": "x"}', "--confidence", "0.5"]
    out = cli("task", "report", t.id, "--token", token, *extra, expect=2)
    assert '"confidence"' in out.stderr
    assert swarm.get_task(t.id).status.value == "claimed"


def test_list_paging_and_all(cli: Cli) -> None:
    ids = [cli.json("task", "post", "q", f"d{i}")["id"] for i in range(5)]
    first = cli.json("task", "list", "--limit", "2")
    assert [t["id"] for t in first["items"]] == ids[:2] and first["cursor"]
    second = cli.json("task", "list", "--limit", "2", "--cursor", first["cursor"])
    assert [t["id"] for t in second["items"]] == ids[2:4]
    every = cli.json("task", "list", "--all")
    assert [t["id"] for t in every["items"]] == ids and every["cursor"] is None
    out = cli("task", "list", "--limit", "2")
    assert "more: --cursor" in out.stderr


def test_wait_for_a_pass_and_timeout(cli: Cli) -> None:
    t = cli.json("task", "post", "q", "d", "--pass", "P")
    out = cli("task", "wait", "--pass", "P", "--timeout", "0.3", expect=3)
    assert out.stderr.startswith("error: pass 'P' is not settled")
    token = cli.json("task", "claim", "q", "--worker", "w")["token"]
    cli("task", "report", t["id"], "--token", token, "--summary", "done")
    stats = cli.json("task", "wait", "--pass", "P", "--timeout", "5")
    assert stats["completed"] == 1
    assert cli("task", "wait", "--queue", "q").stdout.startswith("queue q settled: completed 1")
    assert cli("task", "wait").stdout.startswith("the swarm settled")
    cli("task", "wait", "--pass", "P", "--queue", "q", expect=2)


def test_late_report_is_refused_and_kept_superseded(cli: Cli, swarm: Swarm) -> None:
    t = cli.json("task", "post", "q", "d", "--lease", "1")
    token = cli.json("task", "claim", "q", "--worker", "w")["token"]
    cli("task", "report", t["id"], "--token", token, "--summary", "first")
    out = cli("task", "report", t["id"], "--token", token, "--summary", "second", expect=1)
    assert out.stderr.startswith("error: ")
    every = cli.json("findings", "--all")["items"]
    assert [(f["summary"], f["superseded"]) for f in every] == [("first", False), ("second", True)]


def test_synth_create_list_show_request(cli: Cli, swarm: Swarm) -> None:
    swarm.register("shard", name="shard-a")
    fids = []
    for i in range(2):
        t = cli.json("task", "post", "q", f"d{i}", "--pass", "P", "--parent", "shard-a")
        token = cli.json("task", "claim", "q", "--worker", "w")["token"]
        fids.append(
            cli.json("task", "report", t["id"], "--token", token, "--summary", f"s{i}")["id"]
        )
    s = cli.json(
        "synth", "create", "--shard", "shard-a", "--pass", "P", "--all-findings", "--text", "-",
        input="It adds up.",
    )  # fmt: skip
    assert s["sources"] == fids and s["text"] == "It adds up."
    out = cli("synth", "create", "--pass", "P", "--text", "t", "--finding", fids[0],
              env={"SWARM_AGENT": "shard-a"})  # fmt: skip
    assert out.stdout.startswith("stored s") and "citing 1 finding\n" in out.stdout
    out = cli("synth", "create", "--shard", "shard-a", "--pass", "P", "--text", "t",
              "--finding", "f-missing", expect=1)  # fmt: skip
    assert "f-missing" in out.stderr
    listing = cli.json("synth", "list", "--pass", "P")
    assert len(listing["items"]) == 2
    assert "It adds up." in cli("synth", "show", s["id"]).stdout
    assert cli.json("synth", "show", s["id"]) == s
    assert "shard-a" in cli("synth", "list").stdout
    missing = cli("synth", "show", "s-nope", expect=1).stderr
    assert "swarm synth list" in missing  # (it named a command that does not exist)
    msg = cli.json("synth", "request", "shard-a", "--pass", "P", "--instructions", "please",
                   "--from", "coord")  # fmt: skip
    assert msg["to"] == "shard-a"
    inbox = swarm.inbox("shard-a")
    assert [m.id for m in inbox] == [msg["id"]]


def test_configure_max_abandons_and_show_both_budgets(cli: Cli, swarm: Swarm) -> None:
    assert cli.json("task", "configure", "q1") == {"queue": "q1", "max_abandons": 10}
    assert cli("task", "configure", "q1", "--max-abandons", "4").stdout == "q1: max_abandons 4\n"
    shown = cli("task", "configure", "q1", "--description", "Reads\x1b[2J papers").stdout
    assert shown == "q1: max_abandons 4\nq1: description Reads\\x1b[2J papers\n"
    assert cli.json("task", "configure", "q1")["description"] == "Reads\x1b[2J papers"
    from_queue = cli.json("task", "post", "q1", "d", "--max-attempts", "2")
    own = cli.json("task", "post", "q1", "d", "--max-abandons", "7")
    assert (from_queue["max_abandons"], own["max_abandons"]) == (4, 7)
    claimed = cli.json("task", "claim", "q1", "--worker", "w1")
    token = str(claimed["token"])
    cli("task", "fail", claimed["id"], "--token", token, "--error", "agent crashed")
    shown = cli("task", "show", from_queue["id"]).stdout
    assert "1 of at most 2 (max_attempts: dead-lettered at the limit)" in shown
    assert "0 of at most 4 (max_abandons: dead-lettered at the limit)" in shown
    assert "1/2" in cli("task", "list", "--queue", "q1").stdout


def test_report_waits_for_the_next_task(cli: Cli, swarm: Swarm) -> None:
    """`task report --claim-next Q --wait S`: a shell worker loop that blocks for its next
    task instead of polling."""
    swarm.post_task("q", "first")
    first = cli.json("task", "claim", "q", "--worker", "w1")
    timer = threading.Timer(0.3, lambda: swarm.post_task("q", "posted while it waits"))
    timer.start()
    out = cli.json(
        "task", "report", first["id"], "--token", first["token"], "--summary", "one",
        "--claim-next", "q", "--wait", "20",
    )  # fmt: skip
    timer.join()
    assert out["next"]["description"] == "posted while it waits" and out["next"]["worker"] == "w1"
    err = cli(
        "task", "report", out["next"]["id"], "--token", out["next"]["token"], "--summary", "x",
        "--wait", "5", expect=2,
    ).stderr  # fmt: skip
    assert "--claim-next" in err
    assert swarm.get_task(out["next"]["id"]).status.value == "claimed"  # nothing reported


def test_synth_create_needs_a_shard_and_its_findings(cli: Cli, swarm: Swarm) -> None:
    base = ["synth", "create", "--pass", "P", "--text", "t"]
    out = cli(*base, "--all-findings", env={"SWARM_AGENT": None}, expect=2)
    assert "--shard (or set SWARM_AGENT)" in out.stderr and "NoneType" not in out.stderr
    out = cli(*base, "--shard", "shard-a", expect=2)
    assert "--finding ID (repeatable) or --all-findings" in out.stderr
    # --all-findings of a pass with no finding (a mistyped name): an error naming it
    out = cli(*base, "--shard", "shard-a", "--all-findings", expect=1)
    assert "pass 'P' has no finding for shard 'shard-a'" in out.stderr
    assert "swarm findings --pass P --json" in out.stderr
    assert cli.json("synth", "list")["items"] == []


def test_show_says_what_each_count_counts(cli: Cli, redis_url: str) -> None:
    """Claims (the record's `attempts`), failures against max_attempts and abandons against
    max_abandons are three counts: `task show` names each, so that "3" beside "0 of 2" is
    not read as a contradiction; --json keeps the record's names."""
    clock = FakeClock()
    with Swarm(redis_url, swarm="test", clock=clock) as swarm:
        t = swarm.post_task("q", "d", max_attempts=2, max_abandons=3, lease_s=10)
        first = must(swarm.claim("q", worker="w"))
        swarm.release(first.id, must(first.token))  # a claim, neither failure nor abandon
        second = must(swarm.claim("q", worker="w"))
        swarm.fail(second.id, must(second.token), "broke")
        clock.advance(3600)  # past the retry's backoff
        must(swarm.claim("q", worker="w"))
        clock.advance(11)  # the third lease expires: an abandon
        assert swarm.reap() == 1
    shown = cli("task", "show", t.id).stdout
    rows = {k: v.strip() for k, v in (line.split(None, 1) for line in shown.splitlines())}
    assert rows["claims"] == "3"
    assert rows["failures"] == "1 of at most 2 (max_attempts: dead-lettered at the limit)"
    assert rows["abandons"] == "1 of at most 3 (max_abandons: dead-lettered at the limit)"
    assert "attempts" not in rows
    record = cli.json("task", "show", t.id)
    assert (record["attempts"], record["failures"], record["abandons"]) == (3, 1, 1)
    assert (record["max_attempts"], record["max_abandons"]) == (2, 3)
    assert "claims" not in record
