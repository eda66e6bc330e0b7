"""The content hash that names a context version and its chunks: BLAKE3, or SHA-256 for the
versions published before BLAKE3 (read and checked as they were written).

Why BLAKE3: a cold read checks every byte it returns against the version's hash, so the hash
is on the read path of every fetch. SHA-256 costs ~1.8 ms per 3.2 MB here (with the CPU's
SHA extensions) and was most of what a cold fetch paid beyond a raw GET; BLAKE3 (SIMD over
a tree of 1 KiB pieces) costs ~0.35 ms. A faster non-cryptographic hash (xxh3-128,
~0.04 ms) would not do: a version id and a chunk key are content addresses shared by every
publisher of a swarm (a chunk that exists is not sent again, a cache file is trusted by its
name), so anyone who can publish could craft a collision and have other owners' readers
served their bytes. BLAKE3 keeps that infeasible, as SHA-256 did.

A manifest records its algorithm (``hash``; absent in manifests written before it: SHA-256).
A cache file is named by its version alone, so it is valid when its name is either hash of
its bytes: both are collision resistant, so no other bytes can carry that name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Literal, Protocol

import blake3

__all__ = ["CURRENT", "LEGACY", "Algorithm", "Hasher", "algorithm_of", "digest", "hasher", "names"]

Algorithm = Literal["blake3", "sha256"]

# What new versions and chunks are named by.
CURRENT: Algorithm = "blake3"
# What a manifest without a ``hash`` field was named by.
LEGACY: Algorithm = "sha256"


def _blake3(data: bytes) -> str:
    # One thread: BLAKE3's own pool (max_threads=AUTO) hashes 3.2 MB in ~0.22 ms instead of
    # ~0.35 ms when a core is idle, but a cold fetch took ~1.5 ms longer with it on a busy
    # 2-core machine (its threads wait for a core): a worker's machine is rarely idle.
    return blake3.blake3(data).hexdigest()


_HASHES: dict[str, Callable[[bytes], str]] = {
    "blake3": _blake3,
    "sha256": lambda data: hashlib.sha256(data).hexdigest(),
}


def algorithm_of(name: object) -> Algorithm:
    """The algorithm a manifest records (None: written before the field existed)."""
    if name is None:
        return LEGACY
    if name == "blake3":
        return "blake3"
    if name == "sha256":
        return "sha256"
    raise ValueError(f"unknown content hash {name!r}")


def digest(data: bytes, algorithm: Algorithm = CURRENT) -> str:
    """The hex content hash of ``data``."""
    return _HASHES[algorithm](data)


class Hasher(Protocol):
    """An incremental hash: fed piece by piece, it gives the hash of them all."""

    def update(self, data: bytes, /) -> object: ...

    def hexdigest(self) -> str: ...


def hasher(algorithm: Algorithm = CURRENT) -> Hasher:
    """An incremental ``digest``: ``digest(a + b)`` is ``update(a); update(b); hexdigest()``."""
    return blake3.blake3() if algorithm == "blake3" else hashlib.sha256()


def names(data: bytes, version: str) -> bool:
    """Whether ``version`` is the content hash of ``data`` under either algorithm (the
    current one tried first)."""
    return any(digest(data, a) == version for a in (CURRENT, LEGACY))
