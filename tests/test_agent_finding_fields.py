"""What ``swarm run`` says of the finding its agent printed, and what it keeps of it, on a real
server: how the finding was read, in plain words (not "finding from object output"), and the
fields of a finding's record the swarm sets (its id, queue, worker, time...) that an agent's
JSON gave: not taken as the finding's, kept in its extra as ``id_raw``..., and said."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from redis_swarm import Swarm
from redis_swarm._finding_text import SET_BY_SWARM, parse_finding

from ._cli import Cli
from ._handles import must

PY = sys.executable


def _agent(tmp_path: Path, name: str, body: str) -> str:
    """A scripted agent: reads its prompt, prints what ``body`` prints."""
    path = tmp_path / f"{name}.py"
    path.write_text("import json, os, sys\nsys.stdin.read()\n" + textwrap.dedent(body))
    return f"{PY} {path}"


def _run(cli: Cli, command: str, *, json_out: bool = True) -> Any:
    args = ("run", "--queue", "q", "--exec", command, "--until-done")
    if json_out:
        return cli.json(*args)
    return cli(*args)


def test_an_agents_own_id_is_not_the_findings_and_the_line_says_so(
    cli: Cli, tmp_path: Path
) -> None:
    with Swarm(cli.url, swarm="test") as swarm:
        task = swarm.post_task("q", "look")
        # as a model writes it: its own "id", "queue", "created_at" beside its finding
        command = _agent(
            tmp_path,
            "ids",
            """
            print(json.dumps({"id": "finding-1", "summary": "found it", "queue": "mine",
                              "created_at": "2024-01-01", "note": "kept"}))
            """,
        )
        summary = _run(cli, command)
        (outcome,) = summary["tasks"]
        assert outcome["status"] == "completed", outcome
        finding = swarm.get_finding(must(swarm.get_task(task.id).finding_id))
    # the swarm's id, queue and time; the agent's kept, under names that read as its own
    assert finding.id == outcome["finding_id"] and finding.id.startswith("f-")
    assert finding.queue == "q" and isinstance(finding.created_at, int)
    assert finding.extra == {
        "id_raw": "finding-1",
        "queue_raw": "mine",
        "created_at_raw": "2024-01-01",
        "note": "kept",
    }
    detail = outcome["detail"]
    assert detail.startswith("the agent printed a JSON object, taken as its finding")
    assert "object output" not in detail
    assert (
        'the agent\'s finding gave its own "id", "queue", "created_at", which the swarm sets '
        'itself: not taken as the finding\'s, kept in its extra as "id_raw", "queue_raw", '
        '"created_at_raw"'
    ) in detail


def test_the_line_says_in_plain_words_how_the_finding_was_read(cli: Cli, tmp_path: Path) -> None:
    with Swarm(cli.url, swarm="test") as swarm:
        swarm.post_task("q", "look")
        command = _agent(tmp_path, "object", 'print(json.dumps({"summary": "found it"}))\n')
        human = _run(cli, command, json_out=False)
        assert "the agent printed a JSON object, taken as its finding" in human.stdout, human
        assert "object output" not in human.stdout + human.stderr
        assert "gave its own" not in human.stdout  # (nothing set aside: nothing said)

        swarm.post_task("q", "look again")
        fenced = 'print("Done.\\n```json\\n" + json.dumps({"summary": "fenced"}) + "\\n```")\n'
        (outcome,) = _run(cli, _agent(tmp_path, "fenced", fenced))["tasks"]
        assert outcome["detail"] == (
            "the agent printed a JSON block in ``` fences, taken as its finding"
        )

        swarm.post_task("q", "and again")
        (outcome,) = _run(cli, _agent(tmp_path, "text", 'print("just words")\n'))["tasks"]
        assert outcome["detail"] == (
            "the agent printed no JSON finding: its text was taken as the finding's summary"
        )


def test_every_field_the_swarm_sets_is_set_aside_alike() -> None:
    printed = {name: f"agent's {name}" for name in SET_BY_SWARM}
    aside: list[str] = []
    found = parse_finding(json.dumps({"summary": "s", **printed}), set_aside=aside)
    assert found is not None
    finding, how = found
    assert how == "object" and aside == list(SET_BY_SWARM)
    assert finding == {"summary": "s", **{f"{k}_raw": v for k, v in printed.items()}}
    assert {"id", "queue", "worker", "created_at", "task_id", "usage"} <= set(SET_BY_SWARM)
    assert not {"summary", "details", "sources", "confidence", "extra"} & set(SET_BY_SWARM)
    # an id_raw of the agent's own too: neither is lost
    found = parse_finding('{"summary": "s", "id": 1, "id_raw": 2}')
    assert found is not None and found[0] == {"summary": "s", "id_raw": 2, "id_raw_": 1}
