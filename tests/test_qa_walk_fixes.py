"""Small defects a QA walk found: a context's source refused as an agent's model is (every
character ``printable`` escapes), the article of a held name's refusal, what ``swarm status``
and ``swarm watch`` say once every task was retired, the "not shown" line as a list and the
passes a misspelt one names in natural order, U+2028 escaped in ``swarm lineage`` and the
inbox table, and what docs/pipeline.md says the agents' SWARM_URL is."""

from __future__ import annotations

import asyncio
import io
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from redis_swarm import AsyncSwarm, Swarm
from redis_swarm._config import Settings
from redis_swarm._errors import ValidationError
from redis_swarm._executable import reach_env
from redis_swarm._pipeline.worker_url import worker_settings
from redis_swarm._printable import not_shown, short
from redis_swarm.dashboard import snapshot
from redis_swarm.dashboard._snapshot import Snapshot
from redis_swarm.dashboard._terminal import render
from redis_swarm.mcp_server._identity import NameHeld, refuse_held_name
from redis_swarm.roles import SwarmMemoryShard

from ._cli import Cli
from ._handles import must

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture
def core(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


# --- 1. a context's source: refused as an agent's model is, in the same words

# What the source check let through: C1 controls (U+009B is an 8-bit CSI), a bidi
# override, the line and paragraph separators; every one shown escaped by the views.
_UNPRINTABLE = {
    "a C1 control": ("\x9b", "a control character (U+009B)"),
    "NEL": ("\x85", "a control character (U+0085)"),
    "a bidi override": ("\u202e", "a bidirectional override (U+202E)"),
    "a line separator": ("\u2028", "a line separator (U+2028)"),
    "a paragraph separator": ("\u2029", "a line separator (U+2029)"),
}


@pytest.mark.parametrize(("ch", "said"), list(_UNPRINTABLE.values()), ids=list(_UNPRINTABLE))
def test_a_source_is_refused_what_a_model_is(core: Swarm, ch: str, said: str) -> None:
    with pytest.raises(ValidationError) as model:
        core.register("worker", name="w1", model=f"notes{ch}.md")
    with pytest.raises(ValidationError) as source:
        core.publish_context("s1", "text", source=f"notes{ch}.md")
    words = f"holds {said} at position 6: use printable text on one line"
    assert f"model {words}" in str(model.value)
    assert str(source.value).startswith(f"source {words}"), source.value
    assert "--source NAME" in str(source.value)  # (the way to give a file's apart)
    assert core.contexts() == []


def test_a_source_still_refuses_what_it_refused(core: Swarm) -> None:
    for source in ("a\nb", "a\tb", "a\x1bb", "a\x7fb"):
        with pytest.raises(ValidationError, match="use printable text on one line"):
            core.publish_context("s1", "text", source=source)
    with pytest.raises(ValidationError, match="the limit is 1024"):
        core.publish_context("s1", "text", source="x" * 1025)
    with pytest.raises(ValidationError, match="blank"):
        core.publish_context("s1", "text", source="   ")
    # (printable text, not ASCII only: a file's name in any script)
    assert core.publish_context("s1", "text", source="notes é 漢字.md").source == "notes é 漢字.md"


def test_the_seed_and_the_cli_refuse_such_a_source_too(redis_url: str, cli: Cli) -> None:
    separator = r"source holds a line separator \(U\+2028\)"
    with (
        SwarmMemoryShard(url=redis_url, swarm="test") as shard,
        pytest.raises(ValidationError, match=separator),
    ):
        shard.load_context("text", "notes\u2028.md")
    out = cli(
        "context", "publish", "-", "--owner", "s1", "--source", "a\u202eb", input="x", expect=2
    )
    assert "source holds a bidirectional override (U+202E) at position 2" in out.stderr


# --- 2. the refusal of a held name, with the right article


def test_a_held_names_refusal_says_an_agent_session(core: Swarm) -> None:
    other = {"host": socket.gethostname(), "pid": os.getpid() + 1}  # another server's
    core.join("alice", lambda _: {"role": "worker", "metadata": {"via": "mcp", **other}})
    with pytest.raises(NameHeld) as every_tool:
        refuse_held_name(core, "alice", "all")
    assert "an agent session under the same name would take it over" in str(every_tool.value)
    assert "another --name (or SWARM_AGENT) for the agent" in str(every_tool.value)
    for role in ("shard", "coordinator"):
        with pytest.raises(NameHeld, match=f"a {role} session under the same name"):
            refuse_held_name(core, "alice", role)


# --- 3. once every task was retired


def _retire_everything(core: Swarm) -> None:
    core.post_task("q", "a", pass_name="P")
    task = must(core.claim("q", worker="w"))
    core.report(task.id, task.token, {"summary": "s"})
    core.retire_pass("P")


def test_status_once_every_task_was_retired_does_not_say_none_yet(core: Swarm, cli: Cli) -> None:
    _retire_everything(core)
    out = cli("status").stdout
    assert "no tasks yet" not in out, out
    assert "no tasks: none posted yet, or every one retired" in out


def test_watch_once_every_task_was_retired_does_not_say_none_yet(
    core: Swarm, redis_url: str
) -> None:
    _retire_everything(core)

    async def read() -> Snapshot:
        async with AsyncSwarm(redis_url, swarm="test") as swarm:
            return await snapshot(swarm)

    out = io.StringIO()
    drawing = render(asyncio.run(read()), width=120)
    Console(file=out, width=120, color_system=None).print(drawing)
    drawn = out.getvalue()
    assert "no queue yet" not in drawn and "no pass yet" not in drawn, drawn
    assert "no queue with tasks" in drawn and "no pass with tasks" in drawn
    # (findings and syntheses went with their tasks)
    assert "no finding yet" not in drawn and "no synthesis yet" not in drawn, drawn
    assert "no finding" in drawn and "no synthesis" in drawn


# --- 4. the "not shown" line, a list; the passes a misspelt one names, in natural order


def test_not_shown_lists_with_commas_and_one_and() -> None:
    assert not_shown(2, 2, "swarm status", owners=5) == (
        "not shown: 2 settled queues, 2 settled passes and 5 context owners that published "
        "longer ago (swarm status --all lists them)"
    )
    assert not_shown(2, 0, "swarm watch", owners=1) == (
        "not shown: 2 settled queues and 1 context owner that published longer ago (swarm "
        "watch --all lists them)"
    )
    assert not_shown(0, 3, "swarm status") == (
        "not shown: 3 settled passes (swarm status --all lists them)"
    )


def test_status_of_a_misspelt_pass_names_the_passes_in_natural_order(core: Swarm, cli: Cli) -> None:
    for name in ("day-10", "day-3", "day-2"):
        core.post_task("q", "a", pass_name=name)
    err = cli("status", "--pass", "nope").stderr
    assert '(the passes: "day-2", "day-3", "day-10";' in err, err


# --- 5. U+2028 and U+2029 escaped in the one-line views


def test_short_keeps_the_separators_to_show_them_escaped() -> None:
    assert short("a\u2028b\u2029c") == "a\\u2028b\\u2029c"
    assert short("a\x85b\x1cc\x0cd") == "a\\x85b\\x1cc\\x0cd"
    # (layout whitespace is still one space: the text on one line)
    assert short("  a \n\t b\r\nc  ") == "a b c"


def test_lineage_and_the_inbox_show_a_line_separator_escaped(core: Swarm, cli: Cli) -> None:
    core.post_task("q", "look\u2028here", pass_name="P")
    task = must(core.claim("q", worker="w"))
    finding = core.report(task.id, task.token, {"summary": "found\u2029it"})
    tree = cli("lineage", finding.id).stdout
    assert "found\\u2029it" in tree and "look\\u2028here" in tree, tree
    core.register("worker", name="reader")
    core.send("reader", "one\u2028two", sender="lead")
    table = cli("msg", "inbox", "reader").stdout
    assert "one\\u2028two" in table, table


# --- 6. what the agents' SWARM_URL is, as docs/pipeline.md says it


def test_the_pipeline_doc_says_the_url_the_agents_are_handed() -> None:
    doc = " ".join((DOCS / "pipeline.md").read_text(encoding="utf-8").split())
    assert "the URL is taken as written" not in doc
    found = re.search(r"`(redis://[^`]+)` is handed as `(redis://[^`]+)`", doc)
    assert found is not None, "docs/pipeline.md no longer shows what the agents are handed"
    written, handed = found.groups()
    own = Settings.from_url("redis://legal-shard:PASSWORD@localhost:6380", swarm="legal")
    assert reach_env(worker_settings(written, own))["SWARM_URL"] == handed


def test_a_misspelt_queue_names_the_queues_there_are_in_natural_order(
    core: Swarm, cli: Cli
) -> None:
    for day in (10, 2, 3):
        core.post_task(f"day-{day}", "work")
    said = cli("task", "claim", "day-1", expect=3).stderr
    assert '"day-2", "day-3", "day-10"' in " ".join(said.split()), said
