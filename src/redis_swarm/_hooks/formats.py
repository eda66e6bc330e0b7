"""Each client's hook JSON: event names in, answers out.

Documented shapes (docs/live.md cites them):
- Claude Code: input ``session_id``, ``hook_event_name``, ``source`` (SessionStart),
  ``prompt`` (UserPromptSubmit), ``stop_hook_active`` and ``last_assistant_message`` (Stop,
  SubagentStop), ``agent_id`` (SubagentStart/Stop). Output: context as
  ``hookSpecificOutput: {hookEventName, additionalContext}``; a refused stop as
  ``{"decision": "block", "reason": ...}``; ``systemMessage`` for the user.
- Codex: the same names and shapes (its JSON schemas, codex-rs/hooks/schema/generated, allow
  no other top-level keys than continue, decision, reason, hookSpecificOutput, stopReason,
  suppressOutput, systemMessage).
- Gemini CLI: BeforeAgent (the prompt), AfterAgent (the stop: ``prompt_response``,
  ``stop_hook_active``; ``"decision": "deny"`` with a ``reason`` sends the reason as a new
  prompt), PreCompress; context as ``hookSpecificOutput.additionalContext``.
- SessionEnd (all three: Claude Code's input adds ``reason``: clear, resume, logout,
  prompt_input_exit, other, ...): the session is over; its answer changes nothing.
Every answer is JSON on stdout with exit 0, written by ``_codec.shown_json`` (no control
character a terminal acts on, none that reorders a line, raw); each string in it is kept
under the clients' 10,000-character cap, counted as they count it (the core's
``client_len``: JavaScript's string length, in UTF-16 code units, an emoji two).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .._budget import clip as clip_to
from .._codec import shown_json

__all__ = [
    "CLIENTS",
    "EVENTS",
    "MAX_CHARS",
    "Answer",
    "canonical_event",
    "client_event",
    "clip",
    "render",
]

CLIENTS = ("claude", "codex", "gemini")
# Output strings stay under the clients' 10,000-character cap (in UTF-16 code units, as
# JavaScript counts a string: ``client_len``, which ``clip`` measures with).
MAX_CHARS = 9_500

# Canonical event -> its name in each client (None: the client has no such event).
_NAMES: dict[str, dict[str, str | None]] = {
    "SessionStart": {"claude": "SessionStart", "codex": "SessionStart", "gemini": "SessionStart"},
    "UserPromptSubmit": {
        "claude": "UserPromptSubmit",
        "codex": "UserPromptSubmit",
        "gemini": "BeforeAgent",
    },
    "Stop": {"claude": "Stop", "codex": "Stop", "gemini": "AfterAgent"},
    "SubagentStart": {"claude": "SubagentStart", "codex": "SubagentStart", "gemini": None},
    "SubagentStop": {"claude": "SubagentStop", "codex": "SubagentStop", "gemini": None},
    "PreCompact": {"claude": "PreCompact", "codex": "PreCompact", "gemini": "PreCompress"},
    "SessionEnd": {"claude": "SessionEnd", "codex": "SessionEnd", "gemini": "SessionEnd"},
}
EVENTS = tuple(_NAMES)


def client_event(event: str, client: str) -> str | None:
    """The name ``client`` gives the canonical ``event`` (None: it has no such event)."""
    return _NAMES[event][client]


def canonical_event(name: str, client: str) -> str:
    """The canonical event for the name ``client`` gives it (any case), given on the command
    line; ValueError saying which names exist for an event ``client`` does not have, or
    names otherwise (Gemini CLI has no ``Stop``, it has ``AfterAgent``: the client never
    runs a hook so, and an entry written by hand so would answer an event it never sends):
    every client is refused alike."""
    wanted = name.strip().lower()
    known = ", ".join(n for n in (names[client] for names in _NAMES.values()) if n)
    for event, names in _NAMES.items():
        if wanted == (names[client] or "").lower():
            return event
        if wanted == event.lower():
            its = f" (its name for it is {names[client]})" if names[client] else ""
            raise ValueError(f"{client} has no hook event {name!r}{its}: use one of {known}")
    raise ValueError(f"unknown hook event {name!r} for {client}: use one of {known}")


# What an answer cut to the clients' cap says: the parts that may be long (a message, a task)
# are cut before, each with the command that shows it whole (``events``).
_CAP_HINT = "the rest exceeds the client's cap on a hook's output"


def clip(text: str, limit: int = MAX_CHARS, hint: str = _CAP_HINT) -> str:
    """``text`` cut to ``limit`` characters as the clients count them (UTF-16 code units),
    saying so and ``hint`` (the core's ``clip``)."""
    return clip_to(text, limit, hint)


@dataclass(frozen=True)
class Answer:
    """What a hook answers, whatever the client: context for the model, a refused stop (with
    the reason the agent continues with), and a message for the user."""

    context: str = ""
    block: str = ""
    message: str = ""


def render(answer: Answer, event: str, client: str) -> str:
    """The JSON ``client`` expects from its hook for ``event``."""
    out: dict[str, Any] = {}
    if answer.block:
        out["decision"] = "deny" if client == "gemini" else "block"
        out["reason"] = clip(answer.block)
    if answer.context:
        specific: dict[str, Any] = {"additionalContext": clip(answer.context)}
        name = client_event(event, client)
        if client != "gemini" and name is not None:
            specific = {"hookEventName": name, **specific}
        out["hookSpecificOutput"] = specific
    if answer.message:
        out["systemMessage"] = clip(answer.message, 1000)
    return shown_json(json.dumps(out, ensure_ascii=False))
