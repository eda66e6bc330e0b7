"""A loopback port that counts the connections it accepts and answers each as its subclass
says: a stand-in for a server that misbehaves in one precise way (a TLS port refusing the
handshake, a plain port answering TLS with text, a reset in the TLS setup)."""

from __future__ import annotations

import contextlib
import socket
import threading


class CountingPort:
    """A TCP port on 127.0.0.1 (a free port number, ``port``), serving one connection at a
    time on its own thread: each is counted (``connections``), then given to ``answer``,
    whose OSError ends that connection only. A subclass sets what ``answer`` needs before
    calling this ``__init__``, which starts serving."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return  # (closed)
            self.connections += 1
            with contextlib.suppress(OSError), client:
                self.answer(client)

    def answer(self, client: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.sock.close()
