"""The clients of a Cluster URL: the cluster client, sync (``Cluster``: its nodes'
connections checked as every other client's) and asyncio (``AsyncCluster``), both following
a redirection to a master added since they read the layout (``get_node``), the asyncio one
sending the command an ASK redirects down the connection its ASKING went down
(``_AskedNode``); FCALL's keys read from the command, not asked of the server
(``fcall_routed``); redis-py's cluster
exceptions as the RedisErrors they stand for (``cluster_error``: no node answered,
``_NoNodeAnswered``); the retry a shell wraps around each request on a cluster
(``cluster_retry``), and the clients of single nodes (``node_client``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
import redis.asyncio
import redis.asyncio.cluster
from redis._parsers.commands import AsyncCommandsParser, CommandsParser
from redis.cluster import PRIMARY, ClusterNode, ClusterPipeline, RedisCluster
from redis.exceptions import RedisClusterException, SlotNotCoveredError

from ._config import Settings
from ._connections import alive_on_any_answer, common, made_alive_on_any_answer
from ._retries import RETRY_ON, AsyncRetry, Retry, backoff, retry
from ._translate import NoneAnswered

__all__ = [
    "CLUSTER_INSTANT_RETRIES",
    "AsyncCluster",
    "Cluster",
    "async_cluster_retry",
    "async_node_client",
    "cluster_error",
    "cluster_retry",
    "fcall_routed",
    "layout_errors_converted",
    "node_client",
]

T = TypeVar("T")


class _NoNodeAnswered(NoneAnswered):
    """redis-py's "Redis Cluster cannot be connected", as a RedisError (``cluster_error``)."""


# What a cluster request may meet while a master fails over: the dead node, then the whole
# cluster refusing (CLUSTERDOWN, cluster-require-full-coverage) until its replica is promoted.
# And while a slot moves between masters (resharding): a script whose keys are not all on one
# node is refused with TRYAGAIN until they are (until the move ends, for a script that names a
# key that does not exist yet), and redis-py follows ASK, MOVED and TRYAGAIN only 16 times,
# mostly without a pause, before it gives up with a bare ClusterError("TTL exhausted."). Each
# of these replies means the command did not run, so retrying it with backoff is safe.
# (ClusterError covers ClusterDownError too; TryAgainError and AskError, whose subclass is
# MovedError, are listed in case a redis-py version lets one escape instead of following it.)
_CLUSTER_RETRY_ON = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.ClusterError,
    redis.exceptions.SlotNotCoveredError,
    redis.exceptions.TryAgainError,
    redis.exceptions.AskError,
)
# redis-py's cluster client retries these at once, re-reading the topology each time: a few
# are enough; the pauses come from the shell-level retry (cluster_retry).
CLUSTER_INSTANT_RETRIES = 2


def _function_keys(args: tuple[Any, ...]) -> list[Any] | None:
    """The keys of an FCALL / FCALL_RO (after the function name and the number of keys);
    None for any other command."""
    if len(args) > 2 and str(args[0]).upper() in ("FCALL", "FCALL_RO"):
        return list(args[3 : 3 + int(args[2])])
    return None


class _CommandsParser(CommandsParser):
    """redis-py's cluster client asks the server (COMMAND GETKEYS, a round trip) for the
    keys of any command whose keys move, FCALL included; it knows where EVALSHA's are, and
    FCALL's are in the same place. This reads them from the command, as for EVALSHA."""

    def get_keys(self, redis_conn: Any, *args: Any) -> Any:
        keys = _function_keys(args)
        return keys if keys is not None else super().get_keys(redis_conn, *args)  # type: ignore[no-untyped-call]


class _AsyncCommandsParser(AsyncCommandsParser):
    """The asyncio twin of ``_CommandsParser``."""

    async def get_keys(self, *args: Any) -> Any:
        keys = _function_keys(args)
        return keys if keys is not None else await super().get_keys(*args)


def fcall_routed(cluster: Any) -> Any:
    """``cluster`` (a redis-py cluster client, sync or asyncio), made to read FCALL's keys
    from the command (see ``_CommandsParser``); a shell applies it to a client it is given."""
    parser = cluster.commands_parser  # the one its pipelines share, command table read
    if not isinstance(parser, _CommandsParser | _AsyncCommandsParser):
        sync = isinstance(parser, CommandsParser)
        parser.__class__ = _CommandsParser if sync else _AsyncCommandsParser
    return cluster


def cluster_error(exc: RedisClusterException) -> redis.RedisError:
    """What redis-py's cluster client raises when it cannot learn the cluster's layout (a
    RedisClusterException, which is no RedisError: nothing above would translate it): when
    it is made, at its first command (asyncio), or at a refresh after a node failed (then a
    RedisClusterUnreachableError, from the command), as the RedisError it stands for: no
    node answered (``_NoNodeAnswered``, retried as an outage is; ``translate`` names the
    nodes), a slot no node serves now (a ConnectionError: a failover under way), or a node
    that answered but is no cluster node (a ResponseError: no retry helps); credentials
    refused as they were (the error redis-py met)."""
    cause = exc.__cause__
    if isinstance(cause, redis.AuthenticationError | redis.exceptions.AuthorizationError):
        return cause
    text = str(exc)
    if isinstance(exc, SlotNotCoveredError):
        return redis.ConnectionError(text)
    if isinstance(cause, redis.ConnectionError | redis.TimeoutError | OSError) or (
        "connecting to" in text
    ):
        error = _NoNodeAnswered(text)
        error.timed_out = isinstance(cause, redis.TimeoutError | TimeoutError)
        return error
    return redis.ResponseError(text)


def layout_errors_converted(send: Callable[..., T]) -> Callable[..., T]:
    """``send`` (a sync cluster client's execute_command, or a pipeline of its commands),
    raising ``cluster_error`` of what redis-py's cluster exceptions it meets."""

    @functools.wraps(send)
    def converted(*args: Any) -> T:
        try:
            return send(*args)
        except RedisClusterException as exc:
            raise cluster_error(exc) from exc

    return converted


# redis-py follows an ASK (or a MOVED) by looking its target up by address among the nodes
# it knows (``get_node(host, port)``), and uses what it finds: a master added to the cluster
# since the client read its layout (``redis-cli --cluster add-node``) is in no CLUSTER SLOTS
# reply until it serves a slot, so the first ASK that sent a command there, while a slot
# moved to it, found None and failed the call with an AttributeError from inside redis-py
# (every handle at work died; a ``swarm run`` pool left its leases held). redis-py makes the
# target of a MOVED known itself (``NodesManager.move_slot``), not that of an ASK, which
# moves no slot. So the cluster clients here, asked by address for a node they do not know,
# make it known as a master: redis-py asks by address only to follow a redirection, which
# names a master (ASK: the importing one; MOVED: the owner) at an address it already
# remapped. A refresh of the layout drops such a node until it serves a slot; the next
# redirection there makes it known again.


class Cluster(RedisCluster):
    """The sync cluster client, whose nodes' connections (those of the URL's nodes and those
    it finds later) are checked as every other client's: each made one of
    ``AnswerMeansAlive`` as it connects, before redis-py's handshake on it, and given the
    client's ``health_check_interval``, which redis-py drops from what it hands its nodes
    (its asyncio cluster client keeps it): without it, a node's connection idle for any time
    was used without a PING. redis-py takes a class for the nodes' connections only from 8.2
    on: before, it makes each node with ``Redis(**kwargs)``, which refuses one
    (connection_class failed every node); this hook is in every version.

    It comes after a TLS connection's handshake, which the class swapped in then no longer
    bounds (``HandshakeWithinConnectTimeout``; from 8.2 on, redis-py bounds it itself):
    over TLS the nodes are given the connect timeout for ``socket_timeout``, and each
    connection gets the client's own here, before it sends anything."""

    def __init__(self, *args: Any, health_check_interval: int = 0, **kwargs: Any) -> None:
        self._health_check_interval = health_check_interval
        self._socket_timeout = kwargs.get("socket_timeout")
        if kwargs.get("ssl"):
            kwargs["socket_timeout"] = kwargs.get("socket_connect_timeout")
        super().__init__(*args, **kwargs)

    def on_connect(self, connection: Any) -> None:
        made_alive_on_any_answer(connection)
        connection.health_check_interval = self._health_check_interval
        # (redis-py has read the connection's handshake already, before this hook: it counts
        # as checked now, as on every other client, not PINGed before its first command)
        connection.next_health_check = time.monotonic() + self._health_check_interval
        if connection.socket_timeout != self._socket_timeout:  # its first connect, over TLS
            connection.socket_timeout = self._socket_timeout
            connection._sock.settimeout(self._socket_timeout)
        super().on_connect(connection)  # type: ignore[no-untyped-call]

    def get_node(
        self, host: str | None = None, port: int | None = None, node_name: str | None = None
    ) -> Any:
        """The node at ``host``:``port`` (or named ``node_name``); at an address the layout
        does not list, a master the cluster added since (see above ``Cluster``)."""
        return _known_node(self.nodes_manager, host, port, node_name)

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> Any:
        """redis-py's cluster pipeline, which follows a redirection with its own ``get_node``
        (its commands go through it, not through this client): made to know an added master
        the same way (``_KnowingPipeline``)."""
        pipe = super().pipeline(transaction, shard_hint)  # type: ignore[no-untyped-call]
        if type(pipe) is ClusterPipeline:
            pipe.__class__ = _KnowingPipeline
        return pipe


class _KnowingPipeline(ClusterPipeline):
    """A ``Cluster``'s pipeline, asked by address for a node the layout does not list: a
    master the cluster added since, as ``Cluster.get_node`` makes it known (its ASK, followed
    in the pipeline, found None and failed the batch with an AttributeError from inside
    redis-py, while the swarm's slot moved to a new master)."""

    def get_node(
        self, host: str | None = None, port: int | None = None, node_name: str | None = None
    ) -> Any:
        return _known_node(self.nodes_manager, host, port, node_name)


def _known_node(manager: Any, host: str | None, port: int | None, node_name: str | None) -> Any:
    """The node of ``manager`` (a sync cluster client's) at ``host``:``port`` (or named
    ``node_name``), made known as a master when the layout lists none there (see above
    ``Cluster``)."""
    node = manager.get_node(host, port, node_name)
    if node is None and host and port:
        made = ClusterNode(host, port, PRIMARY)  # type: ignore[no-untyped-call]
        # (another thread may have made it meanwhile: the first one made is kept)
        node = manager.nodes_cache.setdefault(made.name, made)
    return node


class AsyncCluster(redis.asyncio.cluster.RedisCluster):
    """The asyncio cluster client, which learns the layout at its first command (the sync one
    at construction, see ``_connect._cluster``): a failure to do so raised as ``cluster_error``, as
    is one of a later refresh that a command meets."""

    async def initialize(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().initialize(*args, **kwargs)
        except RedisClusterException as exc:
            raise cluster_error(exc) from exc

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except RedisClusterException as exc:
            raise cluster_error(exc) from exc

    def get_node(
        self, host: str | None = None, port: int | None = None, node_name: str | None = None
    ) -> Any:
        """The asyncio twin of ``Cluster.get_node``: a node made as redis-py makes the target
        of a MOVED (``NodesManager.move_slot``), with the client's connection options."""
        node = super().get_node(host, port, node_name)
        if node is None and host and port:
            manager = self.nodes_manager
            made = redis.asyncio.cluster.ClusterNode(
                host, port, PRIMARY, **manager.connection_kwargs
            )
            manager.set_nodes(manager.nodes_cache, {made.name: made})
            node = made
        if type(node) is redis.asyncio.cluster.ClusterNode:
            node.__class__ = _AskedNode  # (an ASK's target among others: see there)
        return node


class _AskedNode(redis.asyncio.cluster.ClusterNode):
    """An asyncio cluster node that hands out the connection freed last first. redis-py's
    asyncio client follows an ASK by sending ASKING down a connection it takes from the
    node and frees, then the command down one it takes again: from its free list, first in
    first out, that was another connection whenever the node held two or more free, which
    answered MOVED (the slot is not the node's yet, without ASKING), back to the migrating
    master, which answered ASK again, until redis-py gave up ("TTL exhausted"): with two
    free, every ASK failed so, and a slot's move failed an AsyncSwarm's commands on a key
    already moved. Taken last in first out, the command goes down the ASKING's connection:
    nothing runs between the two."""

    __slots__ = ()

    def acquire_connection(self) -> Any:
        free = self._free
        return free.pop() if free else super().acquire_connection()


def cluster_retry(settings: Settings) -> Retry:
    """The retry a shell wraps around each request on a cluster (backoff, settings.retries)."""
    return retry(Retry, settings, settings.retries, _CLUSTER_RETRY_ON)


def async_cluster_retry(settings: Settings) -> AsyncRetry:
    return retry(AsyncRetry, settings, settings.retries, _CLUSTER_RETRY_ON)


def node_client(settings: Settings, host: str, port: int) -> redis.Redis:
    """A client of one node of a cluster (the same credentials and TLS as the cluster
    client) that makes a single attempt: the shell's cluster_retry is the one that retries."""
    client = redis.Redis(
        host=host,
        port=port,
        retry=Retry(backoff(), 0, supported_errors=tuple(RETRY_ON)),
        **common(settings),
    )
    alive_on_any_answer(client.connection_pool)
    return client


def async_node_client(settings: Settings, host: str, port: int) -> redis.asyncio.Redis:
    """The asyncio twin of ``node_client``."""
    client = redis.asyncio.Redis(
        host=host,
        port=port,
        retry=AsyncRetry(backoff(), 0, supported_errors=tuple(RETRY_ON)),
        **common(settings),
    )
    alive_on_any_answer(client.connection_pool)
    return client
