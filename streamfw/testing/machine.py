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
* copies: a message nacked, or handed back by an ack timeout or a dropped connection, while the
  application still holds it can be nacked or acked again through that old copy, without
  error; once acked that way it is not shown again to that consumer;
* no loss: at the end every message published after the subscription was created is delivered
  and acked once the clock passes every nack delay and ack timeout.

A harness with a ``cut()`` method (drop every connection of its clients; they reconnect) also
gets a rule that cuts while an Exclusive consumer holds messages.

Time budget: ``run_subscription_machine`` runs examples in batches sized from the time the
previous ones took, and starts no batch it expects to overrun ``budget`` seconds, so a slow
machine runs fewer examples instead of being killed by a per-test timeout mid-example (which
hypothesis would report as a flaky failure with a harmless-looking example).
"""

from __future__ import annotations

import logging
import os
import time
import uuid

from streamfw.extras import missing

try:
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
except ModuleNotFoundError as exc:  # say which install brings it
    raise missing(exc, __name__) from None

from streamfw.api import SUBSCRIPTION_TYPES, SubscriptionType
from streamfw.consumer import Consumer
from streamfw.errors import SubscriptionBusy
from streamfw.message import Message
from streamfw.testing.harness import Harness

log = logging.getLogger("streamfw.testing")

BUDGET = 60.0  # seconds of examples per run, by default (pytest's per-test timeout is 120 s)
BUDGET_ENV = "STREAMFW_MACHINE_BUDGET"
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
        # Copies the application still holds although the broker took the message back (ack
        # timeout, dropped connection): value -> (slot, message).
        self.stale: dict[int, tuple[int, Message]] = {}
        self.late_acks: dict[int, int] = {}  # acked through a stale copy: value -> slot
        self.may_return: set[int] = set()  # late-acked by a consumer that left before it came back

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
        for value in [v for v, (s, _) in self.stale.items() if s == slot]:
            del self.stale[value]
        for value in [v for v, s in self.late_acks.items() if s == slot]:
            # A late ack waits for the copy the broker sends again; gone with the consumer.
            del self.late_acks[value]
            self.acked.discard(value)
            self.may_return.add(value)

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
        self._check_not_acked(value)
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
        holder = self.held.pop(value)
        holder[1].nack()
        self._returned(value)
        self.nacked.add(value)
        if self.type != "shared":  # kept, to ack or nack again later (on Shared another
            self.stale[value] = holder  # consumer may get it meanwhile: a race, as on Pulsar)

    @precondition(lambda self: bool(self.stale))
    @rule(data=st.data())
    def nack_stale(self, data: st.DataObject) -> None:
        """Nack through an old copy (nacked, or taken back by an ack timeout or a cut): the
        message, not the copy, is nacked -- if the broker holds it at this consumer."""
        value = data.draw(st.sampled_from(sorted(self.stale)))
        _, old = self.stale.pop(value)
        old.nack()
        if value in self.held:  # a newer copy was received: that is what gets handed back
            self.stale[value] = self.held.pop(value)
            self._returned(value)
        if value not in self.acked:
            # Handed back again only if the broker had sent it to us anew; either way it is
            # not due before the nack delay has passed.
            self.nacked.add(value)

    @precondition(lambda self: bool(self.stale))
    @rule(data=st.data())
    def ack_stale(self, data: st.DataObject) -> None:
        """Ack through an old copy: the message is acked and not shown again to this consumer."""
        value = data.draw(st.sampled_from(sorted(self.stale)))
        slot, old = self.stale.pop(value)
        old.ack()
        self.held.pop(value, None)
        self.nacked.discard(value)
        if value not in self.acked:
            self.acked.add(value)
            self.late_acks[value] = slot

    @precondition(
        lambda self: (
            callable(getattr(self.harness, "cut", None))
            and self.type == "exclusive"
            and bool(self.held)
        )
    )
    @rule()
    def cut(self) -> None:
        """Drop every connection: what the consumer held comes back, the old copies stay."""
        self.harness.cut()  # type: ignore[attr-defined]
        for value, holder in list(self.held.items()):
            del self.held[value]
            self.stale[value] = holder
            self._returned(value)

    @precondition(lambda self: bool(self.consumers))  # timers matter to consumers only
    @rule()
    def advance(self) -> None:
        self.harness.advance(BEYOND_TIMERS)
        self.nacked.clear()
        if self.ack_timeout is not None:
            for value, holder in list(self.held.items()):
                del self.held[value]
                self.stale[value] = holder
                self._returned(value)

    @invariant()
    def at_most_one_exclusive_consumer(self) -> None:
        if self.type == "exclusive":
            assert len(self.consumers) <= 1

    # ------------------------------------------------------------------------ helpers

    def _returned(self, value: int) -> None:
        self.returns[value] = self.returns.get(value, 0) + 1

    def _check_not_acked(self, value: int) -> None:
        if value in self.may_return:  # late-acked by a consumer that left: it may come back
            self.may_return.discard(value)
            return
        assert value not in self.acked, f"{value} came back after it was acked"

    def _due_for(self, slot: int) -> list[int]:
        """What an active Exclusive/Failover consumer with room must receive next, if anything."""
        if self.type == "shared" or slot != self.order[0]:
            return []
        mine = sum(1 for s, _ in self.held.values() if s == slot)
        if mine >= QUEUE:
            return []
        return sorted(self.expected - self.acked - set(self.held) - self.nacked - self.may_return)

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
                self._check_not_acked(got.value)
                got.ack()
                self.acked.add(got.value)
        lost = self.expected - self.acked - self.may_return
        assert not lost, f"never delivered: {sorted(lost)}"


def run_subscription_machine(
    harness: Harness, *, max_examples: int | None = None, budget: float | None = None
) -> int:
    """Run the state machine against ``harness`` (used by tests and by plugin authors).

    Args:
        harness: the broker to test.
        max_examples: examples to run at most; default: the hypothesis profile's.
        budget: seconds to spend generating examples; default ``BUDGET`` or the
            ``STREAMFW_MACHINE_BUDGET`` environment variable. Examples run in batches; the
            first is small, the next ones are sized from the time per example so far, and
            none is started that would be expected to end past the budget. Shrinking a real
            failure is not cut short (it ends with the counterexample).

    Returns:
        How many examples ran (fewer than ``max_examples`` when the budget ran out).
    """
    current = settings()
    wanted = max_examples or current.max_examples
    if budget is None:
        budget = float(os.environ.get(BUDGET_ENV) or BUDGET)
    start = time.monotonic()
    end = start + budget
    done = 0
    batch = min(wanted, 3)
    while batch > 0:
        began = time.monotonic()
        run_state_machine_as_test(
            # hypothesis calls this as a factory; its annotation only admits classes
            lambda: SubscriptionMachine(harness),  # type: ignore[arg-type]
            settings=settings(current, max_examples=batch, stateful_step_count=30, deadline=None),
        )
        done += batch
        # A batch may run fewer examples than asked (hypothesis stops early when it runs
        # out of distinct ones); the estimate errs on the slow side then, which is safe.
        per_example = (time.monotonic() - began) / batch
        left = end - time.monotonic()
        # Plan for twice the average: examples vary, and the budget must hold.
        batch = min(wanted - done, int(left / (2 * per_example)) if per_example > 0 else 0)
    if done < wanted:
        log.info(
            "state machine on %s: %d of %d examples in its %g s budget",
            getattr(harness, "name", harness),
            done,
            wanted,
            budget,
        )
    return done
