"""Machines of one swarm on different redis-swarm versions, on a real Redis 7.

The server holds one ``redis_swarm`` function library. When another machine's redis-swarm
(another version) has loaded its own, a worker here, which may not replace it, must be told
what is loaded and that every machine must run the same version: telling it to run
``swarm up`` (as the message for a missing library does) would have the admin knock that
other machine out in turn.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import pytest

from redis_swarm import LibraryReplaced, PermissionDenied, Settings, apply_role
from redis_swarm import _scripts as scripts

from ._cli import Cli
from ._handles import make_swarm
from ._servers import RedisServer, ServerFactory, system_redis

OTHER = "0ther0version000"


def other_versions_library() -> str:
    """The library as another redis-swarm loads it: the same name, another version."""
    mine = scripts.library()
    return mine.source.replace(f"local VERSION = '{mine.version}'", f"local VERSION = '{OTHER}'")


@pytest.fixture(scope="module")
def server(servers: ServerFactory) -> Iterator[RedisServer]:
    server = servers.start(binary=system_redis())
    yield server
    server.stop()


@pytest.fixture(scope="module")
def worker_url(server: RedisServer) -> str:
    """A worker user of swarm ``test``, made as `swarm acl --role worker --apply` makes it."""
    made = apply_role(Settings.from_url(server.url), "worker", "skew-worker", swarm="test")
    password = made.user.password
    assert password is not None
    return f"redis://skew-worker:{password}@127.0.0.1:{server.port}"


@pytest.fixture
def other_version_loaded(server: RedisServer) -> Iterator[None]:
    with contextlib.closing(server.client()) as admin:
        admin.flushall()
        admin.function_load(other_versions_library(), replace=True)
    yield
    with contextlib.closing(server.client()) as admin:
        admin.function_flush()


def assert_names_the_other_version(message: str) -> None:
    assert f"is version {OTHER}, loaded by a redis-swarm of another version" in message
    assert f"this redis-swarm expects version {scripts.library().version}" in message
    assert "another machine's" in message
    assert "every machine of a swarm must run the same redis-swarm version" in message
    assert "run 'swarm up' (or" not in message  # that would knock the other machine out


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.usefixtures("other_version_loaded")
def test_a_worker_is_told_which_version_is_loaded(
    kind: str, worker_url: str, server: RedisServer
) -> None:
    worker = make_swarm(kind, worker_url)
    try:
        with pytest.raises(PermissionDenied) as refused:
            worker.post_task("q", "d")
        assert_names_the_other_version(str(refused.value))
        with pytest.raises(PermissionDenied) as refused:
            worker.load_functions()  # what `swarm up` runs
        assert_names_the_other_version(str(refused.value))
    finally:
        worker.close()
    with contextlib.closing(server.client()) as admin:
        assert admin.dbsize() == 0  # nothing ran against the other version's library


@pytest.mark.usefixtures("other_version_loaded")
def test_the_cli_says_it(worker_url: str) -> None:
    out = Cli(worker_url)("task", "post", "q", "d", expect=None)
    assert out.code != 0
    assert_names_the_other_version(" ".join(out.stderr.split()))


def test_a_missing_library_still_says_to_load_it(worker_url: str, server: RedisServer) -> None:
    with contextlib.closing(server.client()) as admin:
        admin.function_flush()
    worker = make_swarm("sync", worker_url)
    try:
        with pytest.raises(PermissionDenied, match=r"is missing .* run 'swarm up'"):
            worker.post_task("q", "d")
    finally:
        worker.close()


# --- an admin that replaces another version's library says so (it stops the other machines)


def assert_says_it_replaced(message: str) -> None:
    mine = scripts.library().version
    assert f"was version {OTHER}, loaded by another redis-swarm" in message, message
    assert f"this one replaced it with version {mine}" in message, message
    assert f"every machine still on version {OTHER} fails from now on" in message, message
    assert "'Upgrading a fleet'" in message, message


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.usefixtures("other_version_loaded")
def test_an_admin_call_that_replaces_another_version_warns(kind: str, server: RedisServer) -> None:
    admin = make_swarm(kind, server.url)
    try:
        with pytest.warns(LibraryReplaced) as said:
            admin.post_task("q", "d")  # it meets the other version's library, and loads its own
        (replaced,) = [w.message for w in said if isinstance(w.message, LibraryReplaced)]
        assert (replaced.held, replaced.loaded) == (OTHER, scripts.library().version)
        assert_says_it_replaced(str(replaced))
        if kind == "sync":  # (the async twin's caller here is the loop's thread)
            assert said[0].filename == __file__  # said at the caller's line, not ours
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            admin.post_task("q", "d2")  # its own version is in place now: nothing to say
    finally:
        admin.close()


@pytest.mark.usefixtures("other_version_loaded")
def test_load_functions_over_another_version_warns(server: RedisServer) -> None:
    admin = make_swarm("sync", server.url)
    try:
        with pytest.warns(LibraryReplaced) as said:
            assert admin.load_functions()  # what `swarm up` runs
        assert_says_it_replaced(str(said[0].message))
    finally:
        admin.close()


def test_loading_a_missing_library_says_nothing(server: RedisServer) -> None:
    with contextlib.closing(server.client()) as admin:
        admin.function_flush()
    swarm = make_swarm("sync", server.url)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            swarm.post_task("q", "d")
            assert swarm.load_functions()
    finally:
        swarm.close()


@pytest.mark.usefixtures("other_version_loaded")
def test_the_cli_says_the_replacement_as_a_warning_line(server: RedisServer) -> None:
    out = Cli(server.url)("task", "post", "q", "d")
    said = " ".join(out.stderr.split())
    assert said.startswith("warning: the redis_swarm function library on"), out
    assert_says_it_replaced(said)
    assert "LibraryReplaced" not in out.stderr and "warnings.warn" not in out.stderr, out
