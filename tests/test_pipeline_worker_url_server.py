"""A worker user's URL (``[workers] url_env``, ``--worker-url-env``) that names another server
than the pipeline's own (another port, database or unix socket; another cluster or Sentinel
set) is refused before anything is stored, naming both servers with their passwords masked:
its agents would write their findings where the run never reads them. The same server
written another way (localhost for 127.0.0.1, the embedded server's socket) is not refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from redis_swarm import Settings, Swarm
from redis_swarm._errors import ValidationError
from redis_swarm._pipeline import Pipeline, parse_plan
from redis_swarm._pipeline.worker_url import other_server

from ._cli import Cli
from ._role_users import role_urls
from ._servers import RedisServer, ServerFactory, system_redis
from .test_pipeline_worker_url import write_plan


@pytest.fixture(scope="module")
def other_server_(servers: ServerFactory) -> RedisServer:
    """A second Redis >= 7 with users, on another port: a worker user's URL of it connects."""
    return servers.start(binary=system_redis())


@pytest.fixture(scope="module")
def unix_server(servers: ServerFactory) -> RedisServer:
    return servers.start(unix=True)


@pytest.fixture
def users(
    acl_server: RedisServer, other_server_: RedisServer, request: pytest.FixtureRequest
) -> dict[str, str]:
    """The pipeline's shard user and a worker user of a swarm of the test's own, and a
    worker user of the same name on the other server."""
    swarm = "ws" + str(abs(hash(request.node.name)) % 10**8)
    urls = role_urls(acl_server, swarm, swarm)
    other = role_urls(other_server_, swarm, swarm, roles=("worker",))
    return {"swarm": swarm, **urls, "other": other["worker"]}


def stored(server: RedisServer, swarm: str) -> list[str]:
    client = server.client()
    try:
        return sorted(k.decode() for k in client.scan_iter(f"*{swarm}*"))
    finally:
        client.close()


def password(url: str) -> str:
    secret = Settings.from_url(url).password
    assert secret
    return secret


def worker_url(case: str, users: dict[str, str], unix_server: RedisServer) -> str:
    if case == "port":
        return users["other"]
    if case == "database":
        return users["worker"] + "/3"
    return unix_server.url


SAID = {
    "port": "another port: {other}, not {own}",
    "database": "another database: 3, not 0",
    "unix": "a unix:// (or embedded) URL, where the pipeline's is a redis:// one",
}


@pytest.mark.parametrize("case", ["port", "database", "unix"])
@pytest.mark.parametrize("given", ["plan", "option"])
def test_a_worker_url_of_another_server_is_refused_before_anything_is_stored(
    acl_server: RedisServer,
    other_server_: RedisServer,
    unix_server: RedisServer,
    users: dict[str, str],
    tmp_path: Path,
    case: str,
    given: str,
) -> None:
    url = worker_url(case, users, unix_server)
    env = {"WORKER_URL": url}
    cli = Cli(users["shard"], swarm=users["swarm"])
    if given == "plan":
        out = cli("pipeline", "run", str(write_plan(tmp_path, "WORKER_URL")), expect=2, env=env)
        head = "plan.toml:6: workers.url_env: "
    else:
        plan = str(write_plan(tmp_path, None))
        out = cli("pipeline", "run", plan, "--worker-url-env", "WORKER_URL", expect=2, env=env)
        head = "--worker-url-env WORKER_URL: "
    said = " ".join(out.stderr.split())  # (the message is wrapped to the terminal's width)
    assert head + "the environment variable WORKER_URL holds a URL of another server" in said
    assert SAID[case].format(other=other_server_.port, own=acl_server.port) in said, said
    # Both servers named, their passwords masked, and what to do.
    shown = Settings.from_url(url).url
    assert shown in said and Settings.from_url(users["shard"]).url in said, said
    assert password(users["shard"]) not in out.stderr
    if case != "unix":
        assert password(url) not in out.stderr
        assert ":***@" in shown
    assert "Set WORKER_URL to a worker user's URL on the pipeline's own server" in said
    assert "with the same scheme, host, port and database as the pipeline's" in said
    # Nothing stored on either server: no context, task, plan or lease.
    assert stored(acl_server, users["swarm"]) == []
    assert stored(other_server_, users["swarm"]) == []
    if given == "plan":  # pipeline check refuses it alike
        out = cli("pipeline", "check", str(write_plan(tmp_path, "WORKER_URL")), expect=2, env=env)
        assert head + "the environment variable WORKER_URL holds a URL of another" in " ".join(
            out.stderr.split()
        )


def test_a_library_run_refuses_it_too(
    acl_server: RedisServer,
    users: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WORKER_URL", users["other"])
    path = write_plan(tmp_path, "WORKER_URL")
    plan = parse_plan(path.read_text(), path)  # (not checked against the server: the run is)
    with Swarm(users["shard"], swarm=users["swarm"]) as swarm:
        run = Pipeline(swarm, plan)
        with pytest.raises(ValidationError, match="holds a URL of another server") as caught:
            run.run()
    assert password(users["other"]) not in str(caught.value)
    assert not run.began
    assert stored(acl_server, users["swarm"]) == []


@pytest.mark.parametrize(
    ("own", "worker", "said"),
    [
        # The same server written otherwise: not refused.
        ("redis://s:p@127.0.0.1:7000", "redis://w:q@localhost:7000/0", None),
        ("redis://s:p@localhost:7000", "redis://w:q@[::1]:7000", None),
        ("redis://s:p@Redis.Example.:7000/2", "redis://w:q@redis.example:7000/2", None),
        ("redis://s:p@[0:0::1]:7000", "redis://w:q@127.0.0.1:7000", None),
        ("redis+cluster://a:7000,b:7001", "redis+cluster://w:q@b:7001,c:7002", None),
        ("redis+sentinel://a,b/mymaster/1", "redis+sentinel://w:q@b:26379/mymaster/1", None),
        ("embedded:///tmp/rs-home", "unix://w:q@/tmp/rs-home/redis.sock", None),
        ("unix:///tmp/rs.sock?db=2", "unix:///tmp/./rs.sock?db=2", None),
        # Another server: refused, saying what differs.
        ("redis://127.0.0.1:7000", "redis://127.0.0.2:7000", "another host: 127.0.0.2, not"),
        ("redis://10.0.0.5:7000", "redis://redis.example:7000", "another host"),
        ("redis://127.0.0.1:7000", "rediss://127.0.0.1:7000", "a rediss:// URL, where"),
        ("redis://127.0.0.1:7000", "redis+cluster://127.0.0.1:7000", "a redis+cluster://"),
        ("redis+cluster://a:7000,b:7001", "redis+cluster://c:7000", "another cluster"),
        ("redis+sentinel://a,b/mymaster", "redis+sentinel://c/mymaster", "another Sentinel set"),
        ("redis+sentinel://a/mymaster", "redis+sentinel://a/other", "another Sentinel service"),
        ("redis+sentinel://a/mymaster/1", "redis+sentinel://a/mymaster", "another database"),
        ("embedded:///tmp/rs-home", "embedded:///tmp/rs-other", "another unix socket"),
        ("unix:///tmp/rs.sock", "unix:///tmp/rs.sock?db=1", "another database: 1, not 0"),
    ],
)
def test_the_same_server_is_told_from_what_the_urls_say(
    own: str, worker: str, said: str | None
) -> None:
    differs = other_server(Settings.from_url(worker), Settings.from_url(own))
    if said is None:
        assert differs is None
    else:
        assert differs is not None and said in differs, differs
