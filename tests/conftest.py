"""Fixtures shared by every test: real redis-server processes, flushed between tests."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Coroutine, Generator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis

from redis_swarm import AsyncSwarm, Swarm
from redis_swarm._client_files import USER_DIR_ENV
from redis_swarm._config import DEFAULT_HOME

from . import _open_files
from ._a2a import OTHER, QUEUE, SWARM, TOKEN, A2AServer, start_a2a, stop
from ._cli import Cli
from ._cluster import LocalCluster, start_cluster
from ._raw import raw_client
from ._servers import RedisServer, ServerFactory, server_factory, system_redis

# The library never reads these, but the faces do: keep the developer's own swarm out of tests.
for _name in ("SWARM_URL", "SWARM_NAME", "SWARM_HOME"):
    os.environ.pop(_name, None)
# Nor the developer's own agent clients: their folders follow HOME in the tests, unless moved
# by these (CLAUDE_CONFIG_DIR, CODEX_HOME, GEMINI_CLI_HOME), which a test sets itself.
for _name in USER_DIR_ENV.values():
    os.environ.pop(_name, None)

# Tests press Ctrl-C (SIGINT) on the commands they start, as a user does in a terminal. A suite
# started in the background by a non-interactive shell (`pytest &`) inherits SIGINT ignored,
# and so would every command it starts (asyncio.run then takes no Ctrl-C): give them the
# terminal's default, as a handler (not SIG_IGN) is reset to the default in a started program.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# The signals an interrupted command ignores from then on (cli._common.hold_interrupts): one
# run in this process (click's CliRunner) would leave them ignored for every command the
# later tests of the process start (a Ctrl-C test then waits out its whole timeout).
_HELD = [getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n)]


def pytest_configure(config: pytest.Config) -> None:
    _open_files.raise_limit()
    config.stash[_HOME_BEFORE] = DEFAULT_HOME.exists()


# Whether the developer's own swarm home existed when the run began: a run that creates it
# wrote into it (a process a test started without the test's SWARM_HOME), and fails.
_HOME_BEFORE = pytest.StashKey[bool]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):  # (an xdist worker: the controller checks)
        return
    if not session.config.stash.get(_HOME_BEFORE, True) and DEFAULT_HOME.exists():
        session.config.get_terminal_writer().line(
            f"error: the tests wrote into the developer's swarm home {DEFAULT_HOME} (a process "
            "started without the test's SWARM_HOME): find it by what it holds, then delete it",
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and call.excinfo is not None and _open_files.ran_out(call.excinfo.value):
        said = _open_files.first_report()
        if said is not None:
            report.sections.append(("open files of this test process", said))
    return report


@pytest.fixture(autouse=True)
def _signals_as_they_were() -> Iterator[None]:
    before = {number: signal.getsignal(number) for number in _HELD}
    yield
    for number, handler in before.items():
        if signal.getsignal(number) is not handler and handler is not None:
            signal.signal(number, handler)


@pytest.fixture(autouse=True)
def _private_swarm_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Every test's faces get a SWARM_HOME of its own (what ``swarm`` and the hooks keep
    there: lease tokens, an embedded server), never the developer's home. A test that needs
    a home it can name sets its own (the ``swarm_home`` fixture)."""
    monkeypatch.setenv("SWARM_HOME", str(tmp_path_factory.mktemp("swarm-home")))


@pytest.fixture(scope="session")
def servers() -> Iterator[ServerFactory]:
    """Start extra real servers (TCP or unix socket) for a test that needs its own."""
    with server_factory() as factory:
        yield factory


@pytest.fixture(scope="module")
def own_server(servers: ServerFactory) -> Iterator[RedisServer]:
    """A server of the test module's alone: its clients (connected, blocked) are the ones
    under test."""
    server = servers.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def acl_server(servers: ServerFactory) -> Iterator[RedisServer]:
    """A private Redis >= 7 (ACL key selectors) of the test module's: the users its tests
    make do not leak into other modules' tests."""
    server = servers.start(binary=system_redis())
    yield server
    server.stop()


@pytest.fixture
def pausable_server(servers: ServerFactory) -> Iterator[RedisServer]:
    """A server of the test's own, which it may pause (SIGSTOP: an outage that refuses
    nothing) or fill: resumed, then stopped, at the end."""
    started = servers.start()
    yield started
    if started.proc.poll() is None:
        os.kill(started.proc.pid, signal.SIGCONT)
    started.stop()


@pytest.fixture
def own(own_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain client of ``own_server``, flushed first."""
    client = own_server.client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture(scope="session")
def redis_server(servers: ServerFactory) -> RedisServer:
    """The session's shared TCP server; flushed before each test that uses ``redis_url``."""
    return servers.start()


def on_cluster(request: pytest.FixtureRequest) -> bool:
    """True for the cluster variant of a test: one of its parameters names the cluster
    (``cluster``, ``cluster-sync``, ``cluster-async``), as those of ``swarm`` and
    ``server_url`` do."""
    callspec = getattr(request.node, "callspec", None)
    params = callspec.params.values() if callspec is not None else ()
    return any(
        isinstance(value, str) and (value == "cluster" or value.startswith("cluster-"))
        for value in params
    )


@pytest.fixture
def redis_url(request: pytest.FixtureRequest, redis_server: RedisServer) -> str:
    """The URL of the server the test runs on, emptied first: the session's standalone server,
    or its Redis Cluster in the cluster variant of a test (inspect it with ``_raw``)."""
    if on_cluster(request):
        url: str = request.getfixturevalue("cluster_url")
        return url
    client = redis_server.client()
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def raw(redis_url: str) -> Iterator[Any]:
    """A plain redis-py client (Redis, or RedisCluster in the cluster variant) on the test's
    server, replies decoded: to look at the keys the swarm wrote."""
    client = raw_client(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def cli(redis_url: str) -> Cli:
    """``swarm`` run in process against the test's server, on the swarm "test"."""
    return Cli(redis_url)


@pytest.fixture(scope="session")
def redis_cluster(servers: ServerFactory) -> Iterator[LocalCluster]:
    """A real 3-master, 3-replica Redis Cluster, started once per session (about 3 s)."""
    cluster = start_cluster(servers)
    yield cluster
    cluster.close()


@pytest.fixture
def cluster_url(redis_cluster: LocalCluster) -> str:
    """The redis+cluster:// URL of the session's cluster, emptied before the test."""
    redis_cluster.wait_ok()
    redis_cluster.flush()
    return redis_cluster.url


@pytest.fixture
def swarm_home(tmp_path: Path) -> Iterator[Path]:
    """A private SWARM_HOME; any embedded server started in it is stopped at the end."""
    from redis_swarm._embedded import EmbeddedServer

    # unix socket paths are limited to ~107 bytes: keep the home short.
    home = Path(os.path.realpath(tmp_path)) / "h"
    try:
        yield home
    finally:
        EmbeddedServer(home).stop()


@pytest.fixture(scope="module")
def a2a_redis(servers: ServerFactory) -> Iterator[RedisServer]:
    """A server of the module's own for its ``swarm a2a``: the session's is flushed by other
    tests."""
    server = servers.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def a2a(a2a_redis: RedisServer) -> Iterator[A2AServer]:
    """``swarm a2a`` as a real process for the module's tests, exposing ``QUEUE`` (the default
    skill, described by a flag) and ``OTHER``; a blocking SendMessage waits 0.5 s."""
    server = start_a2a(
        a2a_redis.url, SWARM, TOKEN, "--queue", QUEUE, "--queue", OTHER,
        "--describe", f"{QUEUE}=Looks things up and reports what it found.", "--wait", "0.5",
    )  # fmt: skip
    yield server
    stop(server)


@pytest.fixture
def a2a_worker(a2a_redis: RedisServer) -> Iterator[Swarm]:
    """A worker of ours on the ``a2a`` fixture's swarm (``_a2a.work_one`` claims and reports)."""
    swarm = Swarm(a2a_redis.url, swarm=SWARM)
    yield swarm
    swarm.close()


class AsyncAsSync:
    """Drives an AsyncSwarm from sync test code through a private event-loop thread, so one
    test suite exercises both shells with the same calls."""

    def __init__(self, make: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._swarm: AsyncSwarm = self.call(self._make(make))

    @staticmethod
    async def _make(make: Any) -> AsyncSwarm:
        swarm: AsyncSwarm = make()
        return swarm

    def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=120)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._swarm, name)
        if not callable(attr) or not asyncio.iscoroutinefunction(attr):
            return attr

        def run(*args: Any, **kwargs: Any) -> Any:
            return self.call(attr(*args, **kwargs))

        return run

    def close(self) -> None:
        self.call(self._swarm.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


def as_swarm(adapter: AsyncAsSync) -> Swarm:
    """The adapter, typed as the Swarm whose calls it takes: it forwards each to an
    AsyncSwarm and waits for the result, so the tests type-check as sync code."""
    return cast(Swarm, adapter)


# Every test of the ``swarm`` fixture (and of the fixtures made like it: SWARM_KINDS) runs on
# both shells and on both kinds of server: the session's standalone server and its Redis
# Cluster (3 masters, 3 replicas). SWARM_TEST_CLUSTER=0 leaves the cluster variants out.
SWARM_KINDS = ["sync", "async"]
SERVERS = ["standalone"]
if os.environ.get("SWARM_TEST_CLUSTER", "1") != "0":
    SWARM_KINDS += ["cluster-sync", "cluster-async"]
    SERVERS += ["cluster"]


@pytest.fixture(params=SERVERS)
def server_url(request: pytest.FixtureRequest) -> str:
    """``redis_url`` for a test that makes its own handles: it runs once on the standalone
    server and once on the cluster."""
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture
def inbox_pair(server_url: str) -> Iterator[Swarm]:
    """A handle on swarm "test" (standalone and cluster) with two agents registered: the
    worker ``a``, whose inbox the test reads, and the coordinator ``lead``, who sends."""
    with Swarm(server_url, swarm="test") as s:
        s.register("worker", name="a")
        s.register("coordinator", name="lead")
        yield s


@pytest.fixture(params=SWARM_KINDS)
def swarm(request: pytest.FixtureRequest) -> Iterator[Swarm]:
    """A Swarm, or an AsyncSwarm driven through the same calls, on the standalone server or
    on the cluster: every core test runs on the four. ``redis_url`` names the same server."""
    kind: str = request.param.removeprefix("cluster-")
    url: str = request.getfixturevalue("redis_url")
    if kind == "sync":
        handle = Swarm(url, swarm="test")
        yield handle
        handle.close()
    else:
        adapter = AsyncAsSync(lambda: AsyncSwarm(url, swarm="test"))
        yield as_swarm(adapter)
        adapter.close()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkout to install an agent client's entry in (the working folder), its HOME
    beside it (``home``)."""
    folder = tmp_path / "work"
    (folder / ".git").mkdir(parents=True)
    (tmp_path / "home").mkdir()
    monkeypatch.chdir(folder)
    return folder
