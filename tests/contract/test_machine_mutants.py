"""The state machine catches a broken broker: one mutant per invariant of issue 11.

Each mutant is the real broker with one rule broken, put behind the loopback transport; the
machine, narrowed to the feature concerned and without shrinking (the first failure is
enough), must fail on the invariant that rule protects. A machine that passed a mutant would
be checking nothing there.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import streamfw_loopback.transport

from streamfw.api import ConsumerOptions, StreamRef
from streamfw.broker import Broker, _Consumer, _Subscription
from streamfw.message import Envelope
from streamfw.testing.harness import LoopbackHarness
from streamfw.testing.machine import run_subscription_machine

BUDGET = 60.0  # seconds each at most; a mutant is usually caught within a few (see --durations)


class DeadLettersTwice(Broker):
    def _dead_letter(self, c: _Consumer, seq: int) -> bool:
        done = super()._dead_letter(c, seq)
        if done and c.dead_letter is not None:  # one copy too many
            target = StreamRef(c.dead_letter, c.stream.ref.local)
            last = self._streams[target].log[-1]
            self.publish(target, Envelope(last.payload, last.properties, last.key))
        return done


class KeysDoNotDrain(Broker):
    def _key_owner(self, sub: _Subscription, h: int) -> _Consumer | None:
        owner = sub.ring.owner(h)
        return owner if owner is not None and self._has_room(owner) else None


class PullIgnored(Broker):
    def subscribe(self, ref: StreamRef, subscription: str, options: ConsumerOptions) -> int:
        cid = super().subscribe(ref, subscription, options)
        self.grant(cid, options.receiver_queue_size)  # as if it were not in pull mode
        return cid


class CountsOnExclusive(Broker):
    def _counts(self, sub: _Subscription, *, failure: bool) -> bool:
        return True  # the old every-hand-back rule, on a broker claiming Pulsar's


@pytest.fixture
def harness_with(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    harnesses: list[LoopbackHarness] = []

    def make(broker: type[Broker]) -> LoopbackHarness:
        monkeypatch.setattr(streamfw_loopback.transport, "Broker", broker)
        harnesses.append(LoopbackHarness())
        return harnesses[-1]

    yield make
    for harness in harnesses:
        harness.close()


@pytest.mark.parametrize(
    ("mutant", "narrowed", "caught"),
    [
        (
            DeadLettersTwice,
            {"types": ["shared"], "dead_letter_limits": [1], "pull_modes": [False]},
            "dead letters",
        ),
        (
            KeysDoNotDrain,
            {"types": ["key_shared"], "dead_letter_limits": [None], "pull_modes": [False]},
            "held unacked elsewhere|first seen after",
        ),
        (
            PullIgnored,
            {"types": ["shared"], "dead_letter_limits": [None], "pull_modes": [True]},
            "due",
        ),
        (
            CountsOnExclusive,
            {"types": ["exclusive"], "dead_letter_limits": [None], "pull_modes": [False]},
            "redelivery_count",
        ),
    ],
)
@pytest.mark.timeout(BUDGET + 60)
def test_the_machine_catches_the_mutant(
    harness_with: Any, mutant: type[Broker], narrowed: dict[str, Sequence[Any]], caught: str
) -> None:
    harness = harness_with(mutant)
    with pytest.raises(AssertionError, match=caught):
        run_subscription_machine(
            harness, max_examples=10_000, budget=BUDGET, shrink=False, **narrowed
        )
