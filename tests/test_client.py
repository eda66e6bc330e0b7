from __future__ import annotations

from types import ModuleType

import pytest

import redis_swarm
from redis_swarm import (
    ConnectionFailed,
    Limits,
    Swarm,
    _client,
    _context_records,
    _errors,
    _models,
    _topology,
    _usage,
    roles,
)


def test_public_exports_are_pinned() -> None:
    """The package exports every error, every record a caller meets, the two shells, the
    seed's classes and their settings, the operations that work on a deployment rather than
    a swarm (its topology, a role's user made on it or revoked) and nothing else: the list
    comes from the modules that define them, so a new record or error is exported or this
    fails."""
    records = {
        name
        for module in (_models, _usage, _context_records)
        for name in module.__all__
        if isinstance(getattr(module, name), type)
    }
    expected = set(_errors.__all__) | records | set(_client.__all__) | set(roles.__all__)
    expected |= set(_topology.__all__) | {"AppliedRole", "apply_role", "RevokedUser", "revoke_user"}
    expected |= {"ContextCache", "Limits", "MAX_PAGE", "Settings", "__version__"}
    # The results of operations defined beside them (doctor's checks, shard_stats).
    expected |= {"CounterCheck", "Recounted", "ServerInfo", "ShardStats"}
    expected |= {"CancelledTasks", "RequeuedTasks"}  # (the bulk cancel and requeue's)
    assert set(redis_swarm.__all__) == expected
    bound = {  # dir(): the names bound and those bound on first use (the package's __getattr__)
        name
        for name in dir(redis_swarm)
        if not name.startswith("_") and not isinstance(getattr(redis_swarm, name), ModuleType)
    } - {"annotations"}  # the __future__ import
    assert bound | {"__version__"} == expected, "bind exactly what __all__ lists"


def test_ping_and_info_on_both_shells(swarm: Swarm) -> None:
    assert swarm.ping() >= 0
    info = swarm.server_info()
    assert info.version.split(".")[0].isdigit()
    assert info.server_time_ms > 1_700_000_000_000


def test_limits_and_keys_are_public(swarm: Swarm) -> None:
    assert swarm.limits == Limits()
    assert swarm.keys.prefix == "rs:{test}:" and swarm.name == "test"


def test_unreachable_server_is_one_clear_error() -> None:
    with Swarm("redis://127.0.0.1:1", swarm="x") as swarm, pytest.raises(ConnectionFailed) as info:
        swarm.ping()
    assert "127.0.0.1:1" in str(info.value)


def test_non_redis_port_is_a_clear_error() -> None:
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def serve() -> None:
        # Answer every connection (the client retries) like a web server would.
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(1024)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    swarm = Swarm(f"redis://127.0.0.1:{port}", swarm="x")
    swarm.settings  # noqa: B018
    with pytest.raises(ConnectionFailed):
        swarm.ping()
    listener.close()


def test_repr_masks_password() -> None:
    swarm = Swarm("redis://u:hunter2@127.0.0.1:1", swarm="x")
    assert "hunter2" not in repr(swarm)
    assert "hunter2" not in repr(swarm.settings)
