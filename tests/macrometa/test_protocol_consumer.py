"""``ConsumerProtocol`` driven by text alone: copies, generations, acks, nacks, duplicates."""

from __future__ import annotations

import datetime as dt

import pytest
from streamfw_macrometa import wire
from streamfw_macrometa.protocol import Arrival, Arrived, ConsumerProtocol, Handout, Notice, Reply

from streamfw.errors import LocalProtocolError
from streamfw.message import Delivery, MessageId

WHEN = dt.datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=dt.timezone.utc)
MID = MessageId("s", 1, 1)


def frame(payload: bytes = b"x", mid: MessageId = MID, count: int = 0) -> str:
    return wire.MessageFrame.of(Delivery(mid, payload, {}, None, WHEN, count)).encode()


def arrive(c: ConsumerProtocol, text: str) -> Arrival:
    event = c.receive(text)
    assert isinstance(event, Arrived), event
    return event.arrival


def hand_out(c: ConsumerProtocol, text: str) -> Delivery:
    handout = c.take(arrive(c, text))
    assert isinstance(handout, Handout) and handout.frame is None
    return handout.delivery


RAW = wire.encode_message_id(MID)
ACK = wire.Ack(RAW).encode()
NACK = wire.Nack(RAW).encode()


def test_a_message_is_handed_out_and_acked_with_its_raw_id() -> None:
    c = ConsumerProtocol("s", "consumer")
    assert hand_out(c, frame()).payload == b"x"
    assert c.ack(MID) == ACK
    assert c.ack(MID) is None  # acks are idempotent


def test_only_the_newest_queued_copy_is_handed_out() -> None:
    c = ConsumerProtocol("s", "consumer")
    old, new = arrive(c, frame(count=0)), arrive(c, frame(count=1))
    assert c.take(old) is None
    handout = c.take(new)
    assert handout is not None and handout.delivery.redelivery_count == 1


def test_copies_from_a_dropped_connection_are_skipped() -> None:
    c = ConsumerProtocol("s", "consumer")
    queued = arrive(c, frame())
    c.disconnected()
    assert c.take(queued) is None


def test_an_ack_after_a_drop_waits_for_the_copy_the_broker_sends_again() -> None:
    c = ConsumerProtocol("s", "consumer")
    hand_out(c, frame())
    c.disconnected()
    assert c.ack(MID) is None  # an old id is not sent on a new connection
    assert c.receive(frame(count=1)) == Reply(ACK)  # acked again, never shown


def test_an_ack_goes_to_a_copy_queued_on_the_new_connection() -> None:
    c = ConsumerProtocol("s", "consumer")
    hand_out(c, frame())
    c.disconnected()
    queued = arrive(c, frame(count=1))
    assert c.ack(MID) == ACK
    assert c.take(queued) is None  # copies queued before the ack are never shown


def test_a_reused_id_with_other_content_is_a_new_message() -> None:
    c = ConsumerProtocol("s", "consumer")
    hand_out(c, frame(b"before"))
    c.ack(MID)
    assert hand_out(c, frame(b"after restart")).payload == b"after restart"


def test_nack_hands_back_once_and_a_later_ack_still_acks() -> None:
    c = ConsumerProtocol("s", "consumer")
    hand_out(c, frame())
    assert c.nack(MID) == NACK
    assert c.nack(MID) is None  # the broker holds it no more
    assert c.ack(MID) == ACK


def test_nack_after_a_drop_sends_nothing_the_drop_handed_it_back() -> None:
    c = ConsumerProtocol("s", "consumer")
    hand_out(c, frame())
    c.disconnected()
    assert c.nack(MID) is None
    queued = arrive(c, frame(count=1))
    assert c.nack(MID) == NACK  # the copy that arrived since is the one held here
    assert c.take(queued) is None


def test_ack_or_nack_of_a_message_never_handed_out_is_refused() -> None:
    c = ConsumerProtocol("s", "consumer")
    arrive(c, frame())
    with pytest.raises(LocalProtocolError, match="not delivered"):
        c.ack(MID)
    with pytest.raises(LocalProtocolError, match="not delivered"):
        c.nack(MID)


def test_error_and_end_of_topic_frames_are_notices() -> None:
    c = ConsumerProtocol("s", "consumer")
    error = wire.ServerError(3, "not delivered", RAW)
    assert c.receive(error.encode()) == Notice(error)
    assert c.receive(wire.EndOfTopic(False).encode()) == Notice(wire.EndOfTopic(False))


def test_an_unreadable_frame_is_a_frame_error_and_changes_nothing() -> None:
    c = ConsumerProtocol("s", "consumer")
    queued = arrive(c, frame())
    with pytest.raises(wire.FrameError):
        c.receive('{"messageId": "CAEQAQ==", "payload": "***"}')
    assert c.take(queued) is not None
