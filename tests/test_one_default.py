"""A task's default max_attempts and lease_s are each one fact (``_validate``'s
``DEFAULT_MAX_ATTEMPTS``, ``DEFAULT_TASK_LEASE_S``): every signature, record and face that
posts a task defaults to them (each wrote its own 3 and 900 before)."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import pytest

from redis_swarm import AsyncSwarm, Swarm
from redis_swarm._models import Task, TaskSpec
from redis_swarm._pipeline.names import posted_once
from redis_swarm._pipeline.plan import Plan
from redis_swarm._validate import DEFAULT_MAX_ATTEMPTS, DEFAULT_TASK_LEASE_S
from redis_swarm.cli._tasks import post
from redis_swarm.mcp_server._tools._planner import PlannerTools, TaskInput


def _default(fn: Callable[..., Any], name: str) -> Any:
    return inspect.signature(fn).parameters[name].default


@pytest.mark.parametrize(
    "fn",
    [Swarm.post_task, AsyncSwarm.post_task, PlannerTools.post_task, posted_once],
    ids=["Swarm", "AsyncSwarm", "mcp", "posted_once"],
)
def test_every_post_defaults_to_the_one_max_attempts(fn: Callable[..., Any]) -> None:
    assert _default(fn, "max_attempts") == DEFAULT_MAX_ATTEMPTS


@pytest.mark.parametrize(
    "fn",
    [Swarm.post_task, AsyncSwarm.post_task, PlannerTools.post_task],
    ids=["Swarm", "AsyncSwarm", "mcp"],
)
def test_every_post_defaults_to_the_one_lease(fn: Callable[..., Any]) -> None:
    assert _default(fn, "lease_s") == DEFAULT_TASK_LEASE_S


def test_records_and_faces_default_to_them() -> None:
    """post_tasks' items (a TaskSpec, the MCP tool's TaskInput), a stored task, a plan, and
    ``swarm task post``'s options."""
    for record in (TaskSpec, Task, Plan):
        fields = {f.name: f.default for f in dataclasses.fields(record)}
        assert fields["max_attempts"] == DEFAULT_MAX_ATTEMPTS, record
        if record is not Plan:  # (a plan's leases are its agents')
            assert fields["lease_s"] == DEFAULT_TASK_LEASE_S, record
    assert TaskInput.model_fields["max_attempts"].default == DEFAULT_MAX_ATTEMPTS
    assert TaskInput.model_fields["lease_s"].default == DEFAULT_TASK_LEASE_S
    options = {p.name: p.default for p in post.params}
    assert options["max_attempts"] == DEFAULT_MAX_ATTEMPTS
    assert options["lease_s"] == DEFAULT_TASK_LEASE_S
