"""Key partitioning shared by everything that must keep one key's work in order (PRS-3, DL-10).

``partition_of(key, n)`` sends every item with the same key to the same one of *n*
workers, in every process and every run: the replay workers and the partitioned
work queue both route with it, so a key lands on the same lane in each.
"""

from __future__ import annotations

import functools
import hashlib

from ._check import count, short
from ._exceptions import InvalidArgumentType

__all__ = ["partition_of", "stable_hash"]


@functools.lru_cache(maxsize=65536)
def _hash(key: str) -> int:
    try:
        # surrogatepass: a str with a lone surrogate is still a key, with a stable hash;
        # every other str encodes exactly as plain UTF-8.
        data = key.encode("utf-8", "surrogatepass")
    except AttributeError:
        raise _not_a_key(key) from None
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def _not_a_key(key: object) -> InvalidArgumentType:
    return InvalidArgumentType("key", f"must be a string, got {type(key).__name__} {short(key)}")


def stable_hash(key: str) -> int:
    """Return a 64-bit hash of *key* that is the same in every process and every run (DL-10).

    Python's ``hash()`` is salted per process, so it cannot route a key to the same
    partition after a restart; this is BLAKE2b with an 8-byte digest of the key's
    UTF-8 (a lone surrogate, which UTF-8 cannot encode, is hashed as its code
    point's three bytes). The result for the 65,536 most recently used keys is
    cached (``functools.lru_cache``), since a queue routes the same keys over and
    over; the value does not depend on the cache.

    Raises:
        InvalidArgumentType: *key* is not a string.
    """
    try:
        return _hash(key)
    except TypeError as exc:  # unhashable, so not a str
        if isinstance(exc, InvalidArgumentType):
            raise
        raise _not_a_key(key) from None


def partition_of(key: str, partitions: int) -> int:
    """Return the partition, in ``range(partitions)``, that handles items with *key*.

    Raises:
        InvalidArgumentType: *key* is not a string, or *partitions* not an integer.
        InvalidArgument: *partitions* is below 1.
    """
    if partitions.__class__ is not int or partitions < 1:
        count(partitions, "partitions")
    try:
        return _hash(key) % partitions  # not stable_hash: one call less per routed item
    except TypeError as exc:  # unhashable, so not a str
        if isinstance(exc, InvalidArgumentType):
            raise
        raise _not_a_key(key) from None
