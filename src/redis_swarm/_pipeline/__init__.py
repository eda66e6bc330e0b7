"""``swarm pipeline``: the seed's multi-pass method run headless from a plan file.

- ``plan``: the plan file (TOML), checked whole before anything runs.
"""

from __future__ import annotations

from .plan import AgentSpec, ContextSpec, PassSpec, Plan, TaskItem, load_plan, parse_plan

__all__ = ["AgentSpec", "ContextSpec", "PassSpec", "Plan", "TaskItem", "load_plan", "parse_plan"]
