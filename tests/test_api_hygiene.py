"""What a Python developer meets first in the core's API (a tour's findings): a closed handle
refuses (never a silent reconnection, never a leaked connection), a lease token stays out of
repr (not out of to_dict), filters and options are keyword-only, the shells' methods show
their operation's signature and docstring, a page is indexable, a retirement says when."""

from __future__ import annotations

import asyncio
import inspect
import pydoc
import subprocess
import sys
import time

import pytest

from redis_swarm import AsyncSwarm, Conflict, Swarm
from redis_swarm._client import _Shell

from ._cli import SRC, Cli

CLOSED = "is closed: make a new one"


# --- 1. a closed handle refuses, and opens no connection


def _sockets(handle: Swarm | AsyncSwarm) -> int:
    """The connections of a standalone handle's pool that hold a socket."""
    # (._redis: .redis is refused once closed)
    pool = handle._redis.connection_pool  # type: ignore[union-attr]
    conns = [*pool._available_connections, *pool._in_use_connections]
    return sum(
        1 for c in conns if getattr(c, "_sock", None) is not None or getattr(c, "_writer", None)
    )


def test_a_closed_swarm_refuses_every_call(redis_url: str) -> None:
    s = Swarm(redis_url, swarm="closed")
    s.ping()
    s.close()
    # (.redis handed out the redis-py client, which reconnected; durability() answered)
    for call in (
        s.ping,
        lambda: s.post_task("q", "x"),
        s.load_functions,
        lambda: s.redis,
        s.durability,
    ):
        with pytest.raises(Conflict, match=f"this Swarm {CLOSED}"):
            call()
    with pytest.raises(Conflict, match=CLOSED):
        next(iter(s.follow_events(block_s=0.1, timeout_s=0.1)))
    assert _sockets(s) == 0  # nothing reconnected
    s.close()  # twice: harmless
    with Swarm(redis_url, swarm="closed") as again:
        pass
    with pytest.raises(Conflict, match=CLOSED):
        again.claim("q", worker="w")


def test_a_closed_async_swarm_refuses_every_call(redis_url: str) -> None:
    async def main() -> None:
        async with AsyncSwarm(redis_url, swarm="closed") as b:
            await b.ping()
        with pytest.raises(Conflict, match=f"this AsyncSwarm {CLOSED}"):
            await b.ping()
        with pytest.raises(Conflict, match=CLOSED):
            await b.claim("q", worker="w", wait_s=1)
        with pytest.raises(Conflict, match=CLOSED):
            await b.durability()
        with pytest.raises(Conflict, match=CLOSED):
            b.redis  # noqa: B018  (the property is the call)
        assert _sockets(b) == 0
        await b.aclose()  # twice: harmless

    asyncio.run(main())


# The tour's script: a call after `async with`, then the interpreter's exit, where an
# unclosed connection is reported (a ResourceWarning, an error under -W error).
AFTER_CLOSE = """
import asyncio, sys
from redis_swarm import AsyncSwarm, Conflict, Swarm
async def main():
    async with AsyncSwarm(sys.argv[1], swarm="closed") as b:
        await b.ping()
    try:
        await b.ping()
    except Conflict as exc:
        print("refused:", exc)
asyncio.run(main())
s = Swarm(sys.argv[1], swarm="closed")
s.ping()
s.close()
try:
    s.ping()
except Conflict as exc:
    print("refused:", exc)
s.close()
"""


def test_a_call_after_close_leaks_no_connection(redis_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c", AFTER_CLOSE,
         redis_url],
        env={"PYTHONPATH": str(SRC)}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(f"refused: this Swarm {CLOSED}") == 1, done.stdout
    assert f"refused: this AsyncSwarm {CLOSED}" in done.stdout
    assert "ResourceWarning" not in done.stderr and "unclosed" not in done.stderr, done.stderr


# --- 2. secrets stay out of repr, not out of to_dict


def test_repr_hides_the_lease_token_to_dict_keeps_it(swarm: Swarm) -> None:
    swarm.post_task("q", "x")
    task = swarm.claim("q", worker="w")
    assert task is not None and task.token
    assert task.token not in repr(task) and "token=" not in repr(task)
    assert task.to_dict()["token"] == task.token
    assert task.token in task.to_json()


def test_repr_hides_a_webhooks_secrets(swarm: Swarm) -> None:
    tid = swarm.post_task("q", "x").id
    hook = swarm.set_webhook(
        tid, "https://example.test/hook", token="tok-secret", auth_scheme="Bearer",
        auth_credentials="cred-secret",
    )  # fmt: skip
    for secret in ("tok-secret", "cred-secret"):
        assert secret not in repr(hook)
        assert secret not in repr(swarm.webhooks(tid))
    assert hook.to_dict()["token"] == "tok-secret"
    assert hook.to_dict()["auth_credentials"] == "cred-secret"
    assert "Bearer" in repr(hook)  # (not a secret)


def test_cli_task_claim_json_prints_the_token(redis_url: str) -> None:
    cli = Cli(redis_url)
    cli("task", "post", "q", "x")
    claimed = cli.json("task", "claim", "q", "--worker", "w")
    assert isinstance(claimed["token"], str) and "." in claimed["token"]


# --- 3. filters and options are keyword-only


def test_filters_and_fail_options_are_keyword_only(swarm: Swarm) -> None:
    swarm.post_task("q", "x", pass_name="pass1")
    task = swarm.claim("q", worker="w")
    assert task is not None
    swarm.report(task.id, task.token, {"summary": "s"})
    for listing in (swarm.findings, swarm.syntheses):
        with pytest.raises(TypeError):
            listing("pass1")  # type: ignore[call-arg]
    assert len(swarm.findings(pass_name="pass1")) == 1
    swarm.post_task("q", "y")
    task = swarm.claim("q", worker="w")
    assert task is not None
    with pytest.raises(TypeError):
        swarm.fail(task.id, task.token, "broke", False)  # type: ignore[call-arg]
    assert swarm.fail(task.id, task.token, "broke", retry=False).status == "dead"


# --- 4. the shells' methods show their operation's parameters and docstring


def test_methods_show_the_operations_signature_and_doc(redis_url: str) -> None:
    op = inspect.unwrap(Swarm.claim)  # the operation (``_ops.claiming.claim``)
    params = list(inspect.signature(op).parameters)[1:]  # without its ctx
    for method in (Swarm.claim, AsyncSwarm.claim):
        assert list(inspect.signature(method).parameters)[1:] == params  # after self
        assert method.__doc__ == op.__doc__ and method.__name__ == "claim"
    assert Swarm.claim.__qualname__ == "Swarm.claim"
    assert AsyncSwarm.claim.__qualname__ == "AsyncSwarm.claim"
    sync_sig = inspect.signature(Swarm.findings)
    assert sync_sig.return_annotation == "Page[Finding]"
    async_sig = inspect.signature(AsyncSwarm.findings)
    assert async_sig.return_annotation == "Coroutine[Any, Any, Page[Finding]]"
    assert inspect.iscoroutinefunction(AsyncSwarm.ping)
    with Swarm(redis_url, swarm="t") as s:
        assert list(inspect.signature(s.claim).parameters) == params
        assert "Operation" not in str(inspect.signature(s.claim))
    text = pydoc.plain(pydoc.render_doc(Swarm))
    assert "_Op object" not in text and "_Overloaded object" not in text
    assert "claim(self, /, queues:" in text
    assert op.__doc__.split("\n", 1)[0].strip() in text
    undocumented = [
        name
        for name, attr in vars(_Shell).items()
        if getattr(attr, "__wrapped__", None) is not None
        and inspect.isgeneratorfunction(attr.__wrapped__)
        and not inspect.getdoc(getattr(Swarm, name))
    ]
    assert not undocumented


# --- 5. a page is indexable, as the lists of other reads


def test_a_page_is_indexable(swarm: Swarm) -> None:
    for data in ("a", "b"):
        swarm.post_task("q", data)
    page = swarm.list_tasks(queue="q")
    assert len(page) == 2
    assert page[0] == page.items[0] and page[-1] == page.items[1]
    assert page[:1] == page.items[:1]


# --- 6. a retirement says when


def test_retire_pass_returns_when(swarm: Swarm) -> None:
    swarm.post_task("q", "x", pass_name="P")
    task = swarm.claim("q", worker="w")
    assert task is not None
    swarm.report(task.id, task.token, {"summary": "s"})
    before = int(time.time() * 1000) - 60_000
    dry = swarm.retire_pass("P", dry_run=True)
    assert dry.at is not None and before < dry.at < before + 120_000  # the server's now
    done = swarm.retire_pass("P")
    assert done.tasks == 1 and done.at is not None
    assert done.at == swarm.retired_passes()["P"].at  # its last step's
    again = swarm.retire_pass("P")  # nothing left: when it was called
    assert again.tasks == 0 and again.at is not None and again.at >= done.at


def test_a_closed_handle_cannot_be_entered_again(redis_url: str) -> None:
    from redis_swarm import Conflict

    with Swarm(redis_url, swarm="test") as handle:
        handle.ping()
    with pytest.raises(Conflict, match="is closed: make a new one"), handle:
        pass
