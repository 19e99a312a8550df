"""``ReaderProtocol`` driven by text alone: a slot freed per message, the resume position."""

from __future__ import annotations

from streamfw_macrometa import wire
from streamfw_macrometa.protocol import Arrived, ReaderProtocol

from streamfw.message import Delivery, MessageId


def frame(entry: int) -> str:
    return wire.delivery_frame(Delivery(MessageId("s", 1, entry), b"x"))


def test_each_message_taken_frees_a_slot_and_moves_the_resume_position() -> None:
    r = ReaderProtocol("s", "reader")
    assert r.resume_query() == {}  # the query the reader was opened with still holds
    for entry in (1, 2):
        event = r.receive(frame(entry))
        assert isinstance(event, Arrived)
        handout = r.take(event.arrival)
        raw = wire.encode_message_id(MessageId("s", 1, entry))
        assert handout is not None and handout.frame == wire.Ack(raw).encode()
        assert r.resume_query() == wire.reader_resume_query(raw)
    query = wire.reader_query("s", wire.reader_options_from_query("s", r.resume_query()))
    assert query[wire.READER_START] == r.resume_query()[wire.READER_START]


def test_messages_queued_before_a_drop_are_not_taken() -> None:
    r = ReaderProtocol("s", "reader")
    event = r.receive(frame(1))
    assert isinstance(event, Arrived)
    r.disconnected()
    assert r.take(event.arrival) is None and r.resume_query() == {}
