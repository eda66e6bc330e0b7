"""A sync ``Swarm`` whose operations show each request to ``seen`` before it is sent (to
count round trips, or to act between a read and the write behind it), as the shell drives
them otherwise."""

from __future__ import annotations

from typing import Any

from redis_swarm import Swarm
from redis_swarm._protocol import Operation


class Spying(Swarm):
    def seen(self, request: Any) -> None:
        """Called with each request an operation yields (a Call, Cmd, Batch, Compute...)."""

    def _run(self, op: Operation[Any]) -> Any:
        return super()._run(self._spied(op))

    def _spied(self, op: Operation[Any]) -> Operation[Any]:
        reply: Any = None
        error: BaseException | None = None
        while True:
            try:
                request = op.throw(error) if error is not None else op.send(reply)
            except StopIteration as stop:
                return stop.value
            error = None
            self.seen(request)
            try:
                reply = yield request
            except BaseException as exc:  # handed to the operation, as the shell does
                error = exc
