"""The turns the HTTP faces take at a handle's connections (``_turns.Turns``): a caller over
the limit waits, then is refused; no turn is lost to a timeout or a cancellation."""

from __future__ import annotations

import asyncio

import pytest

from redis_swarm._turns import NoTurn, Turns


def test_a_caller_over_the_limit_waits_then_is_refused_and_no_turn_is_lost() -> None:
    async def body() -> None:
        turns = Turns(2, wait_s=0.05)
        await turns.take()
        await turns.take()
        with pytest.raises(NoTurn):
            await turns.take()  # both held: refused after the wait
        assert turns.waiting == 0
        turns.give_back()
        await turns.take()  # the one given back is free again
        turns.give_back()
        turns.give_back()
        async with turns, turns:  # both free: nothing lost to the refusal
            pass

    asyncio.run(body())


def test_a_waiter_gets_the_turn_given_back_while_it_waits() -> None:
    async def body() -> None:
        turns = Turns(1, wait_s=5)
        await turns.take()
        waiter = asyncio.create_task(turns.take())
        await asyncio.sleep(0.01)
        assert turns.waiting == 1
        turns.give_back()
        await asyncio.wait_for(waiter, 1)  # handed over, not refused
        turns.give_back()

    asyncio.run(body())


def test_a_cancelled_waiter_leaves_every_turn_free() -> None:
    async def body() -> None:
        turns = Turns(1, wait_s=5)
        await turns.take()
        waiter = asyncio.create_task(turns.take())
        await asyncio.sleep(0.01)
        turns.give_back()  # handed to the waiter ...
        waiter.cancel()  # ... which is cancelled before it runs again
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await asyncio.wait_for(turns.take(), 1)  # the turn was passed on, not lost
        turns.give_back()

    asyncio.run(body())


def test_a_patient_caller_waits_past_the_limit() -> None:
    async def body() -> None:
        turns = Turns(1, wait_s=0.01)
        await turns.take()
        patient = asyncio.create_task(turns.take(patient=True))
        await asyncio.sleep(0.05)  # five times the wait: still waiting, not refused
        assert not patient.done()
        turns.give_back()
        await asyncio.wait_for(patient, 1)
        turns.give_back()

    asyncio.run(body())
