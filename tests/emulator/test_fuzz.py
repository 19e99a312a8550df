"""Random frames never break a socket or the server: every frame gets its answer."""

from __future__ import annotations

import json

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from tests.emulator.helpers import Api, payload, recv, send

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=8,
)
FRAMES = (
    st.text(max_size=50)
    | JSON.map(json.dumps)
    | st.fixed_dictionaries(
        {},
        optional={
            "payload": JSON,
            "messageId": JSON,
            "type": JSON,
            "context": JSON,
            "properties": JSON,
        },
    ).map(json.dumps)
)


def _harmless(frame: str) -> bool:
    """Leave out the two frames with legitimate effects (unsubscribe, isEndOfTopic)."""
    try:
        value = json.loads(frame)
    except ValueError:
        return True
    return not (isinstance(value, dict) and value.get("type") in ("unsubscribe", "isEndOfTopic"))


FUZZ = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)


@FUZZ
@given(frame=FRAMES)
def test_producer_answers_every_frame(api: Api, topic: str, frame: str) -> None:
    producer = api.producer(topic)
    producer.send(frame)
    receipt = recv(producer)
    assert receipt["result"] == "ok" or receipt["result"].startswith("send-error:")
    assert send(producer, b"next")["result"] == "ok"
    producer.close()


@FUZZ
@given(frame=FRAMES.filter(_harmless))
def test_consumer_survives_any_frame(api: Api, topic: str, frame: str) -> None:
    consumer = api.consumer(topic, "fuzz", subscriptionType="Shared")
    consumer.send(frame)
    consumer.send(json.dumps({"type": "isEndOfTopic"}))
    answers = [recv(consumer)]
    if "endOfTopic" not in answers[0]:
        answers.append(recv(consumer))
        assert "error" in answers[0] and isinstance(answers[0]["code"], int)
    assert answers[-1] == {"endOfTopic": False}
    send(api.producer(topic), b"still")
    frame_in = recv(consumer)
    assert payload(frame_in) == b"still"
    consumer.send(json.dumps({"messageId": frame_in["messageId"]}))
    consumer.close()
