"""Live sessions (issue 19): ``swarm hook EVENT`` meets Claude Code, Codex and Gemini CLI
sessions at their turns. ``formats`` speaks each client's hook JSON; ``events`` decides what
each event does with the swarm (through the public ``Swarm`` surface only)."""

from __future__ import annotations

from .events import HookOptions, agent_for, handle
from .formats import CLIENTS, Answer, canonical_event, render

__all__ = ["CLIENTS", "Answer", "HookOptions", "agent_for", "canonical_event", "handle", "render"]
