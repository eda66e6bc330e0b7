"""A TCP proxy to a redis-server that meets each ACL SAVE on its way up: the tests of
``swarm acl --apply`` use it for a server whose saving is slow or lost."""

from __future__ import annotations

import contextlib
import socket
import threading

ACL_SAVE = b"*2\r\n$3\r\nACL\r\n$4\r\nSAVE\r\n"  # as redis-py sends it


class AclSaveProxy:
    """Forwards 127.0.0.1:``port`` to the server on ``target_port``. Each chunk going up that
    holds an ACL SAVE is given to ``on_save`` first: True passes it on (after whatever
    ``on_save`` did: a delay), False drops the connection there, unanswered."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def on_save(self) -> bool:
        return True

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
                self._sockets += [client, upstream]
                ended = threading.Semaphore(0)  # (the link's pipes that have ended)
                for pipe in ((client, upstream, True), (upstream, client, False)):
                    threading.Thread(target=self._pipe, args=(*pipe, ended), daemon=True).start()

    def _pipe(
        self, source: socket.socket, sink: socket.socket, up: bool, ended: threading.Semaphore
    ) -> None:
        cut = False
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if up and ACL_SAVE in data and not self.on_save():
                    cut = True  # (the connection dropped there, unanswered)
                    break
                sink.sendall(data)
        with contextlib.suppress(OSError):  # the sink may still answer, unless it was cut
            sink.shutdown(socket.SHUT_RDWR if cut else socket.SHUT_WR)
        if cut or ended.acquire(blocking=False):  # (the link's other pipe ended first)
            for sock in (source, sink):  # closed here, not left to close(): a link may be
                sock.close()  # accepted as close() runs, and never be in its list
        else:
            ended.release()

    def close(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()
