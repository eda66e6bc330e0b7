"""``durability="strict"`` on a Redis Cluster: the writes to each master wait for its replica.

WAIT counts the writes of the connection it arrives on and names no key. redis-py's cluster
client cannot carry it: it would route WAIT to some node of its choosing, and it follows
MOVED/ASK by resending a command on another connection, behind the WAIT's back. So here the
items of a request are grouped by the master serving their slot (a request's keys share one
hash tag, but a context's chunks spread over slots), each group goes down one connection to
its master followed by ``WAIT 1 T``, and redirections are followed by hand:

- MOVED: the slot has a new owner (a failover, a finished migration): the topology is read
  again and the item sent to the owner, with its own WAIT;
- ASK: the slot is being migrated and the item's keys are on the importing node: the item is
  sent there after ASKING, and the WAIT follows it on that connection;
- the node lacks the function library or the script (a new master, a restart; see
  ``_transport``): it is loaded there, the item sent again (it did not run).

Anything else (TRYAGAIN, a dead node, CLUSTERDOWN) is raised to the shell, whose cluster
retry sends the request again after a pause; operations are idempotent, so items already
applied and confirmed do no harm when they run again. A dead node also marks the topology
stale, so the next attempt reads it again before routing.

The routing is written once, as an I/O-free generator (``exchange``) that yields the steps
(send a pipeline to a node, load a script there, re-read the topology) and receives their
results, driven by a sync and an asyncio sender (``_protocol.drive``), as the operations
are by the two shells.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
from redis.cluster import RedisCluster

from ._cluster import async_node_client, node_client
from ._config import Settings
from ._durability import REPLICA_PROBE, Plan, cluster_plan, not_durable, waited_ok
from ._protocol import Batch, Call, Cmd, Request, adrive, drive, items_of, raise_first
from ._transport import Load, Scripting, load

__all__ = ["AsyncStrictClusterSender", "StrictClusterSender"]

# Redirections followed for one request before giving up to the shell's retry (a slot moves
# at most a hop or two at a time; more means the topology is changing under us: pause).
MAX_HOPS = 5

Address = tuple[str, int]


@dataclass(frozen=True)
class Target:
    """Where an item goes: a master, and whether it must be preceded by ASKING."""

    host: str
    port: int
    asking: bool = False

    @property
    def address(self) -> Address:
        return (self.host, self.port)


@dataclass
class Round:
    """What one round of sends left to do."""

    redo: dict[int, Target | None] = field(default_factory=dict)  # None: its slot's owner
    load: dict[Address, dict[Any, Load]] = field(default_factory=dict)  # loads, per node
    refresh: bool = False  # a MOVED was seen: read the topology again


def key_of(item: Cmd | Call) -> Any:
    """The key that routes an item (a script's keys share one slot; a write command's key
    comes first)."""
    return item.keys[0] if isinstance(item, Call) else item.args[1]


def commands(
    items: list[Cmd | Call],
    target: Target,
    plan: Plan,
    scripting: Scripting,
) -> list[tuple[Any, ...]]:
    """The pipeline of one group: each item (after ASKING when migrating), then the wait."""
    assert plan.command is not None
    out: list[tuple[Any, ...]] = []
    for item in items:
        if target.asking:
            out.append(("ASKING",))
        out.append(scripting.wire(item))
    out.append(plan.command)
    return out


def sort_replies(
    positions: list[int],
    items: tuple[Cmd | Call, ...],
    raw: list[Any],
    target: Target,
    plan: Plan,
    where: str,
    replies: list[Any],
    todo: Round,
    scripting: Scripting,
) -> None:
    """File one group's replies: final ones into ``replies``, redirected items into ``todo``.
    Raises ConnectionFailed when the wait did not confirm the writes that were applied."""
    *own, waited = raw
    if target.asking:
        own = own[1::2]  # drop ASKING's OK
    applied = False
    for position, reply in zip(positions, own, strict=True):
        verdict = scripting.retry(items[position], reply)
        if verdict != "done":
            if isinstance(verdict, Load):
                todo.load.setdefault(target.address, {})[verdict.commands] = verdict
            todo.redo[position] = target
        elif isinstance(reply, redis.exceptions.MovedError):  # (a subclass of AskError)
            todo.refresh = True
            todo.redo[position] = None
        elif isinstance(reply, redis.exceptions.AskError):
            todo.redo[position] = Target(str(reply.host), int(reply.port), asking=True)
        else:
            replies[position] = reply
            applied = applied or not isinstance(reply, Exception)
    if applied and not waited_ok(plan, waited):
        raise not_durable(plan, where)


def owner(node: Any) -> Target:
    """The target of a slot's master, as the client's topology knows it."""
    if node is None:  # no master serves the slot now (a failover in progress): pause
        raise redis.exceptions.SlotNotCoveredError("no master serves this slot yet")
    return Target(str(node.host), int(node.port))


def group(targets: dict[int, Target]) -> dict[Target, list[int]]:
    out: dict[Target, list[int]] = {}
    for position, target in targets.items():
        out.setdefault(target, []).append(position)
    return out


def too_many_hops(where: str) -> redis.exceptions.TryAgainError:
    return redis.exceptions.TryAgainError(
        f"the slots of this request kept moving at {where} ({MAX_HOPS} redirections): "
        "it is sent again after a pause"
    )


@dataclass(frozen=True)
class SendTo:
    """Send these commands down one connection to this node; the replies come back."""

    target: Target
    commands: list[tuple[Any, ...]]


@dataclass(frozen=True)
class LoadAt:
    """Load the library (or scripts) on this node."""

    address: Address
    load: Load


@dataclass(frozen=True)
class ReadTopology:
    """Read the cluster's slot map again (a MOVED was seen)."""


Step = SendTo | LoadAt | ReadTopology


def exchange(
    request: Request,
    plan: Plan,
    route: Callable[[Cmd | Call], Target],
    scripting: Scripting,
    where: str,
) -> Generator[Step, Any, Any]:
    """The steps of one strict request on a cluster; returns what a pipeline would (the
    reply, or every reply of a Batch) or raises its first error."""
    items = items_of(request)
    replies: list[Any] = [None] * len(items)
    pending: dict[int, Target | None] = dict.fromkeys(range(len(items)))
    for _ in range(MAX_HOPS):
        targets = {i: t if t is not None else route(items[i]) for i, t in pending.items()}
        todo = Round()
        for target, positions in group(targets).items():
            batch = [items[i] for i in positions]
            raw = yield SendTo(target, commands(batch, target, plan, scripting))
            sort_replies(positions, items, raw, target, plan, where, replies, todo, scripting)
        for address, loads in todo.load.items():
            for what in loads.values():
                yield from load(LoadAt(address, what), what, where)
        if todo.refresh:
            yield ReadTopology()
        if not todo.redo:
            raise_first(replies, items)
            return replies if isinstance(request, Batch) else replies[0]
        pending = todo.redo
    raise too_many_hops(where)


class StrictClusterSender:
    """Sends a strict handle's writes on a cluster (see the module docstring)."""

    def __init__(self, cluster: RedisCluster, settings: Settings, scripting: Scripting) -> None:
        self._cluster = cluster
        self._settings = settings
        self._scripting = scripting
        self._nodes: dict[Address, redis.Redis] = {}
        self._stale = False

    def _owner(self, item: Cmd | Call) -> Target:
        return owner(self._cluster.get_node_from_key(key_of(item)))  # type: ignore[no-untyped-call]

    def _node(self, address: Address) -> redis.Redis:
        client = self._nodes.get(address)
        if client is None:
            client = self._nodes[address] = node_client(self._settings, *address)
        return client

    def plan(self) -> Plan:
        """WAIT on each master written, once every master is seen to have a replica (by its
        INFO, or for a user that may not read it by ``REPLICA_PROBE``, as on one server)."""
        masters = {}
        for node in self._cluster.get_primaries():  # type: ignore[no-untyped-call]
            address = (str(node.host), int(node.port))
            client = self._node(address)
            try:
                masters[f"{address[0]}:{address[1]}"] = client.info("replication")
            except redis.exceptions.NoPermissionError:  # a worker: asked around INFO
                replicas = client.execute_command(*REPLICA_PROBE)  # type: ignore[no-untyped-call]
                masters[f"{address[0]}:{address[1]}"] = {"connected_slaves": int(replicas)}
        return cluster_plan(masters, self._settings.url)

    def send(self, request: Request, plan: Plan) -> Any:
        if self._stale:
            self._cluster.nodes_manager.initialize()
            self._stale = False
        steps = exchange(request, plan, self._owner, self._scripting, self._settings.url)
        return drive(steps, self._do, (redis.ResponseError,))

    def _do(self, step: Step) -> Any:
        if isinstance(step, SendTo):
            pipe = self._node(step.target.address).pipeline(transaction=False)
            for command in step.commands:
                pipe.execute_command(*command)  # type: ignore[no-untyped-call]
            try:
                return pipe.execute(raise_on_error=False)
            except (redis.ConnectionError, redis.TimeoutError):
                self._stale = True  # a master died: route by a fresh topology next time
                raise
        if isinstance(step, LoadAt):
            for command in step.load.commands:
                self._node(step.address).execute_command(*command)  # type: ignore[no-untyped-call]
            return None
        return self._cluster.nodes_manager.initialize()

    def close(self) -> None:
        for client in self._nodes.values():
            client.close()
        self._nodes.clear()


class AsyncStrictClusterSender:
    """The asyncio twin of ``StrictClusterSender``."""

    def __init__(
        self,
        cluster: redis.asyncio.cluster.RedisCluster,
        settings: Settings,
        scripting: Scripting,
    ) -> None:
        self._cluster = cluster
        self._settings = settings
        self._scripting = scripting
        self._nodes: dict[Address, redis.asyncio.Redis] = {}
        self._stale = False

    def _owner(self, item: Cmd | Call) -> Target:
        return owner(self._cluster.get_node_from_key(key_of(item)))

    def _node(self, address: Address) -> redis.asyncio.Redis:
        client = self._nodes.get(address)
        if client is None:
            client = self._nodes[address] = async_node_client(self._settings, *address)
        return client

    async def plan(self) -> Plan:
        """The asyncio twin of ``StrictClusterSender.plan``."""
        await self._cluster.initialize()  # the asyncio client reads the topology lazily
        masters = {}
        for node in self._cluster.get_primaries():
            address = (str(node.host), int(node.port))
            client = self._node(address)
            try:
                masters[f"{address[0]}:{address[1]}"] = await client.info("replication")
            except redis.exceptions.NoPermissionError:  # (see StrictClusterSender.plan)
                replicas = await client.execute_command(*REPLICA_PROBE)  # type: ignore[no-untyped-call]
                masters[f"{address[0]}:{address[1]}"] = {"connected_slaves": int(replicas)}
        return cluster_plan(masters, self._settings.url)

    async def send(self, request: Request, plan: Plan) -> Any:
        if self._stale:
            await self._cluster.nodes_manager.initialize()
            self._stale = False
        steps = exchange(request, plan, self._owner, self._scripting, self._settings.url)
        return await adrive(steps, self._do, (redis.ResponseError,))

    async def _do(self, step: Step) -> Any:
        if isinstance(step, SendTo):
            pipe = self._node(step.target.address).pipeline(transaction=False)
            for command in step.commands:
                pipe.execute_command(*command)
            try:
                return await pipe.execute(raise_on_error=False)
            except (redis.ConnectionError, redis.TimeoutError):
                self._stale = True
                raise
        if isinstance(step, LoadAt):
            for command in step.load.commands:
                await self._node(step.address).execute_command(*command)  # type: ignore[no-untyped-call]
            return None
        return await self._cluster.nodes_manager.initialize()

    async def aclose(self) -> None:
        for client in self._nodes.values():
            await client.aclose()
        self._nodes.clear()
