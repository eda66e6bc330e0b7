"""Hashing a big read off the reading thread, while it reads the next piece.

A cold read of a big context is a transfer and a hash of every byte (the check against the
version's name). Done in turn they add up. ``lane_hasher`` gives a ``_digest.Hasher`` whose
big updates run on the check lane (one background thread per process), in the order given,
while the reading thread goes on receiving, so that only the last piece's hash is left when
the transfer ends (and the copy's reader joins its pieces meanwhile: ``CopyRead.joined``).
BLAKE3 (and hashlib) let go of the GIL while they hash big inputs, so the two threads run at
once when a core is free, and no slower than in turn when none is (the lane waits on a lock,
it never spins: BLAKE3's own thread pool did, and cost a busy machine more than it saved).
Measured side by side (docs/benchmarks.md, session 28): a cold 3.2 MB ``get_context`` from
1.65x to 1.49x a raw GET + decode where BLAKE3 takes half as long as the GET; with the join
overlapping the last piece (session 29), 1.42x to 1.27x.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from collections.abc import Callable

from ._digest import Algorithm, Hasher, hasher

__all__ = ["INLINE_BYTES", "lane_hasher"]

# Updates smaller than this are hashed on the calling thread: handing one to the lane costs a
# wake-up (tens of microseconds), more than it hides.
INLINE_BYTES = 256 * 1024


class _Lane:
    """One daemon thread running jobs in the order given. Started again in a forked child,
    which inherits the queue, not the thread."""

    def __init__(self) -> None:
        self._pid = -1
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], None]) -> None:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._jobs = queue.SimpleQueue()
                    threading.Thread(
                        target=self._run, args=(self._jobs,), name="redis-swarm-hash", daemon=True
                    ).start()
                    self._pid = os.getpid()
        self._jobs.put(job)

    @staticmethod
    def _run(jobs: queue.SimpleQueue[Callable[[], None]]) -> None:
        while True:
            jobs.get()()  # a job keeps its own errors (_LaneHasher._hash_next): the lane goes on


_LANE = _Lane()


class _LaneHasher:
    """``hasher(algorithm)`` fed on the lane once an update is big (then every later one
    too, so that the order holds). Pieces wait in a queue of their own; whoever holds the
    lock hashes the next: the lane as it gets to them, ``hexdigest`` whatever the lane has
    not begun. So a reader never waits for the lane to be scheduled (on a machine with no
    core free that may take milliseconds), at most for the piece it is hashing."""

    def __init__(self, algorithm: Algorithm) -> None:
        self._hasher = hasher(algorithm)
        self._queued: deque[bytes] = deque()
        self._lock = threading.Lock()  # held while a piece is taken and hashed
        self._on_lane = False
        self._failed: BaseException | None = None  # what hashing a queued piece raised

    def update(self, data: bytes, /) -> None:
        if len(data) < INLINE_BYTES and not self._on_lane:
            self._hasher.update(data)
            return
        self._on_lane = True
        self._queued.append(data)
        _LANE.submit(self._hash_queued)

    def hexdigest(self) -> str:
        self._hash_queued()
        if self._failed is not None:
            raise self._failed
        return self._hasher.hexdigest()

    def _hash_queued(self) -> None:
        """Hash every piece still queued (the lane's job, and the reader's at the end)."""
        while self._hash_next():
            pass

    def _hash_next(self) -> bool:
        """Hash the next queued piece; False when none was left."""
        with self._lock:
            if not self._queued:
                return False
            piece = self._queued.popleft()
            if self._failed is None:
                try:
                    self._hasher.update(piece)
                except BaseException as exc:  # raised by hexdigest, on the reading thread
                    self._failed = exc
            return True


def lane_hasher(algorithm: Algorithm) -> Hasher:
    """An incremental hash (``_digest.hasher``) whose big updates overlap what the caller
    does next; ``hexdigest`` once, after the last update."""
    return _LaneHasher(algorithm)
