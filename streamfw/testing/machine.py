"""A hypothesis state machine for the ack and exclusivity invariants, over any transport.

Random sequences of publish / attach / detach / receive / ack / nack / clock advance run
against a real client (through a ``Harness``) and a small reference model. Checked, for every
subscription type:

* exclusivity: never two consumers on an Exclusive subscription; a refused attach changes
  nothing; on Exclusive and Failover only the active (first attached) consumer receives;
* no message is outstanding at two consumers at once, and none is received again once acked;
* ``redelivery_count`` never undercounts the hand-backs the model saw (nack, ack timeout,
  consumer gone), and is positive when the application saw the message before;
* Exclusive/Failover deliver new messages in publish order (redeliveries may come first);
* no loss: at the end every message published after the subscription was created is delivered
  and acked once the clock passes every nack delay and ack timeout.
"""

from __future__ import annotations

import uuid

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from streamfw.api import SUBSCRIPTION_TYPES, SubscriptionType
from streamfw.consumer import Consumer
from streamfw.errors import SubscriptionBusy
from streamfw.message import Message
from streamfw.testing.harness import Harness

SLOTS = st.integers(min_value=0, max_value=2)
NACK_DELAY = 10.0
ACK_TIMEOUT = 30.0
BEYOND_TIMERS = 100.0  # one clock step that passes every nack delay and ack timeout
QUEUE = 3


class SubscriptionMachine(RuleBasedStateMachine):
    """One stream, one subscription, up to three consumer slots, one model."""

    def __init__(self, harness: Harness) -> None:
        super().__init__()
        self.harness = harness
        self.client = harness.client()
        self.stream = self.client.stream(f"sm-{uuid.uuid4().hex[:8]}").create()
        self.producer = self.stream.producer()
        self.type: SubscriptionType = "exclusive"
        self.ack_timeout: float | None = None
        self.consumers: dict[int, Consumer] = {}
        self.order: list[int] = []  # attach order: order[0] is the active one
        self.next_value = 0
        self.created = False  # the subscription exists once a consumer first attached
        self.expected: set[int] = set()  # published after the subscription was created
        self.acked: set[int] = set()
        self.held: dict[int, tuple[int, Message]] = {}  # value -> (slot, message)
        self.returns: dict[int, int] = {}  # hand-backs the model knows of
        self.nacked: set[int] = set()  # waiting for their nack delay
        self.seen: set[int] = set()
        self.last_new = -1

    @initialize(sub_type=st.sampled_from(SUBSCRIPTION_TYPES), timeout=st.booleans())
    def choose(self, sub_type: SubscriptionType, timeout: bool) -> None:
        self.type = sub_type
        # Shared + ack timeout races a late ack against a redelivery elsewhere (as in Pulsar).
        self.ack_timeout = ACK_TIMEOUT if timeout and sub_type != "shared" else None

    # --------------------------------------------------------------------------- rules

    @rule()
    def publish(self) -> None:
        value = self.next_value
        self.next_value += 1
        self.producer.send(value)
        if self.created:
            self.expected.add(value)

    @precondition(lambda self: len(self.consumers) < 3)
    @rule(slot=SLOTS)
    def attach(self, slot: int) -> None:
        if slot in self.consumers:
            return
        busy = self.type == "exclusive" and bool(self.consumers)
        try:
            consumer = self.stream.consumer(
                "sub",
                type=self.type,
                receiver_queue_size=QUEUE,
                ack_timeout=self.ack_timeout,
                nack_delay=NACK_DELAY,
            )
        except SubscriptionBusy:
            assert busy, "attach refused although the subscription allows it"
            return
        assert not busy, "a second consumer attached to an exclusive subscription"
        self.consumers[slot] = consumer
        self.order.append(slot)
        self.created = True

    @precondition(lambda self: bool(self.consumers))
    @rule(data=st.data())
    def detach(self, data: st.DataObject) -> None:
        slot = data.draw(st.sampled_from(sorted(self.consumers)))
        self.consumers.pop(slot).close()
        self.order.remove(slot)
        for value in [v for v, (s, _) in self.held.items() if s == slot]:
            del self.held[value]
            self._returned(value)

    @precondition(lambda self: bool(self.consumers))
    @rule(data=st.data())
    def receive(self, data: st.DataObject) -> None:
        slot = data.draw(st.sampled_from(sorted(self.consumers)))
        consumer = self.consumers[slot]
        msg = consumer.receive(self.harness.settle)
        if msg is None and self._due_for(slot):
            # Something should have come: give a slow hop (a loaded CI machine) more time
            # before calling it lost. What the transport must not do is never deliver it.
            msg = consumer.receive(self.harness.settle * 25)
            assert msg is not None, f"nothing received although {self._due_for(slot)} are due"
        if msg is None:
            return
        value = msg.value
        assert value in self.expected, f"{value} was not published to this subscription"
        assert value not in self.acked, f"{value} came back after it was acked"
        holder = self.held.get(value)
        if holder is not None:
            assert holder[0] == slot, f"{value} outstanding at two consumers"
            assert self.ack_timeout is not None, f"{value} delivered twice without a timeout"
        if self.type != "shared":
            assert slot == self.order[0], f"slot {slot} received but is not the active consumer"
        assert msg.redelivery_count >= self.returns.get(value, 0)
        if value in self.seen and holder is None:
            assert msg.redelivery_count >= 1, f"{value} redelivered with count 0"
        if msg.redelivery_count == 0 and self.type != "shared":
            assert value > self.last_new, f"{value} delivered after {self.last_new}"
            self.last_new = value
        self.seen.add(value)
        self.nacked.discard(value)
        self.held[value] = (slot, msg)

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        value = data.draw(st.sampled_from(sorted(self.held)))
        _, msg = self.held.pop(value)
        msg.ack()
        self.acked.add(value)

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def nack(self, data: st.DataObject) -> None:
        value = data.draw(st.sampled_from(sorted(self.held)))
        _, msg = self.held.pop(value)
        msg.nack()
        self._returned(value)
        self.nacked.add(value)

    @rule()
    def advance(self) -> None:
        self.harness.advance(BEYOND_TIMERS)
        self.nacked.clear()
        if self.ack_timeout is not None:
            for value in list(self.held):
                del self.held[value]
                self._returned(value)

    @invariant()
    def at_most_one_exclusive_consumer(self) -> None:
        if self.type == "exclusive":
            assert len(self.consumers) <= 1

    # ------------------------------------------------------------------------ helpers

    def _returned(self, value: int) -> None:
        self.returns[value] = self.returns.get(value, 0) + 1

    def _due_for(self, slot: int) -> list[int]:
        """What an active Exclusive/Failover consumer with room must receive next, if anything."""
        if self.type == "shared" or slot != self.order[0]:
            return []
        mine = sum(1 for s, _ in self.held.values() if s == slot)
        if mine >= QUEUE:
            return []
        return sorted(self.expected - self.acked - set(self.held) - self.nacked)

    def teardown(self) -> None:
        try:
            self._drain_and_check()
        finally:
            for consumer in self.consumers.values():
                consumer.close()
            self.producer.close()
            self.stream.delete(force=True)
            self.client.close()

    def _drain_and_check(self) -> None:
        if not self.created:
            return
        for _, msg in list(self.held.values()):
            msg.ack()
        self.acked |= set(self.held)
        self.held.clear()
        if not self.consumers:
            self.consumers[0] = self.stream.consumer(
                "sub", type=self.type, receiver_queue_size=QUEUE, nack_delay=NACK_DELAY
            )
            self.order.append(0)
        self.harness.advance(BEYOND_TIMERS)
        quiet = 0
        while quiet < len(self.consumers):
            quiet = 0
            for consumer in self.consumers.values():
                got = consumer.receive(self.harness.settle)
                if got is None:
                    quiet += 1
                    continue
                assert got.value not in self.acked, f"{got.value} came back after its ack"
                got.ack()
                self.acked.add(got.value)
        lost = self.expected - self.acked
        assert not lost, f"never delivered: {sorted(lost)}"


def run_subscription_machine(harness: Harness, *, max_examples: int | None = None) -> None:
    """Run the state machine against ``harness`` (used by tests and by plugin authors)."""
    current = settings()
    run_state_machine_as_test(
        # hypothesis calls this as a factory; its annotation only admits classes
        lambda: SubscriptionMachine(harness),  # type: ignore[arg-type]
        settings=settings(
            current,
            max_examples=max_examples or current.max_examples,
            stateful_step_count=30,
            deadline=None,
        ),
    )
