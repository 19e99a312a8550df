"""WebSocket routes and frames (docs/protocol.md §6-§7) and delivery rules (§9), real sockets."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
import websocket
from streamfw_macrometa.emulator import Emulator

from streamfw.testing import ManualClock
from tests.emulator.helpers import Api, ack, close_code, nothing, payload, recv, refused, send


@pytest.fixture
def clocked() -> Iterator[tuple[Api, ManualClock]]:
    """A private emulator on a manual clock (nack delays, ack timeouts, OTP expiry)."""
    clock = ManualClock()
    with Emulator.start(port=0, clock=clock) as emu:
        yield Api(emu), clock


# ------------------------------------------------------------------------------ producer


def test_producer_receipts_echo_context_and_ids_grow(api: Api, topic: str) -> None:
    producer = api.producer(topic)
    first = send(producer, b"a", context="c1")
    second = send(producer, b"b")
    assert first["result"] == "ok" and first["context"] == "c1"
    assert second["result"] == "ok" and "context" not in second
    assert first["messageId"] != second["messageId"]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", 3),
        ("[1, 2]", 3),
        (json.dumps({"context": "x"}), 7),  # payload missing
        (json.dumps({"payload": "***", "context": "x"}), 7),  # not base64
        (json.dumps({"payload": "aGk=", "properties": "nope"}), 3),
    ],
)
def test_bad_producer_frames_get_send_error_and_socket_stays(
    api: Api, topic: str, frame: str, code: int
) -> None:
    producer = api.producer(topic)
    producer.send(frame)
    receipt = recv(producer)
    assert receipt["result"] == f"send-error:{code}" and receipt["errorMsg"]
    if '"context"' in frame:
        assert receipt["context"] == "x"
    assert send(producer, b"still fine")["result"] == "ok"


def test_properties_and_key_reach_the_consumer(api: Api, topic: str) -> None:
    consumer = api.consumer(topic, "s")
    send(api.producer(topic), b"p", properties={"k": "v"}, key="order-1")
    frame = recv(consumer)
    assert frame["properties"] == {"k": "v"} and frame["key"] == "order-1"
    assert frame["redeliveryCount"] == 0 and frame["publishTime"].endswith("Z")


# ------------------------------------------------------------------------- consumer basics


def test_exclusive_second_consumer_gets_409_first_keeps_receiving(api: Api, topic: str) -> None:
    first = api.consumer(topic, "s", subscriptionType="Exclusive")
    err = refused(api, api.ws_url("consumer", topic, "s"))
    assert err.status_code == 409
    assert b"Exclusive consumer is already connected" in err.resp_body
    err = refused(api, api.ws_url("consumer", topic, "s", subscriptionType="Shared"))
    assert err.status_code == 409 and b"different type" in err.resp_body
    send(api.producer(topic), b"m")
    assert payload(recv(first)) == b"m"


def test_ack_stops_redelivery_and_durable_resume(api: Api, topic: str) -> None:
    producer = api.producer(topic)
    consumer = api.consumer(topic, "s")
    send(producer, b"one")
    ack(consumer, recv(consumer))
    send(producer, b"two")
    assert payload(recv(consumer)) == b"two"  # not acked
    consumer.close()
    send(producer, b"three")
    again = api.consumer(topic, "s")
    frame = recv(again)
    assert payload(frame) == b"two" and frame["redeliveryCount"] == 0  # Exclusive: Pulsar's 0
    ack(again, frame)
    assert payload(recv(again)) == b"three"


def test_new_subscription_starts_at_latest_unless_earliest(api: Api, topic: str) -> None:
    send(api.producer(topic), b"before")
    late = api.consumer(topic, "late")
    assert nothing(late)
    early = api.consumer(topic, "early", subscriptionInitialPosition="Earliest")
    assert payload(recv(early)) == b"before"


def test_failover_standby_takes_over(api: Api, topic: str) -> None:
    a = api.consumer(topic, "f", subscriptionType="Failover")
    b = api.consumer(topic, "f", subscriptionType="Failover")
    producer = api.producer(topic)
    send(producer, b"1")
    # Which one is active is Pulsar's hash of names (docs/protocol.md §15.4): find out.
    active, standby = (b, a) if nothing(a, 1.5) else (a, b)
    if active is b:
        assert payload(recv(b)) == b"1"  # unacked
    assert nothing(standby)
    active.close()
    frame = recv(standby)  # after the failover delay
    assert payload(frame) == b"1" and frame["redeliveryCount"] == 0


def test_shared_round_robin_and_handback(api: Api, topic: str) -> None:
    a = api.consumer(topic, "sh", subscriptionType="Shared")
    b = api.consumer(topic, "sh", subscriptionType="Shared")
    producer = api.producer(topic)
    for i in range(4):
        send(producer, b"%d" % i)
    got_a = [payload(recv(a)) for _ in range(2)]
    got_b = [payload(recv(b)) for _ in range(2)]
    assert sorted(got_a + got_b) == [b"0", b"1", b"2", b"3"]
    a.close()
    back = sorted(payload(recv(b)) for _ in range(2))
    assert back == sorted(got_a)


def test_receiver_queue_limits_in_flight(api: Api, topic: str) -> None:
    consumer = api.consumer(topic, "s", receiverQueueSize="2")
    producer = api.producer(topic)
    for i in range(3):
        send(producer, b"%d" % i)
    first, _ = recv(consumer), recv(consumer)
    assert nothing(consumer)
    ack(consumer, first)
    assert payload(recv(consumer)) == b"2"


def test_nack_redelivers_after_delay(clocked: tuple[Api, ManualClock], name: str) -> None:
    api, clock = clocked
    topic = api.create(name)
    consumer = api.consumer(
        topic, "s", subscriptionType="Shared", negativeAckRedeliveryDelay="5000"
    )
    send(api.producer(topic), b"m")
    frame = recv(consumer)
    consumer.send(json.dumps({"type": "negativeAcknowledge", "messageId": frame["messageId"]}))
    assert nothing(consumer)
    clock.advance(5)
    api.emu.poke()
    again = recv(consumer)
    assert again["messageId"] == frame["messageId"] and again["redeliveryCount"] == 1


def test_nack_with_real_timer(api: Api, topic: str) -> None:
    """Without poke: the loop's call_at timer fires by itself."""
    consumer = api.consumer(topic, "s", negativeAckRedeliveryDelay="50")
    send(api.producer(topic), b"m")
    frame = recv(consumer)
    consumer.send(json.dumps({"type": "negativeAcknowledge", "messageId": frame["messageId"]}))
    assert recv(consumer, timeout=2)["messageId"] == frame["messageId"]


def test_ack_timeout_redelivers(clocked: tuple[Api, ManualClock], name: str) -> None:
    api, clock = clocked
    topic = api.create(name)
    consumer = api.consumer(topic, "s", ackTimeoutMillis="1000")
    send(api.producer(topic), b"m")
    first = recv(consumer)
    clock.advance(1.5)
    api.emu.poke()
    assert recv(consumer)["messageId"] == first["messageId"]


def test_consumer_frames_errors_keep_socket(api: Api, topic: str) -> None:
    consumer = api.consumer(topic, "s")
    cases = [
        ("{broken", 3),
        (json.dumps({"type": "dance"}), 3),
        (json.dumps({"type": "permit", "permitMessages": 1}), 3),
        (json.dumps({"messageId": "%%%"}), 3),
        (json.dumps({"messageId": base64.b64encode(b"\x08\x63\x10\x01").decode()}), 3),
        (json.dumps({"messageId": "CAEQAA=="}), 3),  # shape fine, never delivered
    ]
    for frame, code in cases:
        consumer.send(frame)
        answer = recv(consumer)
        assert answer["code"] == code and answer["error"], frame
    consumer.send(json.dumps({"type": "isEndOfTopic"}))
    assert recv(consumer) == {"endOfTopic": False}
    send(api.producer(topic), b"ok")
    assert payload(recv(consumer)) == b"ok"


def test_unsubscribe_frame(api: Api, topic: str) -> None:
    consumer = api.consumer(topic, "gone")
    consumer.send(json.dumps({"type": "unsubscribe"}))
    assert close_code(consumer) == 1000
    api.streams("GET", "")
    result = api.streams("GET", f"/{topic}/subscriptions").json()["result"]
    assert "gone" not in result


def test_unsubscribe_refused_with_others_attached(api: Api, topic: str) -> None:
    a = api.consumer(topic, "sh", subscriptionType="Shared")
    api.consumer(topic, "sh", subscriptionType="Shared")
    a.send(json.dumps({"type": "unsubscribe"}))
    assert recv(a)["code"] == 2


def test_ping_is_answered_and_pongs_are_not_required(api: Api, topic: str) -> None:
    consumer = api.consumer(topic, "s")
    consumer.ping(b"hello")
    consumer.settimeout(3)
    opcode, data = consumer.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_PONG and data == b"hello"


# -------------------------------------------------------------------------------- reader


def test_reader_earliest_latest_and_after_id(api: Api, topic: str) -> None:
    producer = api.producer(topic)
    ids = [send(producer, b"%d" % i)["messageId"] for i in range(3)]
    earliest = api.reader(topic, messageId="earliest")
    frames = [recv(earliest) for _ in range(3)]
    assert [payload(f) for f in frames] == [b"0", b"1", b"2"]
    for f in frames:
        ack(earliest, f)
    latest = api.reader(topic)  # default latest
    after = api.reader(topic, messageId=ids[0])
    assert [payload(recv(after)) for _ in range(2)] == [b"1", b"2"]
    assert nothing(latest)
    send(producer, b"3")
    assert payload(recv(latest)) == b"3"
    # a reader's {"messageId"} frames free its window but drop nothing for later readers
    for ws in (earliest, after, latest):
        ws.close()
    again = api.reader(topic, messageId="earliest")
    assert payload(recv(again)) == b"0"
    again.close()
    # readers leave no subscription behind
    api.streams("GET", "")
    assert api.streams("GET", f"/{topic}/subscriptions").json()["result"] == []


def test_reader_bad_message_id_is_400(api: Api, topic: str) -> None:
    assert refused(api, api.ws_url("reader", topic, messageId="%%")).status_code == 400


def test_reader_after_an_id_from_before_a_restart_starts_at_the_earliest(
    api: Api, topic: str
) -> None:
    """Ledger 999 is older than any ledger of this run: every retained message is after it."""
    producer = api.producer(topic)
    send(producer, b"kept")
    older = base64.b64encode(b"\x08\xe7\x07\x10\x05").decode()  # ledger 999, entry 5
    reader = api.reader(topic, messageId=older)
    assert payload(recv(reader)) == b"kept"
    reader.close()
    producer.close()


# ----------------------------------------------------------------------- handshake errors


def test_double_slash_paths_are_collapsed(api: Api, topic: str) -> None:
    url = api.ws_url("producer", topic).replace("/_ws/", "//_ws/")
    producer = api.connect(url)
    assert send(producer, b"x")["result"] == "ok"


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda a, t: a.ws_url("consumer", t), 400),  # no subscription
        (lambda a, t: a.ws_url("consumer", t, "s", subscriptionType="Bogus"), 400),
        (lambda a, t: a.ws_url("consumer", t, "s", pullMode="sometimes"), 400),
        (lambda a, t: a.ws_url("consumer", t, "s", maxRedeliverCount="0"), 400),
        (lambda a, t: a.ws_url("consumer", t, "s", deadLetterTopic="c8globals.d"), 400),
        (lambda a, t: a.ws_url("consumer", t, "s", receiverQueueSize="many"), 400),
        (lambda a, t: a.ws_url("producer", t).replace("persistent", "non-persistent"), 400),
        (lambda a, t: a.ws_url("producer", t, namespace="c8local._system"), 400),
        (lambda a, t: a.ws_url("producer", t, namespace="weird"), 400),
        (lambda a, t: a.ws_url("producer", t, tenant="someone-else"), 403),
        (lambda a, t: a.ws_url("producer", t).replace("/demo/", "//"), 403),  # empty tenant
        (lambda a, t: a.ws_url("producer", t, namespace="c8global.nofabric"), 404),
        (lambda a, t: a.ws_url("producer", "c8globals.missing-stream"), 404),
        (lambda a, t: a.ws_url("producer", "nottopic"), 404),
        (lambda a, t: a.ws_url("producer", t).replace("/producer/", "/spy/"), 404),
    ],
)
def test_handshake_refusals(api: Api, topic: str, mutate: object, status: int) -> None:
    url = mutate(api, topic)  # type: ignore[operator]
    err = refused(api, url)
    assert err.status_code == status, err.resp_body
    if status == 400:
        assert b"Invalid query params" in err.resp_body


def test_plain_get_on_a_websocket_route_is_400(api: Api, topic: str) -> None:
    url = api.ws_url("producer", topic).replace("ws://", "http://")
    assert api.session.get(url, headers=api.headers, timeout=5).status_code == 400


def test_auto_create_switch() -> None:
    with Emulator.start(port=0, auto_create=True) as emu:
        api = Api(emu)
        producer = api.producer("c8locals.born")
        assert send(producer, b"x")["result"] == "ok"
        topics = [e["topic"] for e in api.streams("GET", "").json()["result"]]
        assert topics == ["c8locals.born"]


def test_force_delete_closes_producer_and_consumer(api: Api, topic: str) -> None:
    producer = api.producer(topic)
    consumer = api.consumer(topic, "s")
    assert api.streams("DELETE", f"/{topic}?force=true").status_code == 200
    assert close_code(producer) == close_code(consumer) == 1001


# ------------------------------------------------------------------------- limits, floods


def test_oversized_frame_closes_that_socket_only(api: Api, topic: str) -> None:
    consumer = api.consumer(topic, "s")
    big = api.producer(topic)
    kept = send(big, b"kept")
    big.send(json.dumps({"payload": "A" * (1024 * 1024 + 8)}))
    assert close_code(big) in (1009, -1)  # message too big (or the reset won the race)
    assert recv(consumer)["messageId"] == kept["messageId"]  # accepted before: not lost
    assert send(api.producer(topic), b"after")["result"] == "ok"
    assert payload(recv(consumer)) == b"after"


def test_connection_limit_is_503_and_others_keep_working(name: str) -> None:
    with Emulator.start(port=0, max_connections=3) as emu:
        api = Api(emu)
        topic = api.create(name)
        held = [api.producer(topic), api.consumer(topic, "s")]
        third = api.producer(topic)
        err = refused(api, api.ws_url("producer", topic))
        assert err.status_code == 503
        assert b"Too many connections" in err.resp_body
        assert send(held[0], b"m")["result"] == "ok"
        assert payload(recv(held[1])) == b"m"
        third.close()
        held[0].close()
        for _ in range(50):  # the server notices the closes asynchronously
            if api.streams("GET", "").status_code == 200:
                break
        assert api.streams("GET", "").status_code == 200


def test_stop_closes_every_socket(name: str) -> None:
    emu = Emulator.start(port=0)
    api = Api(emu)
    topic = api.create(name)
    consumer = api.consumer(topic, "s")
    emu.stop()
    emu.stop()  # idempotent
    assert close_code(consumer) == 1001


def test_abrupt_disconnect_hands_messages_back(api: Api, topic: str) -> None:
    consumer = api.consumer(topic, "s")
    send(api.producer(topic), b"m")
    first = recv(consumer)
    consumer.sock.close()  # no close frame: the TCP connection just goes away
    for _ in range(50):  # until the server has noticed (409 while it has not)
        try:
            again = api.consumer(topic, "s")
            break
        except websocket.WebSocketBadStatusException as exc:
            assert exc.status_code == 409
    frame = recv(again)
    assert frame["messageId"] == first["messageId"] and frame["redeliveryCount"] == 0


def test_many_misbehaving_clients_do_not_disturb_others(api: Api, topic: str) -> None:
    good = api.consumer(topic, "good")
    producer = api.producer(topic)
    bad = [api.producer(topic) for _ in range(20)]
    for ws in bad:
        ws.send("garbage")
    for ws in bad[:10]:
        ws.sock.close()
    for i in range(20):
        assert send(producer, b"%d" % i)["result"] == "ok"
    got = []
    for _ in range(20):
        frame = recv(good)
        got.append(payload(frame))
        ack(good, frame)
    assert got == [b"%d" % i for i in range(20)]
    for ws in bad[10:]:
        assert recv(ws)["result"] == "send-error:3"
        ws.close()


def test_rest_paths_collapse_double_slashes(api: Api) -> None:
    r = api.request("GET", "//_fabric//_system/_api/streams")
    assert r.status_code == 200 and r.json()["error"] is False


def test_message_ttl_expires_unacked_messages(clocked: tuple[Api, ManualClock], name: str) -> None:
    api, clock = clocked
    topic = api.create(name)
    api.consumer(topic, "s").close()
    producer = api.producer(topic)
    send(producer, b"old")
    assert api.streams("POST", "/ttl/10").status_code == 200
    clock.advance(5)
    send(producer, b"young")
    clock.advance(6)
    api.emu.poke()
    assert api.streams("GET", f"/{topic}/backlog").json()["result"]["messageBacklog"] == 1
    consumer = api.consumer(topic, "s")
    assert payload(recv(consumer)) == b"young"
