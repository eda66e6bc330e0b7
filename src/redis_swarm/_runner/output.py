"""What an agent CLI printed: its answer, what the run cost, and whether the CLI itself says
the run failed.

Two machine formats are read, besides plain text (the answer as it is):

- Claude Code's ``claude -p --output-format json``: one result object, ``{"type": "result",
  "subtype", "is_error", "result", "session_id", "total_cost_usd", "usage": {"input_tokens",
  "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens"}, "modelUsage":
  {MODEL: {"inputTokens", "outputTokens", "cacheReadInputTokens",
  "cacheCreationInputTokens", "costUSD"}}}``; ``result`` is the answer. The last line of
  ``--output-format stream-json`` is the same object, so that format is read too.
- Codex's ``codex exec --json``: one event per line; the answer is the text of the last
  ``{"type": "item.completed", "item": {"type": "agent_message", "text"}}``, the usage that
  of each ``{"type": "turn.completed", "usage": {"input_tokens", "cached_input_tokens",
  "output_tokens"}}`` added up; ``turn.failed`` (``{"error": {"message"}}``) or an
  ``error`` event with no answer after it is a failed run.

Input tokens are counted whole in ``Usage.tokens_in``: Claude reports the cached ones apart
from ``input_tokens`` (they are added), Codex within them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .._models import Usage, usd

__all__ = ["AgentOutput", "read_output"]

CLAUDE = "claude-json"
CODEX = "codex-jsonl"
_CODEX_EVENTS = frozenset(
    {"thread.started", "turn.started", "turn.completed", "turn.failed", "item.started",
     "item.updated", "item.completed", "error"}
)  # fmt: skip


@dataclass(frozen=True)
class AgentOutput:
    """An agent run's output read: ``answer`` is the text to find the finding in; ``usage``
    what the run cost (None: the format does not say); ``error`` set when the CLI reported
    the run as failed (Claude's ``is_error``, Codex's ``turn.failed``); ``model`` the main
    model the CLI names (the one that cost the most), if it names one."""

    answer: str
    usage: Usage | None = None
    error: str | None = None
    model: str | None = None


def read_output(text: str) -> AgentOutput:
    """The answer, usage and error in an agent's stdout, whatever of the formats it is in."""
    stripped = text.strip()
    if stripped.startswith("{"):
        whole = _json(stripped)
        if _is_claude_result(whole):
            return _claude(whole)
        lines = [_json(line) for line in stripped.splitlines() if line.strip()]
        results = [v for v in lines if _is_claude_result(v)]
        if results:  # stream-json: the last line is the result object
            return _claude(results[-1])
        events = [v for v in lines if isinstance(v, dict) and v.get("type") in _CODEX_EVENTS]
        if events and isinstance(lines[0], dict):
            return _codex(events)
    return AgentOutput(text)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _is_claude_result(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and value.get("type") == "result"
        and ("result" in value or "is_error" in value)
    )


def _count(value: Any) -> int | None:
    """A token count, or None when the CLI gave something else."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return int(value)


def _cost(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        return None
    return float(value)


def _add(*counts: int | None) -> int | None:
    known = [c for c in counts if c is not None]
    return sum(known) if known else None


def _claude(result: dict[str, Any]) -> AgentOutput:
    raw_usage = result.get("usage")
    usage = raw_usage if isinstance(raw_usage, dict) else {}
    cached = _count(usage.get("cache_read_input_tokens"))
    tokens_in = _add(
        _count(usage.get("input_tokens")),
        _count(usage.get("cache_creation_input_tokens")),
        cached,
    )
    models: dict[str, dict[str, float]] = {}
    raw_models = result.get("modelUsage")
    for name, figures in (raw_models if isinstance(raw_models, dict) else {}).items():
        if not isinstance(name, str) or not isinstance(figures, dict):
            continue
        entry = {
            "cost_usd": _cost(figures.get("costUSD")),
            "tokens_in": _add(
                _count(figures.get("inputTokens")),
                _count(figures.get("cacheCreationInputTokens")),
                _count(figures.get("cacheReadInputTokens")),
            ),
            "tokens_out": _count(figures.get("outputTokens")),
        }
        models[name[:128]] = {k: v for k, v in entry.items() if v is not None}
    session = result.get("session_id")
    record = Usage(
        source=CLAUDE,
        cost_usd=_cost(result.get("total_cost_usd")),
        tokens_in=tokens_in,
        tokens_out=_count(usage.get("output_tokens")),
        cached_in=cached,
        session_id=session[:128] if isinstance(session, str) and session.strip() else None,
        models=models,
    )
    answer = result.get("result")
    answer = answer if isinstance(answer, str) else ""
    error = None
    if result.get("is_error") is True:
        subtype = result.get("subtype")
        why = answer.strip() or (subtype if isinstance(subtype, str) else "") or "no reason given"
        error = f"the agent CLI reported an error: {why[:500]}"
        if record.cost_usd is not None:  # not counted anywhere else: say it here
            error += f" (the run cost {usd(record.cost_usd)})"
    main = max(models, key=lambda m: models[m].get("cost_usd", 0.0), default=None)
    return AgentOutput(answer, record, error, main)


def _codex(events: list[dict[str, Any]]) -> AgentOutput:
    answer: str | None = None
    error: str | None = None
    totals: dict[str, int | None] = {"in": None, "cached": None, "out": None}
    session = None
    for event in events:
        kind = event.get("type")
        if kind == "thread.started" and isinstance(event.get("thread_id"), str):
            session = event["thread_id"]
        elif kind == "item.completed":
            item = event.get("item")
            if isinstance(item, dict) and item.get("type") == "agent_message":
                text = item.get("text")
                if isinstance(text, str):
                    answer, error = text, None
        elif kind == "turn.completed":
            usage = event.get("usage")
            if isinstance(usage, dict):
                totals["in"] = _add(totals["in"], _count(usage.get("input_tokens")))
                totals["cached"] = _add(totals["cached"], _count(usage.get("cached_input_tokens")))
                totals["out"] = _add(totals["out"], _count(usage.get("output_tokens")))
        elif kind in ("turn.failed", "error"):
            error = f"the agent CLI reported an error: {_codex_error(event)[:500]}"
    record = Usage(
        source=CODEX,
        tokens_in=totals["in"],
        tokens_out=totals["out"],
        cached_in=totals["cached"],
        session_id=session[:128] if session and session.strip() else None,
    )
    if answer is None and error is None:
        error = "the agent CLI printed no agent_message"
    return AgentOutput(answer or "", record, error)


def _codex_error(event: dict[str, Any]) -> str:
    inner = event.get("error")
    message = inner.get("message") if isinstance(inner, dict) else event.get("message")
    return message if isinstance(message, str) and message.strip() else "no reason given"
