"""The agent card: who this agent is, its skills (one per exposed queue), how to reach it.

A skill's description is the one given to ``swarm a2a --describe``, else the queue's own
(``configure_queue(q, description=...)``, read at each request so a change shows at once),
else a generic one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    HTTPAuthSecurityScheme,
    SecurityRequirement,
    SecurityScheme,
    StringList,
)
from a2a.utils.constants import PROTOCOL_VERSION_CURRENT, TransportProtocol

from .. import __version__
from .._client import AsyncSwarm
from .._errors import SwarmError
from ._convert import SKILL_KEY
from ._gate import Busy

__all__ = ["BEARER", "MODES", "agent_card", "default_description", "queue_descriptions"]

BEARER = "bearer"
MODES = ["text/plain", "application/json"]


def default_description(queue: str) -> str:
    return (
        f"Work for the swarm's queue {queue}: a worker claims the task, does it, and reports "
        "a finding (its summary as text, the whole finding as data)."
    )


def agent_card(
    *,
    name: str,
    base_url: str,
    queues: Sequence[str],
    descriptions: Mapping[str, str],
    token: bool,
) -> AgentCard:
    """The card of a swarm that serves ``queues`` at ``base_url`` (both bindings there)."""
    skills = [
        AgentSkill(
            id=queue,
            name=queue,
            description=descriptions.get(queue) or default_description(queue),
            tags=["redis-swarm", queue],
            input_modes=MODES,
            output_modes=MODES,
        )
        for queue in queues
    ]
    card = AgentCard(
        name=name,
        description=(
            "A redis-swarm: each message becomes a task in a queue (the skill), leased to a "
            "worker that reports a finding; no task is lost when a worker dies. "
            f"Pick a skill with the message metadata {SKILL_KEY!r} (default: {queues[0]})."
        ),
        supported_interfaces=[
            AgentInterface(
                url=base_url,
                protocol_binding=binding.value,
                protocol_version=PROTOCOL_VERSION_CURRENT,
            )
            for binding in (TransportProtocol.JSONRPC, TransportProtocol.HTTP_JSON)
        ],
        version=__version__,
        capabilities=AgentCapabilities(streaming=True, push_notifications=True),
        default_input_modes=MODES,
        default_output_modes=MODES,
        skills=skills,
    )
    if token:
        card.security_schemes[BEARER].CopyFrom(
            SecurityScheme(
                http_auth_security_scheme=HTTPAuthSecurityScheme(
                    scheme="Bearer", description="the token `swarm a2a` was started with"
                )
            )
        )
        card.security_requirements.append(SecurityRequirement(schemes={BEARER: StringList()}))
    return card


def queue_descriptions(
    swarm: AsyncSwarm, given: Mapping[str, str]
) -> Callable[[AgentCard], Awaitable[AgentCard]]:
    """A card modifier: the card with each skill not ``given`` a description described by
    its queue's settings, where they have one."""

    async def described(card: AgentCard) -> AgentCard:
        out = AgentCard()
        out.CopyFrom(card)
        for skill in out.skills:
            if skill.id in given:
                continue
            try:
                settings = await swarm.configure_queue(skill.id)
            except (SwarmError, Busy):
                continue  # the card still answers, with the description it had
            if "description" in settings:
                skill.description = settings["description"]
        return out

    return described
