"""The seed's way, reimplemented from its description (SEED.md, DESIGN.md), for comparison.

Contexts: one hash per shard holding the first 1 MB of the text in a ``content`` field plus
metadata; a text over 1 MB is also split into 1 MB chunk keys (24 h TTL) and a chunk count.
A reader fetches the hash, then the count, then one GET per chunk, and joins them; the client
decodes replies to str (``decode_responses=True``), as the seed did.

Tasks: a list per queue (RPUSH / LPOP: a claim is a destructive pop) and a hash per task;
a finding is a hash plus an RPUSH on the shard's list; status reads every task's status with
one round trip per task. These are what the seed did, kept here only to be measured.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, cast

import redis

CHUNK = 1024 * 1024


class SeedSwarm:
    """The seed's shard and worker operations over one redis-py client."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    # --- contexts
    def load_context(self, shard: str, text: str, source: str = "context.md") -> None:
        self.redis.hset(
            f"shard:{shard}:context",
            mapping={
                "content": text[:CHUNK],
                "source": source,
                "size_bytes": len(text.encode()),
                "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            },
        )
        if len(text) > CHUNK:
            chunks = [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)]
            self.redis.set(f"shard:{shard}:context:chunks", len(chunks))
            for idx, chunk in enumerate(chunks):
                self.redis.set(f"shard:{shard}:context:chunk:{idx}", chunk, ex=86400)

    def get_parent_context(self, shard: str) -> str:
        data: dict[str, str] = self.redis.hgetall(f"shard:{shard}:context")  # type: ignore[assignment]
        count = self.redis.get(f"shard:{shard}:context:chunks")
        if count:
            parts = []
            for idx in range(int(cast(str, count))):
                chunk = self.redis.get(f"shard:{shard}:context:chunk:{idx}")
                if chunk:
                    parts.append(chunk)
            return "".join(parts)  # type: ignore[arg-type]
        return data.get("content", "")

    # --- tasks and findings
    def spawn_worker_task(self, shard: str, queue: str, description: str, data: Any) -> str:
        task_id = f"task_{uuid.uuid4().hex[:8]}"
        self.redis.hset(
            f"task:{task_id}",
            mapping={
                "task_id": task_id,
                "parent_shard": shard,
                "type": queue,
                "description": description,
                "data": json.dumps(data),
                "status": "pending",
            },
        )
        self.redis.rpush(f"queue:{queue}", task_id)
        self.redis.rpush(f"shard:{shard}:tasks", task_id)
        return task_id

    def claim_task(self, queue: str, worker: str) -> dict[str, Any] | None:
        task_id = cast("str | None", self.redis.lpop(f"queue:{queue}"))
        if not task_id:
            return None
        task: dict[str, Any] = self.redis.hgetall(f"task:{task_id}")  # type: ignore[assignment]
        self.redis.hset(
            f"task:{task_id}",
            mapping={"status": "in_progress", "worker_id": worker, "claimed_at": time.time()},
        )
        task["data"] = json.loads(task.get("data", "{}"))
        return task

    def report_finding(self, task: dict[str, Any], worker: str, finding: dict[str, Any]) -> str:
        finding_id = f"finding_{uuid.uuid4().hex[:8]}"
        self.redis.hset(
            f"finding:{finding_id}",
            mapping={
                "task_id": task["task_id"],
                "worker_id": worker,
                "timestamp": time.time(),
                "content": json.dumps(finding),
            },
        )
        self.redis.rpush(f"shard:{task['parent_shard']}:findings", finding_id)
        self.redis.hset(
            f"task:{task['task_id']}",
            mapping={"status": "completed", "finding_id": finding_id, "completed_at": time.time()},
        )
        return finding_id

    def swarm_status(self, shards: list[str]) -> dict[str, int]:
        """The seed's get_swarm_status: one round trip per task to count the pending ones."""
        out = {}
        for shard in shards:
            pending = 0
            for task_id in cast("list[str]", self.redis.lrange(f"shard:{shard}:tasks", 0, -1)):
                if self.redis.hget(f"task:{task_id}", "status") == "pending":
                    pending += 1
            out[shard] = pending
        return out
