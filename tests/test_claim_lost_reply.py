"""A claim whose reply is lost raises ``ConnectionFailed`` carrying the lease secrets it sent
(``lease_secrets``): the client makes them, so its caller can prove a lease that claim took
(``ATTEMPT.SECRET`` renews it) and tell it from another's. Both shells. The lost reply is
played by a handle whose claim script runs in Redis before it raises, as a reply lost after
the server ran the request."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from redis_swarm import AsyncSwarm, ConnectionFailed, LeaseLost, Swarm, Task
from redis_swarm._protocol import Call, items_of

SWARM = "lost-reply"
LOST = "the claim's reply was lost (the test's)"


def _a_claim(request: Any) -> bool:
    return any(isinstance(item, Call) and item.script == "task_claim" for item in items_of(request))


class _Losing(Swarm):
    def _attempt(self, request: Any) -> Any:
        reply = super()._attempt(request)
        if _a_claim(request):
            raise ConnectionFailed(LOST)
        return reply


class _AsyncLosing(AsyncSwarm):
    async def _attempt(self, request: Any) -> Any:
        reply = await super()._attempt(request)
        if _a_claim(request):
            raise ConnectionFailed(LOST)
        return reply


def _proved(swarm: Swarm, task: Task, secrets: tuple[str, ...]) -> list[str]:
    """The secrets that renew the lease ``task`` (as stored now) is held under."""
    proved = []
    for secret in secrets:
        try:
            swarm.renew(task.id, f"{task.attempts}.{secret}")
        except LeaseLost:
            continue
        proved.append(secret)
    return proved


def test_a_claim_whose_reply_is_lost_carries_the_secrets_that_prove_its_lease(
    redis_url: str,
) -> None:
    with Swarm(redis_url, swarm=SWARM) as swarm, _Losing(redis_url, swarm=SWARM) as losing:
        posted = swarm.post_task("q", "one")
        with pytest.raises(ConnectionFailed) as lost:
            losing.claim(["q"], worker="w-1", n=2)  # (two secrets sent, one task leased)
        secrets = lost.value.lease_secrets
        assert len(secrets) == 2 and str(lost.value) == LOST
        stored = swarm.get_task(posted.id)
        assert (stored.status, stored.worker, stored.attempts) == ("claimed", "w-1", 1)
        assert _proved(swarm, stored, secrets) == [secrets[0]]  # (the best task's)
        with pytest.raises(ConnectionFailed) as empty:  # a claim that leased nothing
            losing.claim(["q"], worker="w-2")
        assert len(empty.value.lease_secrets) == 1
        assert _proved(swarm, stored, empty.value.lease_secrets) == []
    assert ConnectionFailed("any other call").lease_secrets == ()


def test_the_async_claim_carries_them_too(redis_url: str) -> None:
    async def claim() -> tuple[str, ...]:
        async with _AsyncLosing(redis_url, swarm=SWARM) as losing:
            with pytest.raises(ConnectionFailed) as lost:
                await losing.claim("q", worker="w-1")
            return lost.value.lease_secrets

    with Swarm(redis_url, swarm=SWARM) as swarm:
        posted = swarm.post_task("q", "one")
        secrets = asyncio.run(claim())
        assert _proved(swarm, swarm.get_task(posted.id), secrets) == list(secrets)


class _LosingReports(Swarm):
    def _attempt(self, request: Any) -> Any:
        reply = super()._attempt(request)
        if any(isinstance(i, Call) and i.script == "task_report" for i in items_of(request)):
            raise ConnectionFailed(LOST)
        return reply


def test_a_report_whose_reply_is_lost_carries_the_secret_of_the_next_lease(
    redis_url: str,
) -> None:
    """A report with claim_next leases the next task in its script: lost, its error carries
    that lease's secret, as a claim's does."""
    with Swarm(redis_url, swarm=SWARM) as swarm, _LosingReports(redis_url, swarm=SWARM) as losing:
        swarm.post_task("r", "first")
        second = swarm.post_task("r", "second")
        held = swarm.claim("r", worker="w-2")
        assert held is not None and held.token is not None
        with pytest.raises(ConnectionFailed) as lost:
            losing.report(held.id, held.token, {"summary": "done"}, worker="w-2", claim_next="r")
        secrets = lost.value.lease_secrets
        assert len(secrets) == 1
        now = swarm.get_task(second.id)
        assert now.worker == "w-2" and _proved(swarm, now, secrets) == list(secrets)
        with pytest.raises(ConnectionFailed) as plain:  # (no claim_next: nothing leased)
            losing.report(now.id, f"{now.attempts}.{secrets[0]}", {"summary": "done"})
        assert plain.value.lease_secrets == ()
