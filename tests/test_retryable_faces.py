"""The faces and loops that ride out outages honour ``ConnectionFailed.retryable``: the MCP
channel's follower stops (one log line) on an error no retry fixes, and says an outage once
and its end once; a pipeline run stops on a lease renewal no retry makes; the A2A server
gives no retry advice for one, nor the dashboard a 503; the re-wrapped errors keep the
field. Real servers throughout: TLS ones from ``_tls``."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest

from redis_swarm import AsyncSwarm, ConnectionFailed, PermissionDenied, Swarm
from redis_swarm._config import Settings
from redis_swarm._models import Event
from redis_swarm.mcp_server._channel import Channel

from ._servers import RedisServer, ServerFactory
from ._tls import Pki, TlsServer, make_pki, start_tls_server

SWARM = "faces"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls(servers: ServerFactory, pki: Pki) -> Iterator[TlsServer]:
    server = start_tls_server(servers, pki)
    yield server
    server.stop()


def _refused_url(pki: Pki, tls: TlsServer) -> str:
    """A URL whose server certificate does not verify (another CA): no retry fixes it."""
    return f"rediss://127.0.0.1:{tls.port}?ssl_ca_certs={pki.wrong_ca}"


def _channel_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("channel:")]


# --- 1. the MCP channel's follower


def _follow(url: str, within_s: float, during: Callable[[list[Event]], None] | None = None) -> bool:
    """Run a channel's follower of ``url`` for at most ``within_s``: whether it ended by
    itself. ``during(swarm, received)``, given, runs meanwhile (in a thread)."""
    channel = Channel(Settings.from_url(url).replace(swarm=SWARM))
    received: list[Event] = []

    async def body() -> bool:
        send, receive = anyio.create_memory_object_stream[Event](max_buffer_size=100)
        ended = False

        async def follow() -> None:
            nonlocal ended
            await channel._follow(send, None, "agent-1")
            ended = True

        async def drain() -> None:
            async with receive:
                async for event in receive:
                    received.append(event)

        with anyio.move_on_after(within_s) as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(follow)
                tg.start_soon(drain)
                if during is not None:
                    await anyio.to_thread.run_sync(during, received)
                    scope.cancel()
        await channel.aclose()
        return ended

    return anyio.run(body)


def test_the_channel_says_a_certificate_refused_once_and_goes_on_trying(
    pki: Pki, tls: TlsServer, caplog: pytest.LogCaptureFixture
) -> None:
    """It stopped pushing for good (a fixed certificate needed a new session); now it says
    so once and looks again every AGAIN_AFTER_FIX_S."""
    caplog.set_level(logging.INFO, logger="redis_swarm.mcp")
    assert not _follow(_refused_url(pki, tls), within_s=4.0), "the follower gave up"
    lines = _channel_lines(caplog)
    assert len(lines) == 1, lines
    assert lines[0].startswith("channel: cannot push events for agent-1: TLS to ")
    assert "refused: certificate verify failed" in lines[0] and "no retry fixes" in lines[0]
    assert "pushing resumes (tried again every 30 s" in lines[0], lines


def test_the_channel_resumes_once_a_user_that_may_not_read_the_stream_may(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PermissionDenied was retried every second for ever, a warning each time; then it
    ended the follower for good. Now: one line, a look every AGAIN_AFTER_FIX_S (made short
    here), and once the right is granted, one line more and the events pushed again."""
    from redis_swarm.mcp_server import _channel

    monkeypatch.setattr(_channel, "AGAIN_AFTER_FIX_S", 0.3, raising=False)
    rules = ["reset", "on", ">pw", "~*", "&*", "+@all", "-xread", "-xrevrange"]
    with contextlib.closing(redis_server.client()) as admin:
        admin.execute_command("ACL", "SETUSER", "noxread", *rules)  # type: ignore[no-untyped-call]
    url = f"redis://noxread:pw@127.0.0.1:{redis_server.port}"

    def fixed(received: list[Event]) -> None:
        deadline = time.monotonic() + 10
        while not _channel_lines(caplog):
            assert time.monotonic() < deadline, "nothing said"
            time.sleep(0.05)
        time.sleep(1.0)  # (several looks: said once)
        with contextlib.closing(redis_server.client()) as admin:
            admin.execute_command("ACL", "SETUSER", "noxread", "+xread", "+xrevrange")  # type: ignore[no-untyped-call]
        while not any("following the event stream" in line for line in _channel_lines(caplog)):
            assert time.monotonic() < deadline, _channel_lines(caplog)
            time.sleep(0.05)
        with Swarm(redis_server.url, swarm=SWARM) as swarm:
            swarm.broadcast("after the fix", sender="lead")
        while not received:
            assert time.monotonic() < deadline, "no event fed after the fix"
            time.sleep(0.05)

    try:
        caplog.set_level(logging.INFO, logger="redis_swarm.mcp")
        with Swarm(url, swarm=SWARM) as swarm, pytest.raises(PermissionDenied):
            swarm.last_event_id()
        assert not _follow(url, within_s=20.0, during=fixed), "the follower gave up"
    finally:
        with contextlib.closing(redis_server.client()) as admin:
            admin.execute_command("ACL", "DELUSER", "noxread")  # type: ignore[no-untyped-call]
    lines = _channel_lines(caplog)
    assert len(lines) == 2, lines
    assert lines[0].startswith("channel: cannot push events for agent-1: "), lines
    assert lines[1].startswith("channel: fixed after "), lines
    assert lines[1].endswith("following the event stream for agent-1 again"), lines


def test_the_due_check_says_a_failure_once_and_its_end_once(
    servers: ServerFactory, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A due check that failed said so each time (every RECHECK_S, made short here); now
    once as it starts failing, once as it works again."""
    from redis_swarm.mcp_server import _channel

    monkeypatch.setattr(_channel, "RECHECK_S", 0.1)
    server = servers.start()
    channel = Channel(Settings.from_url(f"{server.url}?retries=0").replace(swarm=SWARM), ["q"])
    caplog.set_level(logging.INFO, logger="redis_swarm.mcp")

    async def body() -> None:
        with anyio.move_on_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(channel._check_due)
                await anyio.sleep(0.3)
                server.stop()
                await anyio.sleep(1.5)  # (about ten checks that fail)
                server.restart()
                while not any("checked again" in line for line in _channel_lines(caplog)):
                    await anyio.sleep(0.05)
                tg.cancel_scope.cancel()
        await channel.aclose()

    try:
        anyio.run(body)
    finally:
        server.stop()
    lines = _channel_lines(caplog)
    assert len(lines) == 2, lines
    assert lines[0].startswith("channel: could not check the watched queues: cannot reach "), lines
    assert lines[1].startswith("channel: the watched queues are checked again after "), lines


def test_the_channel_says_an_outage_once_and_its_end_once(
    servers: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A server down for about 3 s, the client's retries short: one line when the stream
    fails, one when Redis answers again (not a line a second), and the events after it
    still fed."""
    server = servers.start()
    url = f"{server.url}?retries=1&connect_timeout=0.5"
    caplog.set_level(logging.INFO, logger="redis_swarm.mcp")

    def outage(received: list[Event]) -> None:
        time.sleep(0.5)  # (the follower is following)
        server.stop()
        time.sleep(3.5)
        server.restart()
        deadline = time.monotonic() + 15
        while not any("answers again" in line for line in _channel_lines(caplog)):
            assert time.monotonic() < deadline, _channel_lines(caplog)
            time.sleep(0.05)
        with Swarm(url, swarm=SWARM) as swarm:
            swarm.broadcast("after the outage", sender="lead")
        while not received:
            assert time.monotonic() < deadline, "no event fed after the outage"
            time.sleep(0.05)

    try:
        assert not _follow(url, within_s=30.0, during=outage)
    finally:
        server.stop()
    lines = _channel_lines(caplog)
    assert len(lines) == 2, lines
    assert lines[0].startswith("channel: the event stream failed (cannot reach Redis"), lines
    assert "trying again until Redis answers" in lines[0], lines
    assert lines[1].startswith("channel: Redis answers again after "), lines


# --- 2. a pipeline run's lease


def test_a_run_stops_on_a_lease_renewal_no_retry_makes(
    servers: ServerFactory, pki: Pki, tmp_path: Path
) -> None:
    """The client certificate file of the URL is overwritten under a holding run and its
    connections dropped: each renewal's reconnect fails with a file that does not load.
    Before, the renewals were retried for the whole run, the run going on unleased."""
    from redis_swarm._pipeline import load_plan
    from redis_swarm._pipeline.lease import RunLease

    from .test_pipeline_run import plan_text

    server = start_tls_server(servers, pki, auth_clients="optional")
    cert, key = tmp_path / "client.crt", tmp_path / "client.key"
    cert.write_bytes(pki.client_cert.read_bytes())
    key.write_bytes(pki.client_key.read_bytes())
    url = f"{server.url}&ssl_certfile={cert}&ssl_keyfile={key}"
    plan = load_plan(plan_text(tmp_path, lease_s=2))  # renewed every 0.67 s
    whys: list[str] = []
    lost = threading.Event()

    def on_lost(why: str) -> None:
        whys.append(why)
        lost.set()

    try:
        with Swarm(url, swarm=SWARM) as swarm:
            lease = RunLease(swarm, plan, holder="run-a", on_lost=on_lost)
            assert lease.acquire()
            try:
                cert.write_text("not a certificate\n")
                with contextlib.closing(server.client()) as admin:
                    admin.client_kill_filter(_type="normal", skipme=True)
                assert lost.wait(15), "the renewals went on being retried"
            finally:
                lease.release()  # (its cancel fails alike: said, the lease ends by itself)
    finally:
        server.stop()
    assert len(whys) == 1 and "no retry would help" in whys[0], whys
    error = lease.lost_error(1)
    assert isinstance(error, ConnectionFailed) and error.retryable is False, repr(error)
    message = str(error)
    assert message.startswith("run 1 of pipeline audit stopped, its agents killed: "), message
    assert "the client certificate does not load" in message, message


def test_a_run_rides_out_a_certificate_file_broken_for_a_moment(
    servers: ServerFactory, pki: Pki, tmp_path: Path
) -> None:
    """A certificate rotated in place (cp, certbot) is caught mid-rewrite by a renewal's
    reconnect: not loaded, no retry would help that try, yet the file is whole a moment
    later. The run goes on (the renewal is tried again while the lease lasts); it stopped at
    that one failed renewal, its agents killed, 2/3 of its lease left."""
    from redis_swarm._models import TaskStatus
    from redis_swarm._pipeline import load_plan
    from redis_swarm._pipeline.lease import RunLease

    from .test_pipeline_run import plan_text

    server = start_tls_server(servers, pki, auth_clients="optional")
    cert, key = tmp_path / "client.crt", tmp_path / "client.key"
    cert.write_bytes(pki.client_cert.read_bytes())
    key.write_bytes(pki.client_key.read_bytes())
    url = f"{server.url}&ssl_certfile={cert}&ssl_keyfile={key}"
    plan = load_plan(plan_text(tmp_path, lease_s=3))  # renewed every second
    said: list[str] = []
    whys: list[str] = []

    def wait_for(words: str, within_s: float) -> None:
        deadline = time.monotonic() + within_s
        while not any(words in line for line in said):
            assert not whys, (whys, said)
            assert time.monotonic() < deadline, (words, said)
            time.sleep(0.02)

    try:
        with Swarm(url, swarm=SWARM) as swarm:
            lease = RunLease(swarm, plan, holder="run-a", say=said.append, on_lost=whys.append)
            assert lease.acquire()
            try:
                cert.write_text("not a certificate yet\n")
                with contextlib.closing(server.client()) as admin:
                    admin.client_kill_filter(_type="normal", skipme=True)
                wait_for("could not renew the lease of pipeline audit", within_s=5)
                time.sleep(0.5)  # (broken for about a second in all)
                cert.write_bytes(pki.client_cert.read_bytes())
                wait_for("renewed the lease of pipeline audit again", within_s=5)
                assert lease.task is not None
                held = swarm.get_task(lease.task.id)
                assert held.status is TaskStatus.CLAIMED and held.worker == "run-a", held
            finally:
                lease.release()
    finally:
        server.stop()
    assert not whys, whys
    assert "the client certificate does not load" in said[0], said
    assert said[0].endswith("; trying again while it lasts"), said


# --- 3. the A2A server


def test_a2a_gives_no_retry_advice_for_a_certificate_refused(pki: Pki, tls: TlsServer) -> None:
    """It was a 503 with Retry-After (``retryAfterSeconds`` on JSON-RPC), for ever: a
    client retried what only the operator can fix."""
    import httpx

    from redis_swarm.a2a_server.app import create_app

    from ._a2a import QUEUE, TOKEN

    headers = {"Authorization": f"Bearer {TOKEN}", "A2A-Version": "1.0"}

    async def body() -> None:
        async with AsyncSwarm(_refused_url(pki, tls), swarm=SWARM) as swarm:
            app = create_app(swarm, queues=[QUEUE], base_url="http://127.0.0.1:1/",
                             token=TOKEN, push=False)  # fmt: skip
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://a") as c:
                answer = await c.get("/tasks", headers=headers)
                assert answer.status_code == 500, answer.text
                assert "retry-after" not in answer.headers and "retryAfter" not in answer.text
                error = answer.json()["error"]
                assert error["status"] == "INTERNAL", error
                assert "only its operator can fix" in error["message"], error
                assert "try again later" not in error["message"], error
                rpc = {"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}}
                error = (await c.post("/", json=rpc, headers=headers)).json()["error"]
                assert error["code"] == -32603 and "only its operator" in error["message"]
                assert "retryAfterSeconds" not in str(error.get("data")), error

    anyio.run(body)


# --- 4. the dashboard and its page

_PAGE_SCRIPTS = ("format.js", "dashboard.js")  # (in the order index.html loads them)

# Runs the page's script against stubs: fetch answers with the status and body given on
# stdin; prints what the page shows, and the delays of the timers it set, once its first
# read of the status is done; then fires each of its intervals once (and the short timers
# that sets: a coalesced refresh), and prints the intervals' delays and how many reads of
# the status were made in all.
_PAGE_HARNESS = r"""
const fs = require("fs");
const vm = require("vm");
const scripts = process.argv.slice(1).map((path) => fs.readFileSync(path, "utf8"));
const answer = JSON.parse(fs.readFileSync(0, "utf8"));
const elements = {};
function element(id) {
  if (!elements[id]) {
    elements[id] = { id, hidden: true, textContent: "", attrs: {}, href: "", children: [],
      setAttribute(k, v) { this.attrs[k] = v; }, replaceChildren(...c) { this.children = c; },
      append() {}, classList: { contains: () => false } };
  }
  return elements[id];
}
const timers = [];
const pending = [];
const intervals = [];
let fetches = 0;
const sandbox = {
  document: {
    querySelector: () => ({ content: "task.posted" }), querySelectorAll: () => [],
    getElementById: element, createElement: () => element("x" + Math.random()),
    createTextNode: (t) => t, visibilityState: "visible",
  },
  location: { search: "", pathname: "/", hash: "" },
  history: { replaceState() {} },
  sessionStorage: { getItem: () => null, setItem() {} },
  URLSearchParams, Node: function () {}, console,
  fetch: async () => {
    fetches += 1;
    return { status: answer.status, ok: answer.status < 300, json: async () => answer.body };
  },
  EventSource: function () { timers.push("EventSource"); },
  setTimeout: (fn, ms) => { timers.push(ms); pending.push({ fn, ms }); return 1; },
  setInterval: (fn, ms) => { intervals.push({ fn, ms }); return 1; },
  Date, JSON, Math, Number, String, Object, Array, Promise,
};
sandbox.window = sandbox;
vm.createContext(sandbox);
for (const script of scripts) vm.runInContext(script, sandbox);  // (as the page loads them)
const settled = (then) => setImmediate(() => setImmediate(then));
settled(() => {
  const shown = {
    banner: element("banner").textContent, live: element("live-text").textContent,
    timers: [...timers],
  };
  const before = pending.length;
  for (const interval of intervals) interval.fn();
  for (const timer of pending.slice(before)) if (timer.ms < 1000) timer.fn();
  settled(() => {
    console.log(JSON.stringify({ ...shown, intervals: intervals.map((i) => i.ms), fetches }));
  });
});
"""


def _page(answer: dict[str, object]) -> dict[str, object]:
    """What the page shows, and the timers it sets, when its read of the status gets
    ``answer`` (its status and body)."""
    from redis_swarm.dashboard.app import STATIC_DIR

    out = subprocess.run(
        ["node", "-e", _PAGE_HARNESS, "--", *(str(STATIC_DIR / js) for js in _PAGE_SCRIPTS)],
        input=json.dumps(answer), capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    shown: dict[str, object] = json.loads(out.stdout)
    return shown


@pytest.mark.skipif(
    shutil.which("node") is None and not os.environ.get("CI"),
    reason="needs node (scripts/system-deps.sh installs it)",
)
def test_the_dashboard_says_a_certificate_refused_will_not_pass(
    pki: Pki, tls: TlsServer, servers: ServerFactory
) -> None:
    """It was a 503, as an outage is, and the page tried again every few seconds for ever,
    saying nothing of a fix. Now a 500 that says ``retryable`` false, and the page says it
    must be fixed where the dashboard runs and looks again every 30 s; an outage stays a
    503 (``retryable`` true) that the page looks at again in 3 s."""
    from starlette.testclient import TestClient

    from redis_swarm.dashboard.app import create_app

    app = create_app(AsyncSwarm(_refused_url(pki, tls), swarm=SWARM), close_swarm=True)
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        refused = client.get("/api/status")
        events = client.get("/api/events")
    assert refused.status_code == 500 and events.status_code == 500, refused.text
    body = refused.json()
    assert body["error"] == "ConnectionFailed" and body["retryable"] is False, body
    assert "refused: certificate verify failed" in body["message"], body
    shown = _page({"status": refused.status_code, "body": body})
    assert shown["timers"] == [30_000], shown
    # Its 15 s periodic refresh reads nothing while stuck (it did, each time): only every 30 s.
    assert 15_000 in shown["intervals"] and shown["fetches"] == 1, shown  # type: ignore[operator]
    assert str(shown["banner"]).startswith(body["message"] + " This will not pass by itself")
    assert shown["live"] == "needs a fix", shown

    down = servers.start()
    url = f"{down.url}?retries=0"
    down.stop()
    app = create_app(AsyncSwarm(url, swarm=SWARM), close_swarm=True)
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        outage = client.get("/api/status")
    assert outage.status_code == 503 and outage.json()["retryable"] is True, outage.text
    shown = _page({"status": outage.status_code, "body": outage.json()})
    assert shown["timers"] == [3_000] and "will not pass" not in str(shown["banner"]), shown
    assert shown["fetches"] == 2, shown  # (the periodic refresh reads it: it may pass)


# --- 5. errors re-wrapped


def test_ride_out_gives_up_with_the_last_errors_retryable(pki: Pki, tls: TlsServer) -> None:
    """Its give-up errors said every failure retryable (the field's default), a certificate
    refused among them."""
    from redis_swarm._outage import ride_out

    heard: list[ConnectionFailed] = []
    with Swarm(_refused_url(pki, tls), swarm=SWARM) as swarm:
        with pytest.raises(ConnectionFailed) as info:
            ride_out(swarm.ping, what="answer a ping", who="the test", stop=threading.Event(),
                     on_outage=heard.append, patience_s=0.5)  # fmt: skip
        stopped = threading.Event()
        stopped.set()
        with pytest.raises(ConnectionFailed) as at_stop:
            ride_out(swarm.ping, what="answer a ping", who="the test", stop=stopped,
                     on_outage=heard.append)  # fmt: skip
    assert heard and all(not e.retryable for e in heard), heard
    for error in (info.value, at_stop.value):
        assert error.retryable is False and error.sent is False, repr(error)
        assert "refused: certificate verify failed" in str(error), error


def test_a_hook_does_not_reword_an_error_no_retry_fixes(redis_server: RedisServer) -> None:
    """``not_answered`` said a certificate refused after an earlier try had reached the
    server (``sent``) as a busy or paused server, and made it retryable."""
    from redis_swarm._hooks.reach import not_answered

    settings = Settings.from_url(redis_server.url)
    refused = ConnectionFailed("TLS to x refused: ...", sent=True, retryable=False)
    assert not_answered(refused, settings) is None
    busy = not_answered(ConnectionFailed("Timeout reading", sent=True), settings)
    assert busy is not None and busy.retryable and busy.sent


def test_a_master_that_stops_answering_during_the_apply_is_sent(
    servers: ServerFactory,
) -> None:
    """A cluster master whose ACL SAVE outlasts the socket timeout (its SETUSER done): the
    apply fails naming it (PartlyApplied: it holds the user, unsaved), and the error that
    stopped it now says the request reached it (``sent``), where it said nothing was sent."""
    from redis_swarm import PartlyApplied, apply_role

    from ._servers import free_port, system_redis
    from .test_acl_apply_review import SlowSaveProxy, _cluster_of_one

    port = free_port()
    proxy = SlowSaveProxy(port)
    aclfile = servers.new_dir() / "users.acl"
    aclfile.touch()
    args = [system_redis(), "--port", str(port), "--aclfile", str(aclfile)]
    args += ["--cluster-announce-port", str(proxy.port)]
    try:
        _cluster_of_one(servers, args, port)
        url = f"redis+cluster://127.0.0.1:{proxy.port}?connect_timeout=1&socket_timeout=1"
        with pytest.raises(PartlyApplied) as info:
            apply_role(Settings.from_url(url, swarm=SWARM), "worker", "slow-save")
    finally:
        proxy.close()
    error = info.value.__cause__
    assert isinstance(error, ConnectionFailed), repr(error)
    assert "cannot apply the user on 127.0.0.1:" in str(error), error
    assert error.sent is True and error.retryable is True, repr(error)
