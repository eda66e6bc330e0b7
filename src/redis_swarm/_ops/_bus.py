"""Helpers shared by the agent, message and event operations: ids, time, stream entries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._errors import ValidationError
from .._protocol import OpContext
from ._work import encode_json, new_id, text

__all__ = ["check_data", "new_id", "now_from", "text"]


def now_from(ctx: OpContext, server_time: Any) -> int:
    """Now in ms: the test clock when there is one, else the server's TIME reply."""
    if ctx.clock is not None:
        return ctx.clock()
    seconds, micros = server_time
    return int(seconds) * 1000 + int(micros) // 1000


def check_data(kind: str, data: object, limit: int) -> str:
    """JSON of a mapping given by a caller, bounded in size; '' for None."""
    if data is None:
        return ""
    if not isinstance(data, Mapping):
        raise ValidationError(
            f"{kind} must be a mapping (a JSON object), not {type(data).__name__}"
        )
    return encode_json(dict(data), kind, limit)
