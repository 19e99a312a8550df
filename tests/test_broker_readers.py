"""The broker's reader rule: a reader acks nothing; only its permits bound what it is sent."""

from __future__ import annotations

from streamfw.api import ConsumerOptions, ReaderOptions, StreamRef
from streamfw.broker import Broker, Deliver
from streamfw.message import Envelope
from streamfw.testing import ManualClock

S = StreamRef("s")


def delivered(broker: Broker) -> list[bytes]:
    return [e.delivery.payload for e in broker.events() if isinstance(e, Deliver)]


def make_broker() -> Broker:
    broker = Broker(clock=ManualClock(), first_ledger=1 << 20)
    broker.create_stream(S)
    return broker


def test_a_reader_is_sent_its_permits_and_more_as_each_is_handed_over_without_acks() -> None:
    broker = make_broker()
    reader = broker.open_reader(S, ReaderOptions(start="earliest", receiver_queue_size=2))
    for n in range(5):
        broker.publish(S, Envelope(b"%d" % n))
    assert delivered(broker) == [b"0", b"1"]  # its queue is full: nothing more yet
    assert broker.permits(reader) == 0
    broker.grant(reader)  # the application took one; no ack
    assert delivered(broker) == [b"2"]
    broker.grant(reader, 2)
    assert delivered(broker) == [b"3", b"4"]


def test_a_readers_cursor_holds_back_no_message_it_was_sent() -> None:
    broker = make_broker()
    durable = broker.subscribe(S, "sub", ConsumerOptions(initial_position="earliest"))
    broker.open_reader(S, ReaderOptions(start="earliest"))
    mids = [broker.publish(S, Envelope(b"x" * 10)) for _ in range(300)]
    broker.events()
    for mid in mids:
        broker.ack(durable, mid)
    # the reader was sent everything: nothing is kept for it once the subscription acked all
    assert broker.backlog(S) == 0
    assert broker.freed == 3000
