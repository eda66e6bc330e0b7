"""A worker that claims is registered and marked present by the claim that leases its task,
also when its claim just before leased nothing (the script registers only when it leases,
while the handle spares a registration for a second after it asked for one)."""

from __future__ import annotations

from redis_swarm import Swarm


def test_a_claim_after_an_empty_one_registers_its_worker(swarm: Swarm) -> None:
    assert swarm.claim("q", worker="w-late") is None  # nothing yet: nothing registered
    assert "w-late" not in {a.id for a in swarm.agents()}
    swarm.post_task("q", "work")
    task = swarm.claim("q", worker="w-late")  # within the second after the empty claim
    assert task is not None
    assert "w-late" in {a.id for a in swarm.agents()}


def test_a_report_that_leased_nothing_next_does_not_spare_the_next_claim(swarm: Swarm) -> None:
    swarm.post_task("q", "first")
    held = swarm.claim("q", worker="w-next")
    assert held is not None and held.token is not None
    swarm.deregister("w-next")  # (its presence forgotten, as a sweep would)
    swarm.report(held.id, held.token, {"summary": "done"}, worker="w-next", claim_next="q")
    swarm.post_task("q", "second")
    assert swarm.claim("q", worker="w-next") is not None
    assert "w-next" in {a.id for a in swarm.agents()}
