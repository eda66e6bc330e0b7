"""A sync cluster client's pipeline follows a redirection with redis-py's own ``get_node``
(not the client's): asked by address for a master the cluster added since the client read
its layout (the target of an ASK while the swarm's slot moves to it), it found None, and the
batch failed with an AttributeError from inside redis-py (``'NoneType' object has no
attribute 'redis_connection'``: seen in CI, tests/test_cluster_new_master.py). The pipeline
makes such a node known as a master, as the client does."""

from __future__ import annotations

from typing import Any

from redis_swarm._config import Settings
from redis_swarm._connect import sync_client

from ._servers import free_port


def test_a_pipeline_knows_a_master_added_since_as_its_client_does(cluster_url: str) -> None:
    client: Any = sync_client(Settings.from_url(cluster_url))  # (a cluster's: redis-py's API)
    try:
        port = free_port()  # (an address the layout does not list)
        pipe = client.pipeline()
        by_pipeline = pipe.get_node("127.0.0.1", port)
        assert by_pipeline is not None and by_pipeline.server_type == "primary"
        assert client.get_node("127.0.0.1", port) is by_pipeline  # one node, the first made
        known = next(iter(client.get_nodes()))
        assert pipe.get_node(known.host, known.port) is known  # (a listed one, as it is)
    finally:
        client.close()
