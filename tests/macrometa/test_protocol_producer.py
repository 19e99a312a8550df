"""``ProducerProtocol`` driven by text alone: contexts, window, receipts, resend, failures."""

from __future__ import annotations

import json

import pytest
from streamfw_macrometa import wire
from streamfw_macrometa.protocol import Confirmed, Failed, ProducerProtocol

from streamfw.errors import (
    BacklogQuotaExceeded,
    Closed,
    ConnectionLost,
    MessageTooLarge,
    NotSent,
    OutcomeUnknown,
    SendError,
)
from streamfw.message import Envelope, MessageId


def producer(max_pending: int = 10, max_frame_size: int = 1 << 20) -> ProducerProtocol[str]:
    return ProducerProtocol(
        "s", "producer on 's'", max_pending=max_pending, max_frame_size=max_frame_size
    )


def ok(context: int, entry: int = 1) -> str:
    return wire.Receipt(str(context), MessageId("s", 1, entry)).encode()


def refused(context: int, reason: str) -> str:
    return wire.SendRefused.with_code(str(context), wire.ERR_UNKNOWN, reason).encode()


def test_sends_are_numbered_in_order_and_confirmed_by_context() -> None:
    p = producer()
    outs = [p.send(Envelope(f"m{i}".encode()), f"h{i}") for i in range(3)]
    assert [o.context for o in outs] == [1, 2, 3]
    assert [wire.parse_publish(o.frame) for o in outs] == [
        wire.Publish(Envelope(f"m{i}".encode()), str(i + 1)) for i in range(3)
    ]
    assert p.receive(ok(2, 7)) == Confirmed("h1", MessageId("s", 1, 7))
    assert p.contexts() == [1, 3] and p.unconfirmed == 2


def test_receipts_for_nothing_of_ours_are_ignored() -> None:
    p = producer()
    p.send(Envelope(b"x"), "h")
    assert p.receive(ok(1)) is not None
    assert p.receive(ok(1)) is None  # a second receipt (for a resent copy)
    assert p.receive(ok(99)) is None
    assert p.receive(json.dumps({"result": "ok", "messageId": "CAEQAQ==", "context": "x"})) is None
    assert p.receive(json.dumps({"result": "ok", "messageId": "CAEQAQ=="})) is None


def test_an_unreadable_receipt_is_a_frame_error_and_changes_nothing() -> None:
    p = producer()
    p.send(Envelope(b"x"), "h")
    with pytest.raises(wire.FrameError):
        p.receive('{"result": "ok", "context": "1"}')
    assert p.contexts() == [1]


def test_the_window_is_max_pending_unconfirmed_sends() -> None:
    p = producer(max_pending=2)
    p.send(Envelope(b"1"), "a")
    assert p.room() == 1 and p.can_send()
    p.send(Envelope(b"2"), "b")
    assert p.room() == 0 and not p.can_send()
    with pytest.raises(NotSent, match="max_pending"):
        p.send(Envelope(b"3"), "c")
    p.receive(ok(1))
    assert p.room() == 1 and p.send(Envelope(b"3"), "c").context == 3


def test_an_oversized_frame_is_refused_and_takes_no_room() -> None:
    p = producer(max_frame_size=100)
    with pytest.raises(MessageTooLarge, match="max_send_frame_size"):
        p.send(Envelope(b"x" * 200), "big")
    assert p.unconfirmed == 0 and p.send(Envelope(b"small"), "s").context == 2


@pytest.mark.parametrize(
    ("reason", "kind", "may_be_stored"),
    [
        ("topic is terminated", SendError, False),
        ("ProducerBlockedQuotaExceededException: over quota", BacklogQuotaExceeded, False),
        ("PulsarClientException$TimeoutException: late", OutcomeUnknown, True),
    ],
)
def test_a_refusal_of_the_first_copy_says_whether_it_may_be_stored(
    reason: str, kind: type[Exception], may_be_stored: bool
) -> None:
    p = producer()
    p.send(Envelope(b"x"), "h")
    p.written(1)
    event = p.receive(refused(1, reason))
    assert isinstance(event, Failed) and event.handle == "h"
    assert type(event.error) is kind and reason in str(event.error)
    assert isinstance(event.error, OutcomeUnknown) is may_be_stored


def test_after_a_reconnect_the_unconfirmed_frames_are_resent_in_order() -> None:
    p = producer()
    outs = [p.send(Envelope(bytes([i])), f"h{i}") for i in range(4)]
    for out in outs[:3]:
        p.written(out.context)  # the fourth never went out
    p.receive(ok(2))
    again = p.frames_to_resend()
    assert [o.context for o in again] == [1, 3, 4]
    assert [o.frame for o in again] == [outs[0].frame, outs[2].frame, outs[3].frame]
    for out in again:
        p.written(out.context)
    # a refusal of a resent copy: the copy before it may be stored
    first = p.receive(refused(1, "topic is terminated"))
    assert isinstance(first, Failed) and isinstance(first.error, OutcomeUnknown)
    assert isinstance(first.error.__cause__, SendError) and "resent" in str(first.error)
    # the fourth went out only once: its refusal is a plain refusal
    fourth = p.receive(refused(4, "topic is terminated"))
    assert isinstance(fourth, Failed) and type(fourth.error) is SendError


def test_written_after_the_receipt_changes_nothing() -> None:
    p = producer()
    p.send(Envelope(b"x"), "h")
    p.receive(ok(1))
    p.written(1)
    assert p.unconfirmed == 0 and p.frames_to_resend() == []


def test_giving_up_fails_every_send_written_ones_as_outcome_unknown() -> None:
    p = producer()
    p.send(Envelope(b"1"), "written")
    p.written(1)
    p.send(Envelope(b"2"), "never")
    lost = ConnectionLost("gave up reconnecting")
    events = {e.handle: e.error for e in p.fail(lost)}
    assert isinstance(events["written"], OutcomeUnknown) and "may be stored" in str(
        events["written"]
    )
    assert isinstance(events["written"].__cause__, ConnectionLost)
    never = events["never"]
    assert type(never) is ConnectionLost and never.__cause__ is lost
    assert p.unconfirmed == 0 and p.fail(lost) == []


def test_closing_fails_every_send() -> None:
    p = producer()
    p.send(Envelope(b"1"), "written")
    p.written(1)
    p.send(Envelope(b"2"), "never")
    events = {e.handle: e.error for e in p.close()}
    assert isinstance(events["written"], OutcomeUnknown)
    assert isinstance(events["written"].__cause__, Closed)
    assert type(events["never"]) is Closed and "closed" in str(events["never"])


def test_prepare_builds_without_recording_and_record_keeps_the_window() -> None:
    p = producer(max_pending=1)
    first, second = p.prepare(Envelope(b"1")), p.prepare(Envelope(b"2"))
    assert (first.context, second.context, p.unconfirmed) == (1, 2, 0)
    p.record(first, "a")
    with pytest.raises(NotSent):
        p.record(second, "b")
    assert p.receive(ok(1)) == Confirmed("a", MessageId("s", 1, 1)) and p.contexts() == []
