"""A post whose dedupe key finds a cancelled or dead task says so, and what runs it again: it
said "already posted as T (dedupe key K): nothing posted" and exited 0, the work never run."""

from __future__ import annotations

from redis_swarm import Swarm

from ._cli import Cli


def test_a_dedupe_hit_on_a_cancelled_or_dead_task_says_its_status(cli: Cli, redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        cancelled = swarm.post_task("dq", "first", dedupe_key="K1")
        swarm.cancel(cancelled.id)
        dead = swarm.post_task("dq", "second", dedupe_key="K2", max_attempts=1)
        claimed = swarm.claim("dq", worker="w1")
        assert claimed is not None and claimed.id == dead.id
        swarm.fail(claimed.id, claimed.token, "broke", retry=False)
        live = swarm.post_task("dq", "third", dedupe_key="K3")
    out = cli("task", "post", "dq", "again", "--dedupe", "K1")
    assert out.stdout == (
        f"already posted as {cancelled.id} (dedupe key K1), now cancelled: nothing posted; "
        "post it with another dedupe key to run it again\n"
    )
    out = cli("task", "post", "dq", "again", "--dedupe", "K2")
    assert out.stdout == (
        f"already posted as {dead.id} (dedupe key K2), now dead: nothing posted; requeue it "
        f"to run it again (swarm task requeue {dead.id})\n"
    )
    out = cli("task", "post", "dq", "again", "--dedupe", "K3")  # (pending: as before)
    assert out.stdout == f"already posted as {live.id} (dedupe key K3): nothing posted\n"
    lines = '{"description": "a", "dedupe_key": "K1"}\n'
    out = cli("task", "post", "dq", "--jsonl", "-", input=lines)
    assert ", now cancelled: nothing posted; post it with another dedupe key" in out.stdout
    # What it says to do works: another key posts it; the requeue runs the dead one again.
    assert cli("task", "post", "dq", "again", "--dedupe", "K1b").stdout.startswith("posted ")
    cli("task", "requeue", dead.id)
