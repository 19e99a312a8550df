"""Which consumer Pulsar picks: the owner of a Key_Shared key, the active Failover consumer.

Both choices are consistent hashing over consumer names with Pulsar's Murmur3 (32 bit, seed
0, the sign bit cleared), so the same names pick the same consumer here as in Pulsar
(docs/protocol.md §15.3 and §15.4, with the Pulsar source files they follow):

* Key_Shared (``ConsistentHashingStickyKeyConsumerSelector``, the default ``AUTO_SPLIT``
  mode): each consumer puts ``KEY_SHARED_POINTS`` points on a ring, at the hash of
  ``name + "\\0" + i``; a message goes to the owner of the first point at or after the hash
  of its key (its ordering key in Pulsar; ``NONE_KEY`` when it has none), wrapping around.
* Failover on a non-partitioned topic (``AbstractDispatcherSingleActiveConsumer``): the
  consumers with the highest priority (the lowest ``priority_level``), sorted by name, put
  ``FAILOVER_POINTS`` points each at the hash of ``name + str(i)``; the active one owns the
  first point at or after the hash of the topic name.

Pure functions of names: no state, no I/O.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Generic, TypeVar

import mmh3

KEY_SHARED_POINTS = 100  # subscriptionKeySharedConsistentHashingReplicaPoints (broker.conf)
FAILOVER_POINTS = 100  # CONSUMER_CONSISTENT_HASH_REPLICAS in Pulsar's dispatcher
NONE_KEY = b"NONE_KEY"  # the sticky key of a message without a key (Pulsar's NONE_KEY)

T = TypeVar("T")


def murmur3(data: bytes) -> int:
    """Pulsar's ``Murmur3_32Hash.makeHash``: Murmur3 x86 32-bit, seed 0, sign bit cleared."""
    return mmh3.hash(data, 0, signed=False) & 0x7FFFFFFF


def key_hash(key: str | None) -> int:
    """The sticky-key hash of a message key (``NONE_KEY`` for a message without one)."""
    return murmur3(key.encode() if key is not None else NONE_KEY)


class Ring(Generic[T]):
    """A consistent-hash ring of members; ``owner(h)`` is the member of the first point >= h.

    A point two members hash to stays with the one added first (Pulsar keeps the consumer it
    selected on a collision rather than switching keys between them).
    """

    def __init__(self) -> None:
        self._points: list[int] = []
        self._owners: list[T] = []

    def __bool__(self) -> bool:
        return bool(self._points)

    def add(self, member: T, points: Sequence[int]) -> None:
        for point in points:
            i = bisect.bisect_left(self._points, point)
            if i < len(self._points) and self._points[i] == point:
                continue
            self._points.insert(i, point)
            self._owners.insert(i, member)

    def remove(self, member: T) -> None:
        kept = [(p, o) for p, o in zip(self._points, self._owners, strict=True) if o is not member]
        self._points = [p for p, _ in kept]
        self._owners = [o for _, o in kept]

    def owner(self, h: int) -> T | None:
        if not self._points:
            return None
        i = bisect.bisect_left(self._points, h)
        return self._owners[i if i < len(self._points) else 0]


def key_shared_points(name: str) -> list[int]:
    """Where a Key_Shared consumer called ``name`` sits on its subscription's ring."""
    return [murmur3(f"{name}\0{i}".encode()) for i in range(KEY_SHARED_POINTS)]


def failover_active(topic: str, consumers: Sequence[tuple[int, str]]) -> int:
    """The index in ``consumers`` ((priority_level, name) pairs) of the active consumer.

    Args:
        topic: the name the topic hash is taken of.
        consumers: every attached consumer's priority level and name, in any order.
    """
    order = sorted(range(len(consumers)), key=lambda i: consumers[i])
    best = consumers[order[0]][0]
    top = [i for i in order if consumers[i][0] == best]
    ring: Ring[int] = Ring()
    for i in top:
        name = consumers[i][1]
        # A point two names share (odds 2**-31) goes to the first here, to the last in Pulsar.
        ring.add(i, [murmur3(f"{name}{j}".encode()) for j in range(FAILOVER_POINTS)])
    owner = ring.owner(murmur3(topic.encode()))
    assert owner is not None  # ``top`` is never empty
    return owner
