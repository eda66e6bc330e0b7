"""``swarm a2a``: the swarm as an Agent2Agent (A2A 1.0) server, on the official SDK's routes.

Any A2A client (Google ADK's ``RemoteA2aAgent``, CrewAI, the SDKs' clients) can hand work
to the swarm: a message becomes a task of a queue (the skill), a worker claims it and
reports a finding, and the client sees the task go submitted -> working -> completed with
the finding as its artifact, by polling, streaming or push notifications. See docs/a2a.md.

Needs the ``a2a`` extra (``pip install 'redis-swarm[a2a]'``).
"""

from __future__ import annotations

from .._extras import extra_missing

try:
    from ._handler import SwarmRequestHandler
    from ._states import STATE_OF
    from .app import create_app
except ModuleNotFoundError as exc:  # a module of the extra (a2a-sdk, ...) is not installed
    said = extra_missing(exc, "redis_swarm.a2a_server", "a2a")
    if said is None:
        raise
    raise said from exc

__all__ = ["STATE_OF", "SwarmRequestHandler", "create_app"]
