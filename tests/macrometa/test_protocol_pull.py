"""Pull mode in ``ConsumerProtocol``, driven by text alone: what it asks for, and when again."""

from __future__ import annotations

from streamfw_macrometa import wire
from streamfw_macrometa.protocol import Arrival, Arrived, ConsumerProtocol, Reply

from streamfw.message import MessageId
from tests.macrometa.test_protocol_consumer import MID, arrive, frame, hand_out


def permit(n: int) -> str:
    return wire.Permit(n).encode()


def puller() -> ConsumerProtocol:
    return ConsumerProtocol("s", "consumer", pull=True)


def test_outside_pull_mode_nothing_is_asked_for() -> None:
    c = ConsumerProtocol("s", "consumer")
    assert c.request(5) is None
    assert c.connected() is None


def test_it_asks_only_for_what_is_wanted_and_not_on_its_way() -> None:
    c = puller()
    assert c.request(3) == permit(3)
    assert c.request(2) is None  # three are on their way already
    hand_out(c, frame(mid=MessageId("s", 1, 1)))
    assert c.request(3) == permit(1)  # two still on their way, one handed out
    queued = arrive(c, frame(mid=MessageId("s", 1, 2)))
    assert c.request(3) is None  # a queued copy counts as on its way
    assert c.take(queued) is not None
    assert c.permits() is None


def test_an_older_copy_skipped_is_asked_for_again() -> None:
    c = puller()
    assert c.request(2) == permit(2)
    old, new = arrive(c, frame(count=0)), arrive(c, frame(count=1))
    assert c.permits() == permit(1)  # two permits used, one message to hand out
    assert c.take(old) is None and c.take(new) is not None


def test_a_duplicate_of_an_acked_message_is_asked_for_again() -> None:
    c = puller()
    assert c.request(1) == permit(1)
    hand_out(c, frame())
    c.ack(MID)
    assert c.request(1) == permit(1)
    assert isinstance(c.receive(frame()), Reply)  # acked again, not shown
    assert c.permits() == permit(1)


def test_a_queued_copy_dropped_by_an_ack_is_asked_for_again() -> None:
    c = puller()
    assert c.request(1) == permit(1)
    hand_out(c, frame())
    assert c.request(1) == permit(1)
    arrive(c, frame(count=1))  # redelivered (an ack timeout) and queued
    assert c.permits() is None
    assert c.ack(MID) is not None  # acks the queued copy and drops it
    assert c.permits() == permit(1)


def test_a_reconnect_asks_again_for_everything_still_wanted() -> None:
    c = puller()
    assert c.request(5) == permit(5)
    queued: list[Arrival] = []
    for seq in range(2):
        event = c.receive(frame(mid=MessageId("s", 1, seq)))
        assert isinstance(event, Arrived)
        queued.append(event.arrival)
    assert c.take(queued[0]) is not None  # four still wanted
    c.disconnected()
    assert c.take(queued[1]) is None  # stale: the broker sends it again
    assert c.request(4) == permit(4)  # no connection to write it on: the driver drops it
    assert c.connected() == permit(4)  # the old connection's permits died with it
    assert c.connected() == permit(4)  # each new connection starts with none


def test_what_is_asked_for_fits_a_java_int() -> None:
    c = puller()
    assert c.request(2**40) == permit(wire.INT32_MAX)
