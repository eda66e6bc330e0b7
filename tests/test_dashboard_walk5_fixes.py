"""The dashboard after an adversarial walk: its snapshot sends a finding as the page shows it
(no ``details``, of ``extra`` only the ``kind``: 60 findings of 250 KB made each read of the
page 12.5 MB), ``/api/events?types=`` naming no type is refused (it was read as every type)
and takes an area as ``swarm events --type`` does, a ``--host`` that does not resolve is
refused saying so with or without a token, ``swarm events`` says "the first 1 event", and
the page writes a cost too small for the decimals as the CLI does, never as zero."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from redis_swarm import AsyncSwarm, ConfigError, Finding, Swarm
from redis_swarm._net import listen
from redis_swarm._usage import usd
from redis_swarm._web import require_token_off_loopback
from redis_swarm.dashboard import snapshot
from redis_swarm.dashboard.app import STATIC_DIR, create_app

from ._cli import Cli
from ._sse import SSEClient

SWARM = "test"
BIG = 200_000


@pytest.fixture
def handle(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm=SWARM) as swarm:
        yield swarm


@pytest.fixture
def client(redis_url: str) -> Iterator[TestClient]:
    app = create_app(AsyncSwarm(redis_url, swarm=SWARM), close_swarm=True)
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        yield client


def _report_big(handle: Swarm, n: int) -> list[str]:
    ids = []
    for i in range(n):
        handle.post_task("q.big", f"t{i}")
        task = handle.claim(["q.big"], worker="w")
        assert task is not None
        finding = {"summary": f"s{i}", "details": "d" * BIG, "notes": "n" * 50_000}
        ids.append(handle.report(task.id, task.token, finding).id)
    return ids


def test_the_snapshot_sends_no_details_nor_extra(handle: Swarm, client: TestClient) -> None:
    ids = _report_big(handle, 6)
    response = client.get("/api/status")
    assert response.status_code == 200
    assert len(response.content) < 50_000, len(response.content)  # (was over 1.8 MB)
    findings = response.json()["findings"]
    assert {f["id"] for f in findings} == set(ids)
    assert all(f["details"] is None and f["extra"] == {} for f in findings)
    assert {f["summary"] for f in findings} == {f"s{i}" for i in range(6)}
    # ... and the finding whole is where the doc says: /api/findings, swarm findings ID
    whole = client.get("/api/findings", params={"queue": "q.big", "limit": "1"}).json()
    assert whole["items"][0]["details"] == "d" * BIG
    assert whole["items"][0]["extra"] == {"notes": "n" * 50_000}
    assert handle.get_finding(ids[0]).details == "d" * BIG


def test_a_snapshot_keeps_a_findings_kind_alone(redis_url: str) -> None:
    from redis_swarm.dashboard._snapshot import shown_finding  # (new: here, not on import)

    finding = Finding("f-1", "t-1", summary="s", details="d" * 10, extra={"kind": "answer",
                      "big": "x" * 1000})  # fmt: skip
    shown = shown_finding(finding)
    assert (shown.details, shown.extra, shown.summary) == (None, {"kind": "answer"}, "s")
    assert shown_finding(Finding("f-2", "t-2", extra={"kind": "k" * 65})).extra == {}

    async def scenario() -> None:
        async with AsyncSwarm(redis_url, swarm=SWARM) as swarm:
            snap = await snapshot(swarm)
            assert all(f.details is None for f in (*snap.findings, *snap.answers))

    asyncio.run(scenario())


@pytest.mark.parametrize("raw", ["", ",", " , ", "%20"])
def test_types_naming_no_type_is_400(redis_url: str, raw: str) -> None:
    async def scenario() -> None:
        # (a stream, were it taken: read as one, so that it cannot hang the test)
        async with (
            AsyncSwarm(redis_url, swarm=SWARM) as swarm,
            SSEClient(create_app(swarm), f"/api/events?types={raw}") as sse,
        ):
            assert sse.status == 400, sse.status
            message = json.loads(await sse.body())["message"]
        assert message.startswith("types names no event type: give one or more"), message
        assert "leave types out for every type" in message

    asyncio.run(scenario())


def test_types_takes_an_area_as_swarm_events_type_does(redis_url: str, cli: Cli) -> None:
    cli("events", "--type", "task", "--type", "agent.*")  # (the CLI's forms, taken)

    async def scenario() -> None:
        async with AsyncSwarm(redis_url, swarm=SWARM) as swarm:
            app = create_app(swarm)
            async with SSEClient(app, "/api/events?types=task") as sse:
                assert sse.status == 200
                task = await swarm.post_task("q.area", "x")
                message = await sse.next()
                assert (message.event, message.data["fields"]["task"]) == ("task.posted", task.id)
            async with SSEClient(app, "/api/events?types=finding.*,task.claimed") as sse:
                assert sse.status == 200

    asyncio.run(scenario())


def test_an_unknown_type_is_still_400_saying_what_to_give(client: TestClient) -> None:
    response = client.get("/api/events?types=tsk")
    assert response.status_code == 400
    message = response.json()["message"]
    assert "unknown event type 'tsk'" in message and "an area such as 'task'" in message


def test_a_host_that_does_not_resolve_is_said_so_token_or_not(cli: Cli) -> None:
    with pytest.raises(ConfigError) as caught:
        require_token_off_loopback("no such host", None, what="it serves", env="SWARM_X_TOKEN")
    said = str(caught.value)
    assert said.startswith("cannot listen on --host 'no such host': "), said
    assert "reachable from other machines" not in said
    # with a token, it is refused when the face listens: in the same words
    require_token_off_loopback("no such host", "a-secret-long-enough", what="-", env="X")
    with pytest.raises(ConfigError) as caught:
        listen("no such host", 0)
    assert str(caught.value) == said
    out = cli("dashboard", "--host", "no such host", expect=2)
    assert "cannot listen on --host 'no such host'" in out.stderr, out
    assert "reachable from other machines" not in out.stderr
    # an address this machine has, off loopback, still needs a token
    with pytest.raises(ConfigError, match="reachable from other machines"):
        require_token_off_loopback("0.0.0.0", None, what="it serves", env="SWARM_X_TOKEN")


def test_events_says_the_first_1_event(cli: Cli, handle: Swarm) -> None:
    for name in "abc":
        handle.post_task("q.one", name)
    out = cli("events", "--limit", "1")
    assert "(the first 1 event; more follow: " in out.stderr, out
    out = cli("events", "--limit", "2")
    assert "(the first 2 events; more follow: " in out.stderr, out


@pytest.mark.skipif(
    shutil.which("node") is None and not os.environ.get("CI"),
    reason="needs node (scripts/system-deps.sh installs it)",
)
def test_the_page_writes_a_tiny_cost_as_the_cli_does_never_zero() -> None:
    costs = [1e-13, 4.9e-13, 5e-13, 1e-320, 5e-324, -1e-13, 1e-12, 2.5e-12, 0.0]
    script = (
        f"const f = require({json.dumps(str(STATIC_DIR / 'format.js'))});"
        "const costs = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "console.log(JSON.stringify(costs.map((c) => f.usd(c))));"
    )
    out = subprocess.run(
        ["node", "-e", script], input=json.dumps(costs), capture_output=True, text=True,
        timeout=30, check=True,
    )  # fmt: skip
    page = json.loads(out.stdout)
    assert page == [usd(c) for c in costs]
    assert page[0] == "$1.0e-13" and page[3] == "$1.0e-320" and page[-1] == "$0.0000"
