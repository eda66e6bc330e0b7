"""A TCP proxy that makes a loopback server look far away: latency and bandwidth on demand.

``LatencyProxy(port, delay_s=0.05)`` listens on a free loopback port and forwards every
connection to ``127.0.0.1:port``. Each chunk of bytes is delivered ``delay_s`` after it
arrived, in each direction (so a round trip costs ``2 * delay_s``, and pipelined requests share
one), then held back further by ``bandwidth`` (bytes per second, per direction) if given. It
counts bytes, chunks and *exchanges* (a client chunk that follows a server reply: a round
trip), so tests can assert how many round trips an operation takes and how many bytes a
compressed context saves on a slow link. ``cut()`` drops every open connection (a network
failure); the listener stays up, so clients can reconnect.

Threads, not asyncio, so that it serves sync and async clients alike from any test.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

_CHUNK = 65536


@dataclass
class ProxyStats:
    bytes_up: int = 0  # client -> server
    bytes_down: int = 0  # server -> client
    chunks_up: int = 0
    chunks_down: int = 0
    exchanges: int = 0  # client chunks sent after a server reply (or first): round trips
    connections: int = 0


class _Link:
    """One connection: a client socket and its upstream socket, two delayed pipes."""

    def __init__(self, proxy: LatencyProxy, client: socket.socket, upstream: socket.socket):
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.last_up = False  # direction of the previous chunk (an exchange starts after down)
        self.threads = [
            threading.Thread(target=self._read, args=(client, True), daemon=True),
            threading.Thread(target=self._read, args=(upstream, False), daemon=True),
        ]
        self.queues: dict[bool, queue.Queue[tuple[float, bytes] | None]] = {
            True: queue.Queue(),
            False: queue.Queue(),
        }
        self.threads += [
            threading.Thread(target=self._write, args=(upstream, True), daemon=True),
            threading.Thread(target=self._write, args=(client, False), daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def _read(self, source: socket.socket, up: bool) -> None:
        try:
            while True:
                data = source.recv(_CHUNK)
                if not data:
                    break
                self.proxy._count(self, up, len(data))
                self.queues[up].put((time.monotonic(), data))
        except OSError:
            pass
        self.queues[up].put(None)

    def _write(self, target: socket.socket, up: bool) -> None:
        free_at = 0.0  # when the (bandwidth-limited) link is free again
        try:
            while True:
                item = self.queues[up].get()
                if item is None:
                    with contextlib.suppress(OSError):
                        target.shutdown(socket.SHUT_WR)
                    return
                arrived, data = item
                ready = arrived + self.proxy.delay_s
                bandwidth = self.proxy.bandwidth
                if bandwidth:
                    start = max(ready, free_at)
                    free_at = ready = start + len(data) / bandwidth
                pause = ready - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                target.sendall(data)
        except OSError:
            self.close()

    def close(self) -> None:
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


class LatencyProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target`` with added delay and limited bandwidth."""

    def __init__(
        self,
        target_port: int,
        *,
        target_host: str = "127.0.0.1",
        delay_s: float = 0.0,
        bandwidth: float | None = None,
    ) -> None:
        self.target = (target_host, target_port)
        self.delay_s = delay_s
        self.bandwidth = bandwidth
        self.stats = ProxyStats()
        self._lock = threading.Lock()
        self._links: list[_Link] = []
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.stats.connections += 1
                self._links.append(_Link(self, client, upstream))

    def _count(self, link: _Link, up: bool, size: int) -> None:
        with self._lock:
            if up:
                self.stats.bytes_up += size
                self.stats.chunks_up += 1
                if not link.last_up:
                    self.stats.exchanges += 1
            else:
                self.stats.bytes_down += size
                self.stats.chunks_down += 1
            link.last_up = up

    def reset_stats(self) -> ProxyStats:
        """Zero the counters; returns what they were."""
        with self._lock:
            old, self.stats = self.stats, ProxyStats()
            return old

    def cut(self) -> None:
        """Drop every open connection, as a network failure would."""
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            link.close()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (Linux)
        with contextlib.suppress(OSError):
            self._listener.close()
        self._thread.join(5)
        self.cut()

    def __enter__(self) -> LatencyProxy:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
