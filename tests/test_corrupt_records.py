"""A record written around the operations (a worker with HSET, an operator with redis-cli)
does not take the swarm down: listings leave it out and name it, a direct read is one clear
error, ``swarm doctor`` counts it, and the CLI, the dashboard and the MCP tools keep serving.
Every test writes the bad data for real."""

from __future__ import annotations

import json
from dataclasses import dataclass

import anyio
import pytest
from starlette.testclient import TestClient

from redis_swarm import AsyncSwarm, CorruptRecord, Swarm
from redis_swarm._keys import Keys
from redis_swarm.dashboard.app import create_app
from redis_swarm.mcp_server import build_server

from ._cli import Cli
from ._handles import must
from ._raw import raw_client
from .mcp_server._helpers import connect

KEYS = Keys("test")


@dataclass(frozen=True)
class Spoiled:
    good_finding: str
    bad_finding: str  # not JSON
    good_task: str
    bad_task: str  # status "bogus"
    bad_synthesis: str  # JSON, but not an object
    bad_agent: str = "a-bad"  # not JSON
    bad_context: str = "o-bad"  # a manifest without its parts


def spoil(swarm: Swarm, url: str) -> Spoiled:
    """Two tasks of pass P with a finding each and a synthesis, then three records spoiled."""
    tasks = [swarm.post_task("q", f"t{i}", pass_name="P", parent="shard") for i in range(2)]
    findings = []
    for _ in tasks:
        claimed = must(swarm.claim("q", worker="w"))
        findings.append(swarm.report(claimed.id, claimed.token, {"summary": "found"}).id)
    synthesis = swarm.synthesize("shard", "P", "so", [findings[1]])
    with raw_client(url) as r:
        r.hset(KEYS.findings, findings[0], "not json {")
        state = json.loads(r.hget(KEYS.tasks, tasks[1].id))
        r.hset(KEYS.tasks, tasks[1].id, json.dumps({**state, "status": "bogus"}))
        r.hset(KEYS.syntheses, synthesis.id, "[1, 2]")
        r.hset(KEYS.agents, "a-bad", "not json {")
        r.hset(KEYS.contexts, "o-bad", '{"owner": "o-bad"}')
    return Spoiled(findings[1], findings[0], tasks[0].id, tasks[1].id, synthesis.id)


def test_listings_leave_corrupt_records_out_and_name_them(swarm: Swarm, redis_url: str) -> None:
    bad = spoil(swarm, redis_url)
    for found in (swarm.findings(), swarm.findings(pass_name="P"), swarm.findings(shard="shard")):
        assert [f.id for f in found] == [bad.good_finding] and found.corrupt == (bad.bad_finding,)
    for listed in (swarm.list_tasks(), swarm.list_tasks(queue="q")):
        assert [t.id for t in listed] == [bad.good_task] and listed.corrupt == (bad.bad_task,)
    assert swarm.syntheses().corrupt == (bad.bad_synthesis,)

    recent = swarm.recent()
    assert [f.id for f in recent.findings] == [bad.good_finding]
    assert set(recent.corrupt) == {bad.bad_finding, bad.bad_synthesis}
    status = swarm.status()
    assert status.queues["q"]["completed"] == 2 and status.contexts == ()
    assert bad.bad_agent not in [a.id for a in status.roster] and status.agents.total == 1
    assert [a.id for a in swarm.agents()] == ["w"] and swarm.contexts() == []

    with pytest.raises(CorruptRecord, match=f"finding {bad.bad_finding} is stored corrupt"):
        swarm.get_finding(bad.bad_finding)
    with pytest.raises(CorruptRecord, match="swarm doctor") as info:
        swarm.get_task(bad.bad_task)
    assert info.value.record_id == bad.bad_task
    with pytest.raises(CorruptRecord):
        swarm.get_synthesis(bad.bad_synthesis)

    assert swarm.corrupt_records() == {
        "task": [bad.bad_task],
        "finding": [bad.bad_finding],
        "synthesis": [bad.bad_synthesis],
        "agent": [bad.bad_agent],
        "context": [bad.bad_context],
        **{kind: [] for kind in ("version", "chunk", "message", "cursor", "index", "key")},
    }


def test_the_cli_keeps_serving(redis_url: str) -> None:
    cli = Cli(redis_url)
    with Swarm(redis_url, swarm="test") as swarm:
        bad = spoil(swarm, redis_url)
    out = cli("findings")
    assert bad.good_finding in out.stdout and bad.bad_finding not in out.stdout
    assert f"left out 1 corrupt record: {bad.bad_finding}" in out.stderr
    assert cli.json("findings", "--all")["corrupt"] == [bad.bad_finding]
    out = cli("task", "list")
    assert bad.good_task in out.stdout and bad.bad_task in out.stderr
    assert cli.json("task", "list", "--queue", "q")["corrupt"] == [bad.bad_task]
    out = cli("task", "show", bad.bad_task, expect=None)
    assert out.code != 0 and "stored corrupt" in out.stderr and "Traceback" not in out.stderr
    doctor = cli.json("doctor", expect=1)  # (records found damaged fail it)
    assert doctor["corrupt_records"]["task"] == [bad.bad_task] and doctor["ok"] is False
    assert "5: task " in cli("doctor", expect=1).stdout
    assert "w" in cli("agents").stdout and cli("status").code == 0


def test_the_dashboard_keeps_serving(redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        bad = spoil(swarm, redis_url)
    app = create_app(AsyncSwarm(redis_url, swarm="test"), close_swarm=True)
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        status = client.get("/api/status")
        assert status.status_code == 200
        assert [f["id"] for f in status.json()["findings"]] == [bad.good_finding]
        assert bad.bad_finding in status.json()["corrupt"]
        tasks = client.get("/api/tasks").json()
        assert [t["id"] for t in tasks["items"]] == [bad.good_task]
        assert tasks["corrupt"] == [bad.bad_task]
        assert client.get("/api/findings?pass=P").json()["corrupt"] == [bad.bad_finding]


def test_the_mcp_tools_keep_serving(redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as core:
        bad = spoil(core, redis_url)

        async def body() -> None:
            async with connect(build_server(core, role="all")) as tools:
                status, _ = await tools("swarm_status")
                assert status["queues"]["q"] == {"completed": 2}
                found, _ = await tools("list_findings")
                assert json.dumps(found).count(bad.good_finding) >= 1
                assert bad.bad_finding not in json.dumps(found)

        anyio.run(body)
