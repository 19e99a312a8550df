"""Issue 11 over the emulator's real WebSocket API: Key_Shared, dead letters, pull mode with
permit frames, priorityLevel (docs/protocol.md §15), as a raw client sends them."""

from __future__ import annotations

import json

from tests.emulator.helpers import Api, ack, nothing, payload, recv, send


def nack(ws: object, frame: dict[str, object]) -> None:
    ws.send(json.dumps({"type": "negativeAcknowledge", "messageId": frame["messageId"]}))  # type: ignore[attr-defined]


def test_dead_letters_go_to_the_default_topic_with_their_origin(api: Api, topic: str) -> None:
    consumer = api.consumer(
        topic,
        "s",
        subscriptionType="Shared",
        maxRedeliverCount="1",
        negativeAckRedeliveryDelay="0",
    )
    producer = api.producer(topic)
    sent = send(producer, b"poison", properties={"trace": "t1"}, key="k")
    for count in (0, 1):
        frame = recv(consumer)
        assert (payload(frame), frame["redeliveryCount"]) == (b"poison", count)
        nack(consumer, frame)
    assert nothing(consumer, 0.5)  # dead-lettered: never delivered again
    reader = api.reader(f"{topic}-s-DLQ", messageId="earliest")
    dead = recv(reader)
    assert payload(dead) == b"poison" and dead["key"] == "k"
    assert dead["properties"]["trace"] == "t1"
    assert dead["properties"]["REAL_TOPIC"] == topic.split(".", 1)[1]
    assert dead["properties"]["ORIGIN_MESSAGE_ID"]
    assert sent["result"] == "ok"
    for ws in (consumer, producer, reader):
        ws.close()


def test_a_dead_letter_topic_can_be_named(api: Api, topic: str, name: str) -> None:
    consumer = api.consumer(
        topic,
        "s",
        subscriptionType="Shared",
        maxRedeliverCount="1",
        deadLetterTopic=f"c8globals.{name}-poison",
        negativeAckRedeliveryDelay="0",
    )
    producer = api.producer(topic)
    send(producer, b"x")
    for _ in range(2):
        nack(consumer, recv(consumer))
    reader = api.reader(f"c8globals.{name}-poison", messageId="earliest")
    assert payload(recv(reader)) == b"x"
    for ws in (consumer, producer, reader):
        ws.close()


def test_pull_mode_sends_only_what_permit_frames_ask_for(api: Api, topic: str) -> None:
    consumer = api.consumer(topic, "s", pullMode="true")
    producer = api.producer(topic)
    for i in range(5):
        send(producer, bytes([i]))
    assert nothing(consumer, 0.3)  # no permits yet
    consumer.send(json.dumps({"type": "permit", "permitMessages": 2}))
    got = [recv(consumer), recv(consumer)]
    assert [payload(f) for f in got] == [b"\0", b"\1"]
    for frame in got:
        ack(consumer, frame)
    assert nothing(consumer, 0.3)  # acks give no permits in pull mode
    consumer.send(json.dumps({"type": "permit", "permitMessages": 1}))
    assert payload(recv(consumer)) == b"\2"
    consumer.close()
    producer.close()


def test_a_permit_frame_without_pull_mode_is_refused(api: Api, topic: str) -> None:
    consumer = api.consumer(topic, "s")
    consumer.send(json.dumps({"type": "permit", "permitMessages": 2}))
    assert "Permit is not supported" in recv(consumer)["error"]
    consumer.close()


def test_key_shared_keeps_a_key_on_one_consumer(api: Api, topic: str) -> None:
    a = api.consumer(topic, "s", subscriptionType="Key_Shared", consumerName="a")
    b = api.consumer(topic, "s", subscriptionType="Key_Shared", consumerName="b")
    producer = api.producer(topic)
    for i in range(6):
        send(producer, bytes([i]), key="same")
    owner = a if not nothing(a, 1.0) else b  # the other one gets nothing of this key
    assert nothing(b if owner is a else a, 0.3)
    for ws in (a, b, producer):
        ws.close()


def test_failover_honours_priority_level(api: Api, topic: str) -> None:
    low = api.consumer(topic, "f", subscriptionType="Failover", priorityLevel="1")
    high = api.consumer(topic, "f", subscriptionType="Failover", priorityLevel="0")
    producer = api.producer(topic)
    send(producer, b"x")
    assert payload(recv(high, timeout=5)) == b"x"  # after the 1 s failover delay
    assert nothing(low, 0.2)
    for ws in (low, high, producer):
        ws.close()


def test_the_redelivery_count_rule_is_the_emulators_to_choose(name: str) -> None:
    """Pulsar counts no hand-back on Exclusive; ``--redelivery-count every_hand_back`` does."""
    import argparse
    import io
    import threading

    from streamfw_macrometa.emulator import Emulator
    from streamfw_macrometa.emulator.command import add_arguments, run

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for rule, second_count in (("pulsar", 0), ("every_hand_back", 1)):
        args = parser.parse_args(["--port", "0", "--redelivery-count", rule])
        stop, seen = threading.Event(), list[Emulator]()
        serve = {"stop": stop, "ready": seen.append, "out": io.StringIO()}
        thread = threading.Thread(target=run, args=(args,), kwargs=serve)
        thread.start()
        try:
            for _ in range(200):
                if seen:
                    break
                thread.join(0.05)
            api = Api(seen[0])
            topic = api.create(name)
            first = api.consumer(topic, "s")
            send(api.producer(topic), b"once")
            assert recv(first)["redeliveryCount"] == 0
            first.close()  # goes away without acking: the message is handed back
            again = recv(api.consumer(topic, "s"))
            assert (payload(again), again["redeliveryCount"]) == (b"once", second_count), rule
        finally:
            stop.set()
            thread.join(10)


def test_a_bad_failover_delay_is_refused_at_start(capsys: object) -> None:
    import argparse

    from streamfw_macrometa.emulator.command import add_arguments, run

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert run(parser.parse_args(["--port", "0", "--failover-delay", "-1"])) == 2
    assert "failover_delay" in capsys.readouterr().err  # type: ignore[attr-defined]
