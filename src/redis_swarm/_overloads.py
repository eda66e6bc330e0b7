"""The shell methods whose result type depends on an argument, for the type checker only:
``claim`` gives a task (or None), or with ``n`` a list of tasks; ``report`` and ``answer``
give a finding, or with ``claim_next`` the finding and the next task (or None).

The shells make every other method from its operation's own signature (``_Op``); these
Protocols spell out the overloads instead, once for both shells: ``One`` and ``Many`` are the
two results, as they are (``Swarm``) or awaited (``AsyncSwarm``). The operation in ``_ops``
stays the one implementation: tests/test_overloads.py checks that each Protocol names its
parameters.
"""

from __future__ import annotations

from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, Protocol, TypeVar, overload

from ._models import Finding, Task
from ._usage import Usage

__all__ = [
    "AnswerReport",
    "AsyncAnswer",
    "AsyncClaim",
    "AsyncReport",
    "Claim",
    "Report",
    "SyncAnswer",
    "SyncClaim",
    "SyncReport",
]

One = TypeVar("One", covariant=True)
Many = TypeVar("Many", covariant=True)


class Claim(Protocol[One, Many]):
    """``claim``: one task (or None), or with ``n`` a list of tasks."""

    @overload
    def __call__(
        self,
        queues: str | Sequence[str],
        *,
        worker: str,
        lease_s: float | None = None,
        wait_s: float = 0.0,
        n: None = None,
    ) -> One: ...
    @overload
    def __call__(
        self,
        queues: str | Sequence[str],
        *,
        worker: str,
        lease_s: float | None = None,
        wait_s: float = 0.0,
        n: int,
    ) -> Many: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...  # (the overloads' anchor)


SyncClaim = Claim[Task | None, list[Task]]
AsyncClaim = Claim[Coroutine[Any, Any, Task | None], Coroutine[Any, Any, list[Task]]]


class Report(Protocol[One, Many]):
    """``report``: the finding, or with ``claim_next`` the finding and the next task."""

    @overload
    def __call__(
        self,
        task_id: str,
        token: str | None,
        finding: Mapping[str, Any],
        *,
        worker: str | None = None,
        model: str | None = None,
        context_version: str | None = None,
        finding_id: str | None = None,
        usage: Usage | None = None,
        claim_next: None = None,
        next_lease_s: float | None = None,
        wait_s: float = 0.0,
    ) -> One: ...
    @overload
    def __call__(
        self,
        task_id: str,
        token: str | None,
        finding: Mapping[str, Any],
        *,
        worker: str | None = None,
        model: str | None = None,
        context_version: str | None = None,
        finding_id: str | None = None,
        usage: Usage | None = None,
        claim_next: str | Sequence[str],
        next_lease_s: float | None = None,
        wait_s: float = 0.0,
    ) -> Many: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...  # (the overloads' anchor)


SyncReport = Report[Finding, tuple[Finding, Task | None]]
AsyncReport = Report[Coroutine[Any, Any, Finding], Coroutine[Any, Any, tuple[Finding, Task | None]]]


class AnswerReport(Protocol[One, Many]):
    """``answer``: the finding, or with ``claim_next`` the finding and the next question."""

    @overload
    def __call__(
        self,
        question: str | Task,
        token: str | None,
        text: str,
        *,
        worker: str | None = None,
        model: str | None = None,
        context_version: str | None = None,
        sources: Sequence[str] = (),
        extra: Mapping[str, Any] | None = None,
        finding_id: str | None = None,
        usage: Usage | None = None,
        claim_next: None = None,
        next_lease_s: float | None = None,
        wait_s: float = 0.0,
    ) -> One: ...
    @overload
    def __call__(
        self,
        question: str | Task,
        token: str | None,
        text: str,
        *,
        worker: str | None = None,
        model: str | None = None,
        context_version: str | None = None,
        sources: Sequence[str] = (),
        extra: Mapping[str, Any] | None = None,
        finding_id: str | None = None,
        usage: Usage | None = None,
        claim_next: str | Sequence[str],
        next_lease_s: float | None = None,
        wait_s: float = 0.0,
    ) -> Many: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...  # (the overloads' anchor)


SyncAnswer = AnswerReport[Finding, tuple[Finding, Task | None]]
AsyncAnswer = AnswerReport[
    Coroutine[Any, Any, Finding], Coroutine[Any, Any, tuple[Finding, Task | None]]
]
