"""A hypothesis state machine for the subscription invariants, over any transport.

Random sequences of publish / attach / detach / receive / batch receive / ack / nack / clock
advance run against a real client (through a ``Harness``) and a small reference model. Each
example picks a subscription type (Exclusive, Failover, Shared, Key_Shared) and, at random, a
dead-letter policy and pull mode. Checked:

* exclusivity: never two consumers on an Exclusive subscription; a refused attach changes
  nothing; on Exclusive and Failover only the active consumer receives -- on Failover the
  one Pulsar's rule picks (``streamfw.sticky.failover_active``: priority level, then a hash
  of names), and nobody during the failover delay after a change (until the clock moves);
* no message is outstanding at two consumers at once, and none is received again once acked;
* ``redelivery_count`` follows the harness's rule (``redelivery_rule``; Pulsar's by
  default): under ``pulsar`` it is 0 on Exclusive/Failover and exactly the nacks and ack
  timeouts the model saw on Shared/Key_Shared; under ``every_hand_back`` it never undercounts
  the hand-backs the model saw (nack, ack timeout, consumer gone), and is positive when the
  application saw the message before;
* dead letters: a message failed (nack, ack timeout) when delivered with a count at
  ``max_redeliver_count`` goes to the dead-letter stream -- exactly then, exactly once
  (read back with a reader), with its ``ORIGIN_MESSAGE_ID`` -- and is never delivered again;
* Key_Shared: never two consumers holding unacked messages of one key; each key's messages
  are first seen in publish order;
* pull mode: a consumer never receives more than it asked for, and gets what it asked for
  when messages wait that nobody else asked for;
* Exclusive/Failover deliver new messages in publish order (redeliveries may come first);
* copies: a message nacked, or handed back by an ack timeout or a dropped connection, while the
  application still holds it can be nacked or acked again through that old copy, without
  error; once acked that way it is not shown again to that consumer;
* no loss: at the end every message published after the subscription was created is delivered
  and acked (or dead-lettered) once the clock passes every nack delay and ack timeout.

A harness with a ``cut()`` method (drop every connection of its clients; they reconnect) also
gets a rule that cuts while an Exclusive consumer is attached, holding messages or not (on the
asyncio facade, where the wrapped harness has ``cut_aio``); the next step waits ``settle`` for
the reconnects. A transport that refuses a
feature (``Unsupported``) runs the example without it.

Time budget: ``run_subscription_machine`` runs examples in batches sized from the time the
previous ones took (each at most twice the last), and starts no batch it expects to overrun
``budget`` seconds, so a slow machine runs fewer examples instead of being killed by a
per-test timeout mid-example (which hypothesis would report as a flaky failure with a
harmless-looking example).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Sequence
from typing import Any

from streamfw.extras import missing

try:
    import hypothesis.strategies as st
    from hypothesis import Phase, settings
    from hypothesis.stateful import (
        RuleBasedStateMachine,
        initialize,
        invariant,
        precondition,
        rule,
        run_state_machine_as_test,
    )
except ModuleNotFoundError as exc:  # say which install brings it: streamfw[testing]
    raise missing(exc, __name__) from None

from streamfw.api import SUBSCRIPTION_TYPES, SubscriptionType
from streamfw.broker import ORIGIN_MESSAGE_ID
from streamfw.consumer import Consumer
from streamfw.errors import SubscriptionBusy, Unsupported
from streamfw.message import Message
from streamfw.sticky import failover_active
from streamfw.testing.harness import Harness

log = logging.getLogger("streamfw.testing")

BUDGET = 60.0  # seconds of examples per run, by default (pytest's per-test timeout is 120 s)
BUDGET_ENV = "STREAMFW_MACHINE_BUDGET"
SLOTS = st.integers(min_value=0, max_value=2)
KEYS = st.sampled_from([None, "a", "b"])  # few keys: they meet, and move between consumers
NACK_DELAY = 10.0
ACK_TIMEOUT = 30.0
BEYOND_TIMERS = 100.0  # one clock step that passes every nack delay, ack timeout, failover delay
QUEUE = 3
MULTI = ("shared", "key_shared")  # types where every consumer receives


class SubscriptionMachine(RuleBasedStateMachine):
    """One stream, one subscription, up to three consumer slots, one model."""

    # What examples pick from (run_subscription_machine narrows these).
    types: Sequence[SubscriptionType] = SUBSCRIPTION_TYPES
    dead_letter_limits: Sequence[int | None] = (None, 1, 2)
    pull_modes: Sequence[bool] = (False, True)

    def __init__(self, harness: Harness, stream_name: str | None = None) -> None:
        super().__init__()
        self.harness = harness
        self.rule_name: str = getattr(harness, "redelivery_rule", "pulsar")
        self.client = harness.client()
        # One name for every example of a run (each deletes its stream at the end): which
        # Failover consumer is active hashes it, so a replayed example must see the same one.
        name = stream_name or f"sm-{uuid.uuid4().hex[:8]}"
        stream = self.client.stream(name)
        if stream.exists():  # left over by an example that could not clean up
            stream.delete(force=True)
        self.stream = stream.create()
        self.producer = self.stream.producer()
        self.type: SubscriptionType = "exclusive"
        self.ack_timeout: float | None = None
        self.max_redeliver: int | None = None
        self.pull = False
        self.consumers: dict[int, Consumer] = {}
        self.priority: dict[int, int] = {}
        self.priorities = True  # priority levels used (unless the transport refuses them)
        self.active: int | None = None  # Exclusive/Failover: the slot that receives
        self.switching = False  # Failover: a new active slot waits for the clock to move
        # Failover: slots once active, still attached. Until the switch they hold what they
        # were sent, and their application may still take what was queued for them then.
        self.was_active: set[int] = set()
        self.learning = False  # Failover: which slot is active is not known for sure
        self.next_value = 0
        self.created = False  # the subscription exists once a consumer first attached
        self.expected: set[int] = set()  # published after the subscription was created
        self.keys: dict[int, str | None] = {}
        self.acked: set[int] = set()
        self.held: dict[int, tuple[int, Message]] = {}  # value -> (slot, message)
        self.returns: dict[int, int] = {}  # hand-backs the model knows of
        self.failures: dict[int, int] = {}  # of those, nacks and ack timeouts
        self.nacked: set[int] = set()  # waiting for their nack delay
        self.seen: set[int] = set()
        self.last_new = -1
        self.first_seen_of_key: dict[str | None, int] = {}
        self.dead: set[int] = set()  # dead-lettered
        self.asked: dict[int, int] = {}  # pull mode: asked for, not received yet, per slot
        self.granted: dict[int, int] = {}  # pull mode: permits asked for in total, per slot
        self.received: dict[int, int] = {}  # per slot, in total
        # Copies the application still holds although the broker took the message back (ack
        # timeout, dropped connection): value -> (slot, message).
        self.stale: dict[int, tuple[int, Message]] = {}
        self.late_acks: dict[int, int] = {}  # acked through a stale copy: value -> slot
        self.may_return: set[int] = set()  # late-acked by a consumer that left before it came back

    @initialize(data=st.data(), timeout=st.booleans())
    def choose(self, data: st.DataObject, timeout: bool) -> None:
        self.type = data.draw(st.sampled_from(self.types), label="type")
        # Shared + ack timeout races a late ack against a redelivery elsewhere (as in Pulsar).
        self.ack_timeout = ACK_TIMEOUT if timeout and self.type not in MULTI else None
        self.max_redeliver = data.draw(
            st.sampled_from(self.dead_letter_limits), label="max_redeliver_count"
        )
        self.pull = data.draw(st.sampled_from(self.pull_modes), label="pull_mode")

    # --------------------------------------------------------------------------- rules

    @rule(key=KEYS)
    def publish(self, key: str | None) -> None:
        value = self.next_value
        self.next_value += 1
        self.producer.send(value, key=key)
        self.keys[value] = key
        if self.created:
            self.expected.add(value)

    @precondition(lambda self: len(self.consumers) < 3)
    @rule(slot=SLOTS, priority=st.sampled_from([0, 0, 1]))
    def attach(self, slot: int, priority: int) -> None:
        if slot in self.consumers:
            return
        busy = self.type == "exclusive" and bool(self.consumers)
        if self.type != "failover" or not self.priorities:
            priority = 0
        try:
            consumer = self._open(slot, priority)
        except Unsupported:
            # This transport cannot honour a feature: the example goes on without it.
            assert priority or not self.created, "a feature refused after it was accepted"
            if not self.created:
                self.type = "shared" if self.type == "key_shared" else self.type
                self.max_redeliver, self.pull = None, False
            self.priorities, priority = False, 0
            consumer = self._open(slot, priority)
        except SubscriptionBusy:
            assert busy, "attach refused although the subscription allows it"
            return
        assert not busy, "a second consumer attached to an exclusive subscription"
        if self.pull and not callable(getattr(consumer, "receive_many", None)):
            consumer.close()  # an API without batch receive: no pull mode either
            self.pull = False
            consumer = self._open(slot, priority)
        self.consumers[slot] = consumer
        self.priority[slot] = priority
        self.asked[slot] = 0
        self.created = True
        self._pick_active()

    @precondition(lambda self: bool(self.consumers))
    @rule(data=st.data())
    def detach(self, data: st.DataObject) -> None:
        slot = data.draw(st.sampled_from(sorted(self.consumers)))
        self.consumers.pop(slot).close()
        del self.priority[slot]
        for value in [v for v, (s, _) in self.held.items() if s == slot]:
            del self.held[value]
            self._returned(value, failure=False)
        for value in [v for v, (s, _) in self.stale.items() if s == slot]:
            del self.stale[value]
        for value in [v for v, s in self.late_acks.items() if s == slot]:
            # A late ack waits for the copy the broker sends again; gone with the consumer.
            del self.late_acks[value]
            self.acked.discard(value)
            self.may_return.add(value)
        self._pick_active()

    @precondition(lambda self: bool(self.consumers))
    @rule(data=st.data())
    def receive(self, data: st.DataObject) -> None:
        slot = data.draw(st.sampled_from(sorted(self.consumers)))
        consumer = self.consumers[slot]
        self._asking(slot, 1)
        msg = consumer.receive(self.harness.settle)
        if msg is None and self._due_for(slot):
            # Something should have come: give a slow hop (a loaded CI machine) more time
            # before calling it lost. What the transport must not do is never deliver it.
            msg = consumer.receive(self.harness.settle * 25)
            assert msg is not None, f"nothing received although {self._due_for(slot)} are due"
        if msg is not None:
            self._got(slot, msg)

    @precondition(lambda self: bool(self.consumers))
    @rule(data=st.data(), wanted=st.integers(min_value=1, max_value=4))
    def receive_many(self, data: st.DataObject, wanted: int) -> None:
        slot = data.draw(st.sampled_from(sorted(self.consumers)))
        consumer = self.consumers[slot]
        if not callable(getattr(consumer, "receive_many", None)):
            return
        self._asking(slot, wanted)
        due = min(wanted, len(self._due_for(slot)))
        got = consumer.receive_many(wanted, self.harness.settle)
        for msg in got:
            self._got(slot, msg)
        if len(got) < due:  # a slow hop: more time, as in receive
            more = consumer.receive_many(due - len(got), self.harness.settle * 25)
            for msg in more:
                self._got(slot, msg)
            assert len(got) + len(more) >= due, f"{due} due, {len(got) + len(more)} received"

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
        if self._dead_lettered(value, holder[1]):
            return
        self._returned(value, failure=True)
        self.nacked.add(value)
        if self.type not in MULTI:  # kept, to ack or nack again later (on Shared another
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
            newer = self.held.pop(value)
            if self._dead_lettered(value, newer[1]):
                return
            self.stale[value] = newer
            self._returned(value, failure=True)
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
        if slot in self.was_active:  # the new active one may have a copy queued already
            self.may_return.add(value)

    @precondition(
        lambda self: (
            callable(getattr(self.harness, "cut", None))
            and self.type == "exclusive"
            and bool(self.consumers)
        )
    )
    @rule()
    def cut(self) -> None:
        """Drop every connection: what the consumer held comes back, the old copies stay (and
        what was queued at it unseen comes back too, so it runs with nothing held as well)."""
        self.harness.cut()  # type: ignore[attr-defined]
        # The links reconnect by themselves. Until they have, another consumer may take the
        # Exclusive subscription (so may one on Pulsar), which the model does not predict.
        time.sleep(self.harness.settle)
        for value, holder in list(self.held.items()):
            del self.held[value]
            self.stale[value] = holder
            self._returned(value, failure=False)

    @precondition(lambda self: bool(self.consumers))  # timers matter to consumers only
    @rule()
    def advance(self) -> None:
        self.harness.advance(BEYOND_TIMERS)
        self.nacked.clear()
        if self.switching:  # the new active consumer takes what the others held
            self.switching = False
            for value, holder in list(self.held.items()):
                if holder[0] != self.active:
                    del self.held[value]
                    self.stale[value] = holder
                    self._returned(value, failure=False)
        if self.ack_timeout is not None:
            for value, holder in list(self.held.items()):
                del self.held[value]
                self.stale[value] = holder
                if not self._dead_lettered(value, holder[1]):
                    self._returned(value, failure=True)

    @precondition(lambda self: bool(self.dead))
    @rule()
    def read_dead_letters(self) -> None:
        self._check_dead_letters()

    @invariant()
    def at_most_one_exclusive_consumer(self) -> None:
        if self.type == "exclusive":
            assert len(self.consumers) <= 1

    @invariant()
    def never_more_than_asked(self) -> None:
        if self.pull:
            for slot, received in self.received.items():
                assert received <= self.granted.get(slot, 0), f"slot {slot} got more than asked"

    # ------------------------------------------------------------------------ helpers

    def _open(self, slot: int, priority: int) -> Consumer:
        options: dict[str, Any] = {}
        if self.max_redeliver is not None:
            options["max_redeliver_count"] = self.max_redeliver
        if self.pull:
            options["pull_mode"] = True
        if priority:
            options["priority_level"] = priority
        return self.stream.consumer(
            "sub",
            type=self.type,
            name=f"c{slot}",
            receiver_queue_size=QUEUE,
            ack_timeout=self.ack_timeout,
            nack_delay=NACK_DELAY,
            **options,
        )

    def _pick_active(self) -> None:
        """The model of the Exclusive/Failover active consumer (``streamfw.sticky``)."""
        if self.type in MULTI:
            return
        slots = sorted(self.consumers)
        self.was_active &= set(slots)
        if not slots:
            self.active, self.switching = None, False
            return
        if self.type == "failover":
            index = failover_active(self.stream.name, [(self.priority[s], f"c{s}") for s in slots])
            chosen = slots[index]
        else:
            chosen = slots[0]
        if self.type == "failover" and self.active in self.consumers:
            # The prediction hashes this stream's name; a transport may hash another (a
            # Pulsar-backed server hashes the full topic name): the first top-priority slot
            # to receive is the active one.
            self.was_active.add(self.active)
            self.learning = True
        if chosen != self.active:
            self.switching = self.switching or self.active is not None
            if self.type != "failover":
                self.switching = False
            self.active = chosen

    def _asking(self, slot: int, wanted: int) -> None:
        """Pull mode: the consumer tops what it asked for up to ``wanted``."""
        if self.pull:
            more = max(0, wanted - self.asked[slot])
            self.asked[slot] += more
            self.granted[slot] = self.granted.get(slot, 0) + more

    def _got(self, slot: int, msg: Message) -> None:
        value = msg.value
        assert value in self.expected, f"{value} was not published to this subscription"
        self.received[slot] = self.received.get(slot, 0) + 1
        if self.pull:
            self.asked[slot] -= 1
        top = min(self.priority.values(), default=0)
        learnable = slot == self.active or (
            slot not in self.was_active and self.priority.get(slot) == top
        )
        if self.type == "failover" and self.learning and learnable:
            if slot != self.active:  # the transport's broker picked another: learn it
                self.was_active.discard(slot)
                self.active = slot
                self.switching = False
            self.learning = False
        if self.type == "failover" and slot != self.active and slot in self.was_active:
            # Sent while it was active, handed out after the switch (a transport may queue
            # copies): Pulsar's failover may duplicate then. A copy, not a holding.
            self.stale[value] = (slot, msg)
            return
        self._check_not_acked(value)
        holder = self.held.get(value)
        if holder is not None:
            assert holder[0] == slot, f"{value} outstanding at two consumers"
            assert self.ack_timeout is not None, f"{value} delivered twice without a timeout"
        if self.type not in MULTI:
            assert slot == self.active or slot in self.was_active, (
                f"slot {slot} received but is not the active consumer"
            )
            assert not (self.switching and slot == self.active and slot not in self.was_active), (
                f"slot {slot} received during the failover delay"
            )
        if self.type == "key_shared":
            key = self.keys[value]
            others = [v for v, (s, _) in self.held.items() if s != slot and self.keys[v] == key]
            assert not others, f"key {key!r} of {value} is held unacked elsewhere: {others}"
            if value not in self.seen:
                last = self.first_seen_of_key.get(key, -1)
                assert value > last, f"key {key!r}: {value} first seen after {last}"
                self.first_seen_of_key[key] = value
        self._check_count(value, msg, holder)
        # (An ack timeout may hand back a copy still queued unseen: it comes later.)
        first = value not in self.seen and self.ack_timeout is None
        if self.type not in MULTI and slot == self.active and first:
            assert value > self.last_new, f"{value} delivered after {self.last_new}"
            self.last_new = value
        self.seen.add(value)
        self.nacked.discard(value)
        self.held[value] = (slot, msg)

    def _check_count(self, value: int, msg: Message, holder: tuple[int, Message] | None) -> None:
        count = msg.redelivery_count
        if self.rule_name == "every_hand_back":
            assert count >= self.returns.get(value, 0)
            if value in self.seen and holder is None:
                assert count >= 1, f"{value} redelivered with count 0"
        elif self.type in MULTI:
            assert count == self.failures.get(value, 0), (
                f"{value}: redelivery_count {count}, {self.failures.get(value, 0)} nacks/timeouts"
            )
        else:
            assert count == 0, f"{value}: redelivery_count {count} on {self.type} (Pulsar: 0)"

    def _dead_lettered(self, value: int, msg: Message) -> bool:
        """Whether failing ``msg`` (a nack or an ack timeout) sent it to the dead letters."""
        if self.max_redeliver is None or msg.redelivery_count < self.max_redeliver:
            return False
        assert value not in self.dead, f"{value} dead-lettered twice"
        self.dead.add(value)
        self.acked.add(value)
        self.nacked.discard(value)
        return True

    def _check_dead_letters(self) -> None:
        """The dead-letter stream holds each dead-lettered message once, and nothing else."""
        dead = self.client.stream(f"{self.stream.name}-sub-DLQ")
        got: list[int] = []
        with dead.reader("earliest") as reader:
            while (msg := reader.receive(self.harness.settle)) is not None:
                got.append(msg.value)
                assert msg.properties.get(ORIGIN_MESSAGE_ID), "no origin message id"
        assert sorted(got) == sorted(self.dead), f"dead letters {got}, expected {self.dead}"

    def _returned(self, value: int, *, failure: bool) -> None:
        self.returns[value] = self.returns.get(value, 0) + 1
        if failure:
            self.failures[value] = self.failures.get(value, 0) + 1

    def _check_not_acked(self, value: int) -> None:
        if value in self.may_return:  # late-acked by a consumer that left: it may come back
            self.may_return.discard(value)
            return
        assert value not in self.dead, f"{value} delivered again after it was dead-lettered"
        assert value not in self.acked, f"{value} came back after it was acked"

    def _due_for(self, slot: int) -> list[int]:
        """What the consumer in ``slot`` must receive next, as far as the model can tell.

        An Exclusive/Failover active consumer with room gets whatever waits; in pull mode a
        Shared consumer gets what waits beyond what the other consumers asked for.
        """
        mine = sum(1 for s, _ in self.held.values() if s == slot)
        if mine >= QUEUE or self.may_return:
            return []
        waiting = sorted(
            self.expected - self.acked - set(self.held) - self.nacked - self.may_return
        )
        if self.type == "key_shared":
            return []
        if self.type == "shared":
            if not self.pull:
                return []
            reserved = sum(n for s, n in self.asked.items() if s != slot and s in self.consumers)
            return waiting[: max(0, min(len(waiting) - reserved, QUEUE - mine))]
        if slot != self.active or self.switching or self.learning:
            return []
        return waiting[: QUEUE - mine]

    def teardown(self) -> None:
        try:
            self._drain_and_check()
        finally:
            for consumer in self.consumers.values():
                consumer.close()
            self.producer.close()
            self.stream.delete(force=True)
            if self.dead:
                self.client.stream(f"{self.stream.name}-sub-DLQ").delete(force=True)
            self.client.close()

    def _drain_and_check(self) -> None:
        if not self.created:
            return
        for _, msg in list(self.held.values()):
            msg.ack()
        self.acked |= set(self.held)
        self.held.clear()
        for consumer in self.consumers.values():
            consumer.close()
        self.consumers.clear()
        for value in self.late_acks:  # as in detach: gone with the consumer if not due yet
            self.acked.discard(value)
            self.may_return.add(value)
        self.late_acks.clear()
        # One plain consumer drains what is left (the subscription's type kept).
        drain = self.stream.consumer(
            "sub", type=self.type, receiver_queue_size=QUEUE, nack_delay=NACK_DELAY
        )
        self.consumers[0] = drain
        self.harness.advance(BEYOND_TIMERS)
        while (got := drain.receive(self.harness.settle)) is not None:
            self._check_not_acked(got.value)
            got.ack()
            self.acked.add(got.value)
        lost = self.expected - self.acked - self.may_return
        assert not lost, f"never delivered: {sorted(lost)}"
        if self.dead:
            self._check_dead_letters()


def _machine_of(**narrowed: Sequence[Any] | None) -> type[SubscriptionMachine]:
    given = {k: tuple(v) for k, v in narrowed.items() if v is not None}
    if not given:
        return SubscriptionMachine
    return type("SubscriptionMachine", (SubscriptionMachine,), given)


def run_subscription_machine(
    harness: Harness,
    *,
    max_examples: int | None = None,
    budget: float | None = None,
    types: Sequence[SubscriptionType] | None = None,
    dead_letter_limits: Sequence[int | None] | None = None,
    pull_modes: Sequence[bool] | None = None,
    shrink: bool = True,
) -> int:
    """Run the state machine against ``harness`` (used by tests and by plugin authors).

    Args:
        harness: the broker to test. Its ``redelivery_rule`` attribute (``pulsar`` when it
            has none) says which redelivery-count rule its broker follows.
        max_examples: examples to run at most; default: the hypothesis profile's.
        budget: seconds to spend generating examples; default ``BUDGET`` or the
            ``STREAMFW_MACHINE_BUDGET`` environment variable. Examples run in batches; the
            first is small, the next ones are sized from the time per example so far, and
            none is started that would be expected to end past the budget. Shrinking a real
            failure is not cut short (it ends with the counterexample).
        types: the subscription types examples pick from (all by default).
        dead_letter_limits: the ``max_redeliver_count`` values they pick from (None, 1, 2).
        pull_modes: the ``pull_mode`` values they pick from (both).
        shrink: shrink a failure to a minimal example (off: raise the first one found, as
            found, sooner, without hypothesis's example database; the mutant tests use this).

    Returns:
        How many examples ran (fewer than ``max_examples`` when the budget ran out).
    """
    current = settings()
    wanted = max_examples or current.max_examples
    if budget is None:
        budget = float(os.environ.get(BUDGET_ENV) or BUDGET)
    phases = current.phases if shrink else tuple(p for p in current.phases if p != Phase.shrink)
    machine = _machine_of(types=types, dead_letter_limits=dead_letter_limits, pull_modes=pull_modes)
    stream_name = f"sm-{uuid.uuid4().hex[:8]}"
    start = time.monotonic()
    end = start + budget
    done = 0
    spent = 0.0  # seconds spent in batches so far
    batch = min(wanted, 3)
    while batch > 0:
        began = time.monotonic()
        run_state_machine_as_test(
            # hypothesis calls this as a factory; its annotation only admits classes
            lambda: machine(harness, stream_name),  # type: ignore[arg-type]
            settings=settings(
                current,
                max_examples=batch,
                stateful_step_count=30,
                deadline=None,
                phases=phases,
                # without shrinking: the first failure, as found (not replayed from a file)
                report_multiple_bugs=shrink,
                database=current.database if shrink else None,
            ),
        )
        done += batch
        spent += time.monotonic() - began
        # Averaged over every batch so far, not the last one: a batch may run fewer examples
        # than asked, even none (hypothesis stops early when it runs out of distinct ones,
        # as with the derandomized settings it uses under CI), and one that took no time
        # must not plan the rest of the run as free.
        per_example = spent / done
        left = end - time.monotonic()
        # Plan for twice the average: examples vary, and the budget must hold. At most twice
        # the last batch: later examples tend to be longer than the first ones.
        fits = int(left / (2 * per_example)) if per_example > 0 else 0
        batch = min(wanted - done, 2 * batch, fits)
    if done < wanted:
        log.info(
            "state machine on %s: %d of %d examples in its %g s budget",
            getattr(harness, "name", harness),
            done,
            wanted,
            budget,
        )
    return done
