"""Transport contract tests: subclass ``TransportContract`` and provide a ``harness`` fixture.

Every test talks to the public API only, so the same checks run on every transport whose
plugin registers a harness (``streamfw_register_harnesses``), built-in or third-party. A test
that fails on one transport only is a bug there (or a capability to document).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from streamfw.api import ProducerOptions
from streamfw.client import Client, Stream
from streamfw.consumer import Consumer
from streamfw.errors import (
    AlreadyExists,
    DecodeError,
    InUse,
    StreamNotFound,
    SubscriptionBusy,
    SubscriptionNotFound,
)
from streamfw.message import Envelope, Message
from streamfw.testing.harness import Harness

WAIT = 5.0  # generous upper bound for a message that must arrive


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def receive_all(consumer: Consumer, settle: float, *, ack: bool = True) -> list[Message]:
    """Everything the consumer gets until it has been quiet for ``settle`` seconds."""
    got = []
    while (msg := consumer.receive(settle)) is not None:
        got.append(msg)
        if ack:
            msg.ack()
    return got


def must_receive(consumer: Consumer) -> Message:
    msg = consumer.receive(WAIT)
    assert msg is not None, f"nothing arrived within {WAIT} s"
    return msg


class TransportContract:
    """The behaviour every streamfw transport must show. Needs a ``harness`` fixture."""

    @pytest.fixture
    def client(self, harness: Harness) -> Iterator[Client]:
        with harness.client() as client:
            yield client

    @pytest.fixture
    def stream(self, client: Client) -> Stream:
        return client.stream(unique("orders")).create()

    # ------------------------------------------------------------------------ admin

    def test_create_exists_list_delete(self, client: Client) -> None:
        s = client.stream(unique("admin"))
        assert not s.exists()
        s.create()
        assert s.exists()
        assert s.name in [x.name for x in client.streams(local=False)]
        with pytest.raises(AlreadyExists):
            s.create()
        s.create(exist_ok=True)
        s.delete()
        assert not s.exists()
        with pytest.raises(StreamNotFound):
            s.delete()

    def test_local_and_global_streams_are_distinct(self, client: Client) -> None:
        name = unique("scoped")
        client.stream(name, local=True).create()
        assert client.stream(name, local=True).exists()
        assert not client.stream(name).exists()
        assert name in [x.name for x in client.streams(local=True)]
        assert name not in [x.name for x in client.streams(local=False)]

    def test_missing_stream_is_reported(self, client: Client) -> None:
        missing = client.stream(unique("missing"))
        with pytest.raises(StreamNotFound, match=missing.name):
            missing.consumer("sub")
        with pytest.raises(StreamNotFound):
            missing.producer()

    def test_delete_refused_while_consumers_attached_unless_forced(self, stream: Stream) -> None:
        consumer = stream.consumer("sub")
        with pytest.raises(InUse):
            stream.delete()
        stream.delete(force=True)
        assert not stream.exists()
        consumer.close()

    def test_subscriptions_backlog_and_delete(self, stream: Stream, harness: Harness) -> None:
        with stream.consumer("billing"):
            pass
        with stream.producer() as p:
            for i in range(3):
                p.send(i)
        infos = {s.name: s for s in stream.subscriptions()}
        assert infos["billing"].backlog == 3 and infos["billing"].consumers == 0
        assert stream.backlog() == 3
        stream.clear_backlog("billing")
        assert stream.backlog() == 0
        c = stream.consumer("billing")
        with pytest.raises(InUse):
            stream.delete_subscription("billing")
        c.close()
        stream.delete_subscription("billing")
        assert stream.subscriptions() == []
        with pytest.raises(SubscriptionNotFound):
            stream.delete_subscription("billing")

    # --------------------------------------------------------------------- delivery

    def test_delivers_once_then_nothing_after_ack(self, stream: Stream, harness: Harness) -> None:
        with stream.consumer("sub") as c, stream.producer() as p:
            mid = p.send({"n": 1}, properties={"k": "v"}, key="user-7")
            msg = must_receive(c)
            assert (msg.id, msg.value, msg.key, msg.properties["k"]) == (
                mid,
                {"n": 1},
                "user-7",
                "v",
            )
            assert msg.redelivery_count == 0 and msg.stream == stream.name
            msg.ack()
            assert c.receive(harness.settle) is None

    def test_values_round_trip(self, stream: Stream) -> None:
        values = ["café ☕ 𝄞", b"\x00\xff\xfe", {"nested": [1, 2.5, None, True, "é"]}, [], 0, ""]
        with stream.consumer("sub") as c, stream.producer() as p:
            for v in values:
                p.send(v)
            got = [must_receive(c) for _ in values]
        assert [m.value for m in got] == values

    def test_codec_pipeline_travels_with_the_message(self, stream: Stream) -> None:
        with stream.consumer("sub") as c, stream.producer(codec="json+zlib") as p:
            p.send({"big": "x" * 1000})
            msg = must_receive(c)
        assert msg.value == {"big": "x" * 1000}
        assert len(msg.payload) < 100  # it really was compressed

    def test_undecodable_payload_surfaces_with_the_message(
        self, client: Client, stream: Stream, harness: Harness
    ) -> None:
        # A plain client (no codec property) wrote something this JSON consumer cannot read.
        with stream.consumer("sub", codec="json") as c:
            raw = client.transport.open_producer(stream.ref, ProducerOptions())
            raw.send(Envelope(b"\xff not json")).result(WAIT)
            raw.send(Envelope(b'{"ok": true}')).result(WAIT)
            raw.close()
            with pytest.raises(DecodeError) as err:
                c.receive(WAIT)
            assert err.value.undecodable is not None
            assert err.value.undecodable.payload == b"\xff not json"
            err.value.undecodable.ack()
            assert must_receive(c).value == {"ok": True}  # the consumer keeps going
            assert c.receive(harness.settle) is None

    def test_new_subscription_starts_at_latest_unless_earliest(self, stream: Stream) -> None:
        with stream.producer() as p:
            p.send("before")
            with (
                stream.consumer("late") as late,
                stream.consumer("early", initial_position="earliest") as early,
            ):
                p.send("after")
                assert must_receive(late).value == "after"
                assert [must_receive(early).value for _ in range(2)] == ["before", "after"]

    def test_returning_consumer_resumes_after_last_ack(self, stream: Stream) -> None:
        with stream.producer() as p:
            with stream.consumer("sub") as c:
                for i in range(3):
                    p.send(i)
                must_receive(c).ack()
            p.send(3)  # published while nobody is attached: waits in the backlog
            with stream.consumer("sub") as c:
                got = [must_receive(c) for _ in range(3)]
        assert [m.value for m in got] == [1, 2, 3]
        assert [m.redelivery_count for m in got] == [0, 0, 0]  # Pulsar counts none on Exclusive

    # ------------------------------------------------------------------ exclusivity

    def test_exclusive_second_consumer_is_refused(self, stream: Stream, harness: Harness) -> None:
        first = stream.consumer("consumer-subscription")
        with pytest.raises(SubscriptionBusy) as err:
            stream.consumer("consumer-subscription")
        assert "consumer-subscription" in str(err.value)
        assert err.value.subscription == "consumer-subscription"
        with stream.producer() as p:
            p.send("still mine")
        assert must_receive(first).value == "still mine"
        first.close()

    def test_exclusive_successor_gets_unacked_first(self, stream: Stream) -> None:
        with stream.producer() as p:
            first = stream.consumer("sub")
            for i in range(4):
                p.send(i)
            a, b = must_receive(first), must_receive(first)
            a.ack()
            first.close()
            with stream.consumer("sub") as second:
                p.send(4)
                got = [must_receive(second).value for _ in range(4)]
        assert got == [b.value, 2, 3, 4]

    def test_other_type_refused_while_attached(self, stream: Stream) -> None:
        with stream.consumer("sub", type="shared"), pytest.raises(SubscriptionBusy, match="type"):
            stream.consumer("sub", type="failover")

    def test_failover_standby_takes_over(self, stream: Stream, harness: Harness) -> None:
        # Which one is active is Pulsar's hash of names (docs/protocol.md §15.4): find out.
        a = stream.consumer("sub", type="failover")
        b = stream.consumer("sub", type="failover")
        harness.advance(2)  # past the failover delay, should b have taken over from a
        with stream.producer() as p:
            p.send("one")
            p.send("two")
            deadline = time.monotonic() + WAIT
            while True:
                if (first := a.receive(harness.settle)) is not None:
                    active, standby = a, b
                    break
                if (first := b.receive(harness.settle)) is not None:
                    active, standby = b, a
                    break
                assert time.monotonic() < deadline, f"nothing arrived within {WAIT} s"
            assert first.value == "one"
            assert standby.receive(harness.settle) is None
            active.close()
            harness.advance(2)  # the successor starts after the failover delay
            got = [must_receive(standby) for _ in range(2)]
        assert [m.value for m in got] == ["one", "two"]
        assert got[0].redelivery_count == 0  # Pulsar counts none on Failover
        standby.close()

    def test_shared_spreads_and_never_doubles(self, stream: Stream, harness: Harness) -> None:
        c1 = stream.consumer("sub", type="shared", receiver_queue_size=1)
        c2 = stream.consumer("sub", type="shared", receiver_queue_size=1)
        with stream.producer() as p:
            for i in range(6):
                p.send(i)
        seen: list[int] = []
        for _ in range(3):
            for c in (c1, c2):
                msg = must_receive(c)
                seen.append(msg.value)
                msg.ack()
        assert sorted(seen) == list(range(6))
        c1.close()
        c2.close()

    def test_shared_leaver_messages_go_to_the_others(self, stream: Stream) -> None:
        c1 = stream.consumer("sub", type="shared", receiver_queue_size=5)
        c2 = stream.consumer("sub", type="shared", receiver_queue_size=5)
        with stream.producer() as p:
            for i in range(4):
                p.send(i)
        mine = [must_receive(c1), must_receive(c1)]
        c1.close()
        got = receive_all(c2, 1.0)
        assert sorted(m.value for m in got) == [0, 1, 2, 3]
        assert {m.value for m in mine} <= {m.value for m in got}
        assert all(m.redelivery_count == 0 for m in got)  # a consumer leaving is no failure
        c2.close()

    # --------------------------------------------------------------- nack / timeouts

    def test_nack_redelivers_after_the_delay(self, stream: Stream, harness: Harness) -> None:
        with stream.consumer("sub", type="shared", nack_delay=30) as c, stream.producer() as p:
            p.send("retry me")
            first = must_receive(c)
            first.nack()
            assert c.receive(harness.settle) is None
            harness.advance(31)
            again = must_receive(c)
            assert (again.value, again.redelivery_count) == ("retry me", 1)
            again.ack()
            harness.advance(100)
            assert c.receive(harness.settle) is None

    def test_ack_timeout_redelivers(self, stream: Stream, harness: Harness) -> None:
        with stream.consumer("sub", type="shared", ack_timeout=10) as c, stream.producer() as p:
            p.send("slow")
            assert must_receive(c).redelivery_count == 0
            harness.advance(11)
            again = must_receive(c)
            assert (again.value, again.redelivery_count) == ("slow", 1)
            again.ack()
            harness.advance(11)
            assert c.receive(harness.settle) is None

    def test_nack_through_a_copy_held_across_an_ack_timeout(
        self, stream: Stream, harness: Harness
    ) -> None:
        """Copies of one message are one message: nacking the old copy hands it back once,
        and the copy received next can be acked (docs/concepts/acks.md)."""
        with (
            stream.consumer("sub", ack_timeout=1.0, nack_delay=0.5) as c,
            stream.producer() as p,
        ):
            p.send("x")
            first = must_receive(c)
            harness.advance(2)  # the ack timeout hands it back: a second copy is on its way
            time.sleep(harness.settle)  # ... and has reached the client
            first.nack()  # through the first copy
            harness.advance(1)  # past the nack delay
            m = must_receive(c)
            assert m.value == "x" and m.redelivery_count == 0  # Exclusive: Pulsar counts none
            m.ack()
            harness.advance(100)
            assert c.receive(harness.settle) is None

    def test_ack_through_a_copy_held_across_an_ack_timeout(
        self, stream: Stream, harness: Harness
    ) -> None:
        with stream.consumer("sub", ack_timeout=1.0) as c, stream.producer() as p:
            p.send("x")
            first = must_receive(c)
            harness.advance(2)
            time.sleep(harness.settle)
            first.ack()  # the message is acked: the queued second copy is never shown
            first.ack()  # idempotent
            harness.advance(100)
            assert c.receive(harness.settle) is None
            first.nack()  # after the ack: nothing to hand back, no error

    def test_receiver_queue_bounds_unacked_in_flight(
        self, stream: Stream, harness: Harness
    ) -> None:
        with stream.consumer("sub", receiver_queue_size=2) as c, stream.producer() as p:
            for i in range(5):
                p.send(i)
            held = [must_receive(c), must_receive(c)]
            assert c.receive(harness.settle) is None  # stalled until something is acked
            held[0].ack()
            assert must_receive(c).value == 2

    # ---------------------------------------------------------------------- readers

    def test_reader_positions(self, stream: Stream) -> None:
        with stream.producer() as p:
            ids = [p.send(i) for i in range(3)]
            with stream.reader("earliest") as r:
                assert [must_receive(r).value for _ in range(3)] == [0, 1, 2]
            with stream.reader(ids[0]) as r:
                assert must_receive(r).value == 1
            with stream.reader("latest") as r:
                p.send(3)
                assert must_receive(r).value == 3
        assert stream.subscriptions() == []  # readers leave no durable subscription

    def test_reader_queue_frees_as_the_application_receives(self, stream: Stream) -> None:
        # A reader acks nothing (Pulsar's reader acks for the application): a message counts
        # against its receiver queue until the application receives it, never longer.
        with stream.producer() as p, stream.reader("earliest", receiver_queue_size=2) as r:
            for i in range(7):
                p.send(i)
            assert [must_receive(r).value for _ in range(7)] == list(range(7))
