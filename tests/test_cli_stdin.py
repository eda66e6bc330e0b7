"""``-`` (read from stdin) with nothing on stdin: every option and argument that takes it
says that stdin was empty and what to pipe, exit 2, and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import Swarm

from ._cli import Cli
from ._handles import must


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


# (the command line, with {id} and {token} for a claimed task's; what the error says to pipe)
READERS = [
    (["task", "report", "{id}", "--token", "{token}", "--finding", "-"],
     "--finding: stdin was empty: pipe the finding's JSON ({\"summary\": ...}) into it"),
    (["task", "report", "{id}", "--token", "{token}", "--summary", "-"],
     "--summary: stdin was empty: pipe the summary into it"),
    (["task", "fail", "{id}", "--token", "{token}", "--error", "-"],
     "--error: stdin was empty: pipe what went wrong into it"),
    (["task", "post", "q", "d", "--data", "-"],
     "--data: stdin was empty: pipe the task's data as JSON into it"),
    (["task", "post", "q", "-"], "DESCRIPTION: stdin was empty: pipe the task's description"),
    (["task", "post", "q", "--jsonl", "-"],
     "--jsonl: stdin was empty: pipe the tasks (one JSON object per line) into it"),
    (["msg", "send", "shard-a", "-"], "BODY: stdin was empty: pipe the message text into it"),
    (["msg", "send", "shard-a", "hi", "--data", "-"],
     "--data: stdin was empty: pipe the message's data as JSON into it"),
    (["msg", "broadcast", "-"], "BODY: stdin was empty: pipe the message text into it"),
    (["context", "publish", "-", "--owner", "shard-a"],
     "FILE: stdin was empty: pipe the context's text into it"),
    (["synth", "create", "--shard", "shard-a", "--pass", "P", "--text", "-", "--finding", "f-1"],
     "--text: stdin was empty: pipe the synthesis into it"),
    (["synth", "request", "shard-a", "--pass", "P", "--instructions", "-"],
     "--instructions: stdin was empty: pipe the instructions into it"),
    (["ask", "shard-a", "-"], "QUESTION: stdin was empty: pipe the question into it"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "says"), READERS, ids=[f"{a[0]} {a[1]} {s.split(':')[0]}" for a, s in READERS]
)
def test_empty_stdin_says_so_and_what_to_pipe(
    cli: Cli, swarm: Swarm, args: list[str], says: str
) -> None:
    swarm.register("shard", name="shard-a")
    swarm.post_task("claimed", "d")
    t = must(swarm.claim("claimed", worker="w"))
    before = swarm.status().totals, swarm.events()
    line = [a.format(id=t.id, token=t.token) for a in args]
    out = cli(*line, input="", expect=2)
    message = " ".join(out.stderr.split())
    assert says in message, out
    path_only = "--jsonl" in args or "publish" in args  # (no inline value, no @FILE)
    otherwise = "as a file path" if path_only else "inline or as @FILE"
    if "publish" in args:  # (an empty context is publishable on purpose: it says how)
        otherwise += "; to publish an empty context on purpose, add --allow-empty"
    assert message.endswith(f"(PRODUCER | swarm ..., or swarm ... < FILE), or give it {otherwise}")
    assert "not valid JSON" not in message
    assert (swarm.status().totals, swarm.events()) == before


def test_blank_json_on_stdin_or_in_a_file_says_so(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    swarm.post_task("q", "d")
    t = must(swarm.claim("q", worker="w"))
    report = ["task", "report", t.id, "--token", str(t.token), "--finding"]
    out = cli(*report, "-", input=" \n\t\n", expect=2)
    assert "--finding: stdin was empty" in out.stderr and "not valid JSON" not in out.stderr
    empty = tmp_path / "finding.json"
    empty.write_text("\n")
    out = cli(*report, f"@{empty}", expect=2)
    assert f"--finding: {empty} is empty: put the finding's JSON" in out.stderr
    assert must(swarm.get_task(t.id)).status == "claimed"
    out = cli(*report, "-", input="{", expect=2)  # malformed is still said to be malformed
    assert "not valid JSON" in out.stderr
    cli(*report, "-", input='{"summary": "piped"}')
    assert swarm.get_task(t.id).status == "completed"
