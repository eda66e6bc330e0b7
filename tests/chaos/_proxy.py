"""A TCP proxy in front of a Redis server that loses replies on request.

``drop_reply(marker)`` arms it: the next request whose bytes contain ``marker`` is forwarded
to the server as usual, the server runs it, and when the reply comes back the proxy closes
both sides instead of passing it on. The client sees its connection die after sending a
request, exactly as when a network drops a reply; redis-py then reconnects and sends the
request again. A proxy also counts the requests that carried a marker (to check a retry
happened) and can be used to measure nothing else: it is deliberately small.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from collections import Counter

__all__ = ["DropProxy"]


class DropProxy:
    """Listens on 127.0.0.1 (a free port) and relays to ``upstream_port``."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._armed: Counter[bytes] = Counter()  # marker -> replies still to drop
        self._skips: dict[bytes, int] = {}  # marker -> reply chunks passed on before the drop
        self.seen: Counter[bytes] = Counter()  # marker -> requests that carried it
        self.dropped = 0
        self._closing = False
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def drop_reply(self, marker: bytes, times: int = 1, skip: int = 0) -> None:
        """Lose the reply of the next ``times`` requests that contain ``marker``: the reply
        chunks after the first ``skip`` (a pipeline whose first replies the server writes
        before a wait in it blocks: those pass, the ones after the wait are lost)."""
        with self._lock:
            self._armed[marker] += times
            self._skips[marker] = skip

    def watch(self, marker: bytes) -> None:
        """Count the requests that contain ``marker`` (see ``seen``) without dropping."""
        with self._lock:
            self._armed[marker] += 0

    def close(self) -> None:
        self._closing = True
        with contextlib.suppress(OSError):
            self._listener.close()
        self._accepter.join(5)
        for thread in self._threads:
            thread.join(5)

    def __enter__(self) -> DropProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        self._listener.settimeout(0.1)
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._relay, args=(client,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _match(self, data: bytes) -> int | None:
        """None when this request's reply passes, else how many reply chunks pass before the
        drop (counting the markers seen)."""
        drop = None
        with self._lock:
            for marker, left in self._armed.items():
                if marker in data:
                    self.seen[marker] += 1
                    if left > 0 and drop is None:
                        self._armed[marker] -= 1
                        drop = self._skips.get(marker, 0)
        return drop

    def _relay(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            client.close()
            return
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, server)
        sel.register(server, selectors.EVENT_READ, client)
        drop_next_reply: int | None = None  # reply chunks to pass on first; None: no drop
        try:
            while not self._closing:
                for key, _ in sel.select(timeout=0.1):
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    dst: socket.socket = key.data
                    data = src.recv(1 << 16)
                    if not data:
                        return
                    if src is client and (skip := self._match(data)) is not None:
                        drop_next_reply = skip
                    if src is server and drop_next_reply is not None:
                        if drop_next_reply > 0:
                            drop_next_reply -= 1
                        else:
                            with self._lock:
                                self.dropped += 1
                            return  # the server answered: lose the reply, cut both sides
                    dst.sendall(data)
        except OSError:
            return
        finally:
            sel.close()
            for sock in (client, server):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
