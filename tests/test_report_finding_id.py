"""``swarm task report --finding-id ID``: the report under the id its first try used, so that
a retry (after a lost reply, or of a report stopped half-way) stores nothing twice and
completes what the first try began; and a ``--finding`` JSON holding ``"id"`` refused (it
was kept in ``extra``, under a new id, without a word)."""

from __future__ import annotations

from typing import Any

import pytest

from redis_swarm import PermissionDenied, Swarm

from ._cli import Cli
from ._handles import must
from ._servers import RedisServer, old_worker_url, role_users, user_url

FID = "f-cli-retry-1"


def _token(swarm: Swarm, queue: str, worker: str = "w") -> str:
    """The token of a claim of ``queue``'s next task."""
    token = must(swarm.claim(queue, worker=worker)).token
    assert token is not None
    return token


def test_a_report_with_finding_id_is_stored_under_it_and_its_retry_stores_nothing_more(
    cli: Cli, raw: Any
) -> None:
    with Swarm(cli.url, swarm="test") as swarm:
        task = swarm.post_task("q", "look")
        token = _token(swarm, "q")
        args = (
            "task", "report", task.id, "--token", token, "--worker", "w",
            "--summary", "found it", "--finding-id", FID,
        )  # fmt: skip
        first = cli.json(*args)
        assert first["id"] == FID and first["summary"] == "found it"
        assert first["extra"] == {}
        stored = swarm.get_finding(FID)
        assert swarm.get_task(task.id).finding_id == FID
        count = raw.hlen(swarm.keys.findings)

        again = cli.json(*args)  # a retry: the stored finding, nothing more stored
        assert again["id"] == FID and again["created_at"] == stored.created_at
        assert raw.hlen(swarm.keys.findings) == count == 1
        assert [f.id for f in swarm.findings(queue="q")] == [FID]

        human = cli(*args).stdout
        assert f"reported {FID} for {task.id}" in human


def test_another_finding_under_a_used_finding_id_is_refused(cli: Cli) -> None:
    with Swarm(cli.url, swarm="test") as swarm:
        task = swarm.post_task("q", "look")
        token = _token(swarm, "q")
        base = ("task", "report", task.id, "--token", token, "--finding-id", FID)
        cli(*base, "--summary", "found it")
        out = cli(*base, "--summary", "something else", expect=1)
        assert f"finding id {FID} holds another finding" in out.stderr
        assert swarm.get_finding(FID).summary == "found it"


def test_a_malformed_finding_id_is_a_usage_error(cli: Cli) -> None:
    with Swarm(cli.url, swarm="test") as swarm:
        task = swarm.post_task("q", "look")
        token = _token(swarm, "q")
        out = cli(
            "task", "report", task.id, "--token", token, "--summary", "x",
            "--finding-id", "no spaces allowed", expect=2,
        )  # fmt: skip
        assert "finding id" in out.stderr
        assert swarm.get_task(task.id).status.value == "claimed"


def test_a_finding_json_holding_id_is_refused(cli: Cli, raw: Any) -> None:
    with Swarm(cli.url, swarm="test") as swarm:
        task = swarm.post_task("q", "look")
        token = _token(swarm, "q")
        out = cli(
            "task", "report", task.id, "--token", token,
            "--finding", '{"id": "f-mine", "summary": "found it"}', expect=2,
        )  # fmt: skip
        assert '"id"' in out.stderr and "--finding-id" in out.stderr
        assert raw.hlen(swarm.keys.findings) == 0
        assert swarm.get_task(task.id).status.value == "claimed"
        # other keys are kept in extra, as before
        done = cli.json(
            "task", "report", task.id, "--token", token,
            "--finding", '{"summary": "found it", "ids": [1]}', "--finding-id", "f-mine",
        )  # fmt: skip
        assert done["id"] == "f-mine" and done["extra"] == {"ids": [1]}


HALF = "half-cli"


@pytest.mark.parametrize("claim_next", [False, True])
def test_a_report_stored_half_way_is_completed_by_task_report_finding_id(
    acl_server: RedisServer, claim_next: bool
) -> None:
    """The first try stored its finding, then an older worker's ACL refused a later command
    (tests/test_doctor_indexes.py makes it so): the doctor names it; ``swarm task report
    --finding-id`` (the user's rights put right) completes the task with that finding."""
    users = role_users(acl_server, HALF, f"hc-{claim_next}")
    old_user = f"hc-old-{claim_next}"
    old_url = old_worker_url(acl_server, HALF, old_user)
    shard_url = user_url(acl_server, users["shard"])
    worker_url = user_url(acl_server, users["worker"])
    queue = f"hc-{claim_next}"
    with Swarm(old_url, swarm=HALF) as old, Swarm(shard_url, swarm=HALF) as shard:
        task = shard.post_task(queue, "die", max_attempts=1)
        token = _token(old, queue, "wz")
        old.fail(task.id, token, "timeout", retry=False)
        fid = f"f-half-cli-{claim_next}"
        with pytest.raises(PermissionDenied):  # (its finding stored, then refused)
            old.report(task.id, token, {"summary": "found it"}, worker="wz", finding_id=fid)
        assert shard.record_damage().half_stored == {fid: task.id}
        doctor = " ".join(Cli(shard_url, swarm=HALF)("doctor", expect=1).stdout.split())
        assert "swarm task report T --finding-id ID" in doctor
        assert "Swarm.report(..., finding_id=ID)" in doctor

        more = ("--claim-next", queue) if claim_next else ()
        worker = Cli(worker_url, swarm=HALF)
        done = worker.json(
            "task", "report", task.id, "--token", token, "--worker", "wz",
            "--summary", "found it", "--finding-id", fid, *more,
        )  # fmt: skip
        finding = done["finding"] if claim_next else done
        assert finding["id"] == fid and finding["superseded"] is False
        after = shard.get_task(task.id)
        assert after.status.value == "completed" and after.finding_id == fid
        assert [f.id for f in shard.findings(queue=queue)] == [fid]
        assert shard.record_damage().half_stored == {}
