"""What an adversarial run of the seed's API found, held to the code: V1's ``complete_task``
keeps its claim through a refused report; ``release_task()`` in ``claim_tasks()`` does not spin;
a worker may not report a task it gave up itself; a lost reply says the request may have run,
and the retry stores it once; dict keys that are not strings are refused at any depth; the
seed's arguments are used or refused, never replaced; the context command of a server with a
password names its URL through ``SWARM_URL``."""

from __future__ import annotations

import inspect
import shlex
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import redis

from redis_swarm import (
    ConfigError,
    Conflict,
    ConnectionFailed,
    EphemeralWorker,
    RedisSwarmCoordinator,
    SonnetCoordinator,
    Swarm,
    SwarmMemoryShard,
    ValidationError,
)
from redis_swarm._protocol import Call, items_of
from redis_swarm.roles import NoTaskClaimed

from ._cli import subprocess_env
from ._servers import ServerFactory

LOST = "the reply was lost (the test's)"


class _LosesOnce(Swarm):
    """A handle whose next request running ``script`` runs in Redis, then loses its reply."""

    script = ""

    def _attempt(self, request: Any) -> Any:
        reply = super()._attempt(request)
        if self.script and any(
            isinstance(i, Call) and i.script == self.script for i in items_of(request)
        ):
            self.script = ""
            raise ConnectionFailed(LOST, sent=True)
        return reply


# --- 1. V1's complete_task keeps its claim through a refused report


def test_v1_complete_task_refused_keeps_the_claim_for_the_retry_and_close(
    redis_url: str,
) -> None:
    with RedisSwarmCoordinator(url=redis_url, swarm="rv-v1") as v1:
        v1.register_agent("haiku_worker")
        first = v1.post_task("queue:v", "if.search", {"q": 1})
        assert v1.claim_task("queue:v", timeout=600) is not None
        with pytest.raises(ValidationError, match="not JSON-serialisable"):
            v1.complete_task(first, {"summary": "ok", "seen": {1, 2}})
        v1.complete_task(first, {"summary": "ok", "seen": [1, 2]})  # its own lease: taken
        assert v1.swarm.get_task(first).status.value == "completed"
        second = v1.post_task("queue:v", "if.search", {"q": 2})
        assert v1.claim_task("queue:v", timeout=600) is not None
        with pytest.raises(ValidationError):
            v1.complete_task(second, {"summary": "x", "seen": {3}})
        swarm = Swarm(redis_url, swarm="rv-v1")
    with swarm:  # close() gave the claimed task back
        assert swarm.get_task(second).status.value == "pending"


def test_v1_complete_task_after_a_lost_reply_stores_the_finding_once(redis_url: str) -> None:
    losing = _LosesOnce(redis_url, swarm="rv-v1-lost")
    with losing:
        v1 = RedisSwarmCoordinator(swarm=losing)
        v1.register_agent("haiku_worker")
        task_id = v1.post_task("queue:v", "if.search", None)
        v1.claim_task("queue:v", timeout=600)
        losing.script = "task_report"
        with pytest.raises(ConnectionFailed, match="may have applied it") as lost:
            v1.complete_task(task_id, {"summary": "done"})
        assert lost.value.sent and "complete_task() again" in str(lost.value)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # (no SupersededFinding: the same finding)
            again = v1.complete_task(task_id, {"summary": "done"})
        assert again in str(lost.value)
        assert [f.id for f in losing.findings().items if f.task_id == task_id] == [again]
        v1.close()


# --- 2. release_task() inside claim_tasks() does not spin


def test_a_task_released_in_the_loop_is_not_yielded_by_it_again(redis_url: str) -> None:
    with SwarmMemoryShard(url=redis_url, swarm="rv-loop") as shard:
        for name in ("needs-gpu", "b", "c"):
            shard.spawn_worker_task("q", name)
        seen: list[str] = []
        with EphemeralWorker(url=redis_url, swarm="rv-loop") as worker:
            for task in worker.claim_tasks("q"):
                seen.append(task["description"])
                if len(seen) > 10:
                    break
                if task["description"] == "needs-gpu":
                    assert worker.release_task() == task["task_id"]
                    continue
                worker.report_finding({"summary": "done " + task["description"]})
        assert seen == ["needs-gpu", "b", "c"]
        states = {t.description: t.status.value for t in shard.swarm.list_tasks(queue="q").items}
        assert states == {"needs-gpu": "pending", "b": "completed", "c": "completed"}


# --- 3. a report of a task the worker gave up itself


def test_a_report_after_the_workers_own_release_or_fail_is_refused(redis_url: str) -> None:
    with SwarmMemoryShard(url=redis_url, swarm="rv-gaveup") as shard:
        released = shard.spawn_worker_task("q", "d")
        with (
            EphemeralWorker(url=redis_url, swarm="rv-gaveup") as w1,
            EphemeralWorker(url=redis_url, swarm="rv-gaveup") as w2,
        ):
            w1.claim_task("q")
            w1.release_task()
            w2.claim_task("q")
            with pytest.raises(Conflict, match="released it itself") as refused:
                w1.report_finding({"summary": "gave it up"})
            assert "claim again (claim_task())" in str(refused.value)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                w2.report_finding({"summary": "the real work"})
            dead = shard.spawn_worker_task("q2", "d")
            w1.claim_task("q2")
            w1.fail("corrupt input", retry=False)
            with pytest.raises(Conflict, match="gave it up as failed itself"):
                w1.report_finding({"summary": "oops"})
        assert shard.swarm.get_task(dead).status.value == "dead"
        [kept] = shard.get_all_findings(task_type="q")
        assert kept["task_id"] == released and kept["content"]["summary"] == "the real work"


def test_a_report_after_a_lease_that_ran_out_stays_allowed(redis_url: str) -> None:
    with SwarmMemoryShard(url=redis_url, swarm="rv-ranout") as shard:
        task_id = shard.spawn_worker_task("q", "d")
        with EphemeralWorker(url=redis_url, swarm="rv-ranout") as worker:
            task = worker.claim(["q"], lease_s=0.05)  # (any seconds: a float)
            assert task is not None
            time.sleep(0.2)
            assert worker.report_finding({"summary": "late but done"})
        assert shard.swarm.get_task(task_id).status.value == "completed"


# --- 4. a lost reply says the request may have run; the retry does it once


def test_a_lost_post_names_the_id_to_retry_with_and_posts_once(redis_url: str) -> None:
    losing = _LosesOnce(redis_url, swarm="rv-lost")
    with losing:
        shard = SwarmMemoryShard(swarm=losing)
        losing.script = "task_post"
        with pytest.raises(ConnectionFailed, match="may have applied it") as lost:
            shard.spawn_worker_task("q", "analyse depot 3")
        said = str(lost.value)
        assert lost.value.sent and "retry with task_id=" in said
        task_id = said.split("retry with task_id=")[1].split("'")[1]
        assert shard.spawn_worker_task("q", "analyse depot 3", task_id=task_id) == task_id
        assert [t.id for t in losing.list_tasks(queue="q").items] == [task_id]
        keyed = shard.spawn_worker_task("q", "once", dedupe_key="k1")
        assert shard.spawn_worker_task("q", "once", dedupe_key="k1") == keyed
        shard.close()


def test_a_lost_report_is_retried_under_the_same_finding_id(redis_url: str) -> None:
    losing = _LosesOnce(redis_url, swarm="rv-lost-report")
    with losing:
        shard = SwarmMemoryShard(swarm=losing)
        shard.spawn_worker_task("q", "d")
        worker = EphemeralWorker(swarm=losing)
        worker.claim_task("q")
        losing.script = "task_report"
        with pytest.raises(ConnectionFailed, match="may have applied it") as lost:
            worker.report_finding({"summary": "depot 3 ok"})
        assert "report_finding() again" in str(lost.value) and worker.held is not None
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no SupersededFinding
            again = worker.report_finding({"summary": "depot 3 ok"})
        assert again in str(lost.value)
        assert [(f["finding_id"], f["superseded"]) for f in shard.get_all_findings()] == [
            (again, False)
        ]
        worker.close()
        shard.close()


# --- 5. dict keys that are not strings, at any depth


def test_dict_keys_that_are_not_strings_are_refused_naming_where(redis_url: str) -> None:
    with SwarmMemoryShard(url=redis_url, swarm="rv-keys") as shard:
        with pytest.raises(ValidationError, match=r"task data has the key 1 \(int\)"):
            shard.spawn_worker_task("q", "d", {1: "int key", "1": "str key"})
        shard.spawn_worker_task("q", "d", {"rows": [{"a": 1}]})
        with EphemeralWorker(url=redis_url, swarm="rv-keys") as worker:
            worker.claim_task("q")
            with pytest.raises(ValidationError) as deep:
                worker.report_finding({"summary": "s", "by_row": {"1": "b", True: "c"}})
            assert "the finding at ['by_row'] has the key True (bool)" in str(deep.value)
            assert "stored as 'true'" in str(deep.value)
            worker.report_finding({"summary": "s", "by_row": {"1": "b"}})
        with SonnetCoordinator(url=redis_url, swarm="rv-keys") as sonnet:
            with pytest.raises(ValidationError, match=r"the message has the key 2"):
                sonnet.send_message(shard.agent_id, {"type": "x", 2: "int"})
            with pytest.raises(ValidationError, match=r"the message at \[0\] has the key"):
                sonnet.broadcast_message([{None: 1}])
        with (
            RedisSwarmCoordinator(url=redis_url, swarm="rv-keys") as v1,
            pytest.raises(ValidationError, match=r"task_data at \['a'\] has the key"),
        ):
            v1.post_task("q", "t", {"a": {1.5: 2}})


# --- 6. load_context takes text


@pytest.mark.parametrize("content", [b"Gedimat has 3 depots", Path("/nonexistent/ctx.md")])
def test_load_context_refuses_what_is_not_text(redis_url: str, content: object) -> None:
    with SwarmMemoryShard(url=redis_url, swarm="rv-ctx") as shard:
        with pytest.raises(ValidationError, match="load_context takes the context as text"):
            shard.load_context(content, "c.md")  # type: ignore[arg-type]
        assert shard.context == "" and shard.get_context_for_worker()["context_preview"] == ""


# --- 7. the seed's arguments used or refused, never replaced


def test_arguments_are_refused_not_replaced(redis_url: str) -> None:
    with pytest.raises(ValidationError, match="swarm name is empty"):
        SwarmMemoryShard(url=redis_url, swarm="")
    with pytest.raises(ValidationError, match="agent_id is empty"):
        SonnetCoordinator(url=redis_url, swarm="rv-args", agent_id="")
    with pytest.raises(ConfigError, match="redis_port must be a port number"):
        SwarmMemoryShard(redis_host="127.0.0.1", redis_port=0, swarm="rv-args")
    with pytest.raises(ConfigError, match="redis_ssl must be True or False"):
        SwarmMemoryShard(redis_host="127.0.0.1", redis_port=1, redis_ssl="no", swarm="rv-args")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="worker_id '-x' begins with '-'"):
        EphemeralWorker(url=redis_url, swarm="rv-args", worker_id="-x")
    with (
        SwarmMemoryShard(url=redis_url, swarm="rv-args") as shard,
        pytest.raises(ValidationError, match="queue is empty"),
    ):
        shard.get_all_findings(task_type="")


# --- 8. signatures and wording


def test_the_shards_keywords_are_in_its_signature(redis_url: str) -> None:
    params = inspect.signature(SwarmMemoryShard).parameters
    assert {"agent_id", "model", "capacity_tokens"} <= set(params)
    with SwarmMemoryShard(
        url=redis_url, swarm="rv-sig", agent_id="memory_research_0001", model="haiku"
    ) as shard:
        assert shard.agent_id == "memory_research_0001" and shard.agent.model == "haiku"


def test_refusals_name_what_the_caller_wrote(redis_url: str) -> None:
    with (
        SonnetCoordinator(url=redis_url, swarm="rv-words") as sonnet,
        pytest.raises(ValidationError, match=r"^broadcast_message sends"),
    ):
        sonnet.broadcast_message({1})
    with (
        RedisSwarmCoordinator(url=redis_url, swarm="rv-words") as v1,
        pytest.raises(ValidationError, match=r"^role '-lead' begins with '-'"),
    ):
        v1.register_agent("-lead")
    with EphemeralWorker(url=redis_url, swarm="rv-words") as worker:
        assert worker.claim_task("queue:empty") is None
        with pytest.raises(NoTaskClaimed, match="the last claim_task\\(\\) found none"):
            worker.get_parent_context()
    with SwarmMemoryShard(url=redis_url, swarm="rv-words") as shard:
        shard.spawn_worker_task("q", "d")
        with EphemeralWorker(url=redis_url, swarm="rv-words") as worker:
            worker.claim_task("q")
            worker.report_finding({"summary": "s"})
        findings = shard.get_all_findings()
        with pytest.raises(ValidationError, match=r"\[f\['finding_id'\] for f in findings\]"):
            shard.synthesize_findings("Pass 1", "t", findings)  # type: ignore[arg-type]


# --- 9. the context command of a server with a password


def test_the_context_command_takes_a_password_url_from_swarm_url(
    servers: ServerFactory, tmp_path: Path
) -> None:
    server = servers.start()
    try:
        client: redis.Redis = server.client()
        client.config_set("requirepass", "sesame-rv")
        client.close()
        url = server.url.replace("redis://", "redis://:sesame-rv@", 1)
        with SwarmMemoryShard(url=url, swarm="rv-loc") as shard:
            shard.load_context("the context", "c.md")
            where = shard.get_context_for_worker()["context_full_location"]
        assert "sesame" not in where and '--url "$SWARM_URL"' in where
        env = subprocess_env(url, "someone-elses", tmp_path / "nobin")
        env["SWARM_HOME"] = str(tmp_path / "home")
        run = [*shlex.split(where.replace('"$SWARM_URL"', "URL"))]  # (a shell expands it)
        assert run[run.index("--url") + 1] == "URL"
        done = subprocess.run(
            ["bash", "-c", where], env=env, cwd=tmp_path, capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.rstrip("\n") == "the context"
        del env["SWARM_URL"]  # without it: refused, never the embedded server
        env["SWARM_HOME"] = str(tmp_path / "home2")
        refused = subprocess.run(
            ["bash", "-c", where], env=env, cwd=tmp_path, capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip
        assert refused.returncode != 0 and "URL is empty" in refused.stderr
        assert not (tmp_path / "home2").exists()
    finally:
        server.kill()


# --- 5. a shard collects only the findings of the tasks it spawned


def test_a_shard_cannot_collect_a_finding_of_another_shards_task(redis_url: str) -> None:
    with (
        SwarmMemoryShard(url=redis_url, swarm="rv-other", agent_id="shard-a") as a,
        SwarmMemoryShard(url=redis_url, swarm="rv-other", agent_id="shard-b") as b,
    ):
        task_id = a.spawn_worker_task("q", "d")
        with pytest.raises(ValidationError, match=r"by shard 'shard-a'.*nothing was stored"):
            b.collect_worker_finding(task_id, {"summary": "not mine"})
        assert a.swarm.get_task(task_id).status.value == "pending"
        assert a.get_all_findings() == [] and b.worker_findings == []
        assert a.collect_worker_finding(task_id, {"summary": "mine"})
        assert a.swarm.get_task(task_id).status.value == "completed"
