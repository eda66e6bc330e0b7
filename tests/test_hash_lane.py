"""The hash lane: big updates of a context read hashed on a background thread, in order, with
the same digest as hashing in turn, errors raised where the digest is asked for, and a lane of
its own in a forked child."""

from __future__ import annotations

import os
import random
import select
import signal
import threading

import pytest

from redis_swarm import _digest
from redis_swarm._hash_lane import INLINE_BYTES, lane_hasher

BIG = INLINE_BYTES


def _pieces(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    sizes = [rng.choice([1, 100, BIG - 1, BIG, 3 * BIG + 7]) for _ in range(12)]
    return [rng.randbytes(n) for n in sizes]


@pytest.mark.parametrize("algorithm", ["blake3", "sha256"])
@pytest.mark.parametrize("seed", range(4))
def test_the_digest_is_that_of_the_pieces_in_order(algorithm: _digest.Algorithm, seed: int) -> None:
    pieces = _pieces(seed)
    lane = lane_hasher(algorithm)
    for piece in pieces:
        lane.update(piece)
    assert lane.hexdigest() == _digest.digest(b"".join(pieces), algorithm)


def test_small_updates_after_a_big_one_keep_their_order() -> None:
    """Once a piece went to the lane, a small one must not overtake it on the caller's
    thread: a digest of a reordered stream would refuse good data."""
    pieces = [os.urandom(BIG * 2), b"a", b"b" * 10, os.urandom(BIG), b"c"]
    lane = lane_hasher("blake3")
    for piece in pieces:
        lane.update(piece)
    assert lane.hexdigest() == _digest.digest(b"".join(pieces))


def test_readers_on_several_threads_share_the_lane() -> None:
    results: dict[int, tuple[str, str]] = {}

    def read(seed: int) -> None:
        pieces = _pieces(100 + seed)
        lane = lane_hasher("blake3")
        for piece in pieces:
            lane.update(piece)
        results[seed] = (lane.hexdigest(), _digest.digest(b"".join(pieces)))

    threads = [threading.Thread(target=read, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 6
    assert all(got == want for got, want in results.values())


def test_an_error_on_the_lane_is_raised_by_hexdigest_and_the_lane_goes_on() -> None:
    lane = lane_hasher("blake3")
    lane.update(os.urandom(BIG))
    lane.update("not bytes" * BIG)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        lane.hexdigest()
    again = lane_hasher("blake3")
    data = os.urandom(BIG * 2)
    again.update(data)
    assert again.hexdigest() == _digest.digest(data)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_forked_child_hashes_on_a_lane_of_its_own() -> None:
    """A child forked after the parent's lane started inherits no thread: it starts its own
    (else its first big read would wait forever)."""
    warm = lane_hasher("blake3")
    warm.update(os.urandom(BIG))
    warm.hexdigest()
    data = os.urandom(BIG * 3)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its answer through the pipe, then out without cleanup
        try:
            lane = lane_hasher("blake3")
            lane.update(data)
            os.write(write_end, lane.hexdigest().encode())
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 30)
        got = os.read(read_end, 100).decode() if ready else "no answer within 30 s"
    finally:
        os.close(read_end)
        if not ready:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert got == _digest.digest(data)
