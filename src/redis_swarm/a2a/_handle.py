"""The swarm handle a store works through: one given, or one made from a URL or Settings."""

from __future__ import annotations

from .. import AsyncSwarm, Settings, Swarm

Target = AsyncSwarm | Settings | str | None


class SwarmBacked:
    """What the stores share: their ``AsyncSwarm``, closed by ``aclose`` when they made it."""

    def __init__(self, target: Target, swarm: str | None) -> None:
        if isinstance(target, Swarm):
            raise TypeError(
                "the a2a-sdk stores are asynchronous: give them an AsyncSwarm (or a URL), "
                "not a Swarm"
            )
        if isinstance(target, AsyncSwarm):
            if swarm is not None:
                raise ValueError("name the swarm when making the AsyncSwarm, not here")
            self._swarm, self._owned = target, False
        else:
            self._swarm, self._owned = AsyncSwarm(target, swarm=swarm), True

    @property
    def swarm(self) -> AsyncSwarm:
        """The handle this store works through."""
        return self._swarm

    async def aclose(self) -> None:
        """Close the handle if this store made it (one it was given stays open)."""
        if self._owned:
            await self._swarm.aclose()
