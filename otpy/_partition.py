"""Key partitioning shared by everything that must keep one key's work in order (P3, D10).

``partition_of(key, n)`` sends every item with the same key to the same one of *n*
workers, in every process and every run: the replay workers and the partitioned
work queue both route with it, so a key lands on the same lane in each.
"""

from __future__ import annotations

import functools
import hashlib

__all__ = ["partition_of", "stable_hash"]


@functools.lru_cache(maxsize=65536)
def stable_hash(key: str) -> int:
    """Return a 64-bit hash of *key* that is the same in every process and every run (D10).

    Python's ``hash()`` is salted per process, so it cannot route a key to the same
    partition after a restart; this is BLAKE2b with an 8-byte digest. The result for
    the 65,536 most recently used keys is cached (``functools.lru_cache``), since a
    queue routes the same keys over and over; the value does not depend on the cache.
    """
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


def partition_of(key: str, partitions: int) -> int:
    """Return the partition, in ``range(partitions)``, that handles items with *key*."""
    return stable_hash(key) % partitions
