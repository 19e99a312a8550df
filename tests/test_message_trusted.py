"""The values the core builds without checks (issue 10) are the values the checked
constructors build: equal, hashing, printing and pickling alike. Every empty ``Properties``
the core makes is one shared value, which nothing can change.
"""

from __future__ import annotations

import datetime as dt
import json
import pickle
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from streamfw_macrometa import wire

import streamfw
import streamfw.aio
import streamfw.message as message
from streamfw.api import ConsumerOptions, StreamRef
from streamfw.broker import Broker, Deliver
from streamfw.message import Delivery, Envelope, Message, MessageId, Properties
from streamfw.testing.strategies import keys, message_values
from streamfw.testing.strategies import properties as property_dicts

names = st.text(min_size=1, max_size=20)
numbers = st.integers(0, 2**63 - 1)
payloads = st.binary(max_size=64)
times = st.datetimes(timezones=st.just(dt.timezone.utc))
ids = st.builds(MessageId, names, numbers, numbers)
stream_names = st.from_regex(r"[A-Za-z0-9_.-]{1,40}", fullmatch=True)


def _alike(trusted: object, checked: object) -> None:
    """Equal both ways, one hash, one repr, one pickle, and equal again once unpickled."""
    assert trusted == checked and checked == trusted
    assert hash(trusted) == hash(checked)
    assert repr(trusted) == repr(checked)
    assert attrs.asdict(trusted, recurse=False) == attrs.asdict(checked, recurse=False)  # type: ignore[arg-type]
    assert pickle.dumps(trusted) == pickle.dumps(checked)
    back = pickle.loads(pickle.dumps(trusted))
    assert back == checked and hash(back) == hash(checked)


@given(stream=names, ledger=numbers, entry=numbers)
def test_a_trusted_message_id_is_the_checked_one(stream: str, ledger: int, entry: int) -> None:
    trusted = MessageId.trusted(stream, ledger, entry)
    _alike(trusted, MessageId(stream, ledger, entry))
    assert not trusted < MessageId(stream, ledger, entry) < trusted
    assert str(trusted) == f"{stream}:{ledger}:{entry}"


@given(mid=ids, payload=payloads, props=property_dicts, key=keys, when=times)
def test_a_trusted_delivery_is_the_checked_one(
    mid: MessageId, payload: bytes, props: dict[str, str], key: str | None, when: dt.datetime
) -> None:
    trusted = Delivery.trusted(mid, payload, Properties(props), key, when)
    _alike(trusted, Delivery(mid, payload, props, key, when))
    assert attrs.evolve(trusted, redelivery_count=2) == Delivery(mid, payload, props, key, when, 2)


@given(payload=payloads, props=property_dicts)
def test_a_trusted_envelope_is_the_checked_one(payload: bytes, props: dict[str, str]) -> None:
    _alike(Envelope.trusted(payload, Properties(props)), Envelope(payload, props))


@pytest.mark.parametrize("cls", [Message, streamfw.aio.Message], ids=["sync", "aio"])
@given(
    mid=ids,
    payload=payloads,
    props=property_dicts,
    key=keys,
    when=times,
    count=st.integers(0, 2**31 - 1),
    value=message_values,
    subscription=st.none() | names,
)
def test_message_maker_builds_the_message_its_constructor_builds(
    cls: type[Message] | type[streamfw.aio.Message],
    mid: MessageId,
    payload: bytes,
    props: dict[str, str],
    key: str | None,
    when: dt.datetime,
    count: int,
    value: object,
    subscription: str | None,
) -> None:
    delivery = Delivery(mid, payload, props, key, when, count)
    make = message.message_maker(cls)
    parts = (mid, value, payload, props, key, when, count, "orders", subscription)
    _alike(make("orders", subscription, None, delivery, value), cls(*parts))
    acker = object()  # out of equality, repr and hash: only who gets the acks
    made = make("orders", subscription, acker, delivery, value)
    assert made == cls(*parts, acker=acker)  # type: ignore[arg-type]
    assert made._acker is acker and made.value is value and made.id is mid


def test_a_received_message_is_the_one_its_constructor_builds() -> None:
    with streamfw.connect(f"loopback://trusted-{uuid.uuid4().hex}") as client:
        stream = client.stream("orders").create()
        with stream.consumer("sub") as consumer, stream.producer() as producer:
            producer.send({"n": 1}, properties={"p": "q"}, key="k")
            got = consumer.receive(5.0)
            assert got is not None
            checked = Message(
                got.id,
                got.value,
                got.payload,
                dict(got.properties),
                got.key,
                got.publish_time,
                got.redelivery_count,
                "orders",
                "sub",
            )
            assert (got.value, got.key, got.properties["p"]) == ({"n": 1}, "k", "q")
            assert got == checked and hash(got) == hash(checked)
            assert repr(got) == repr(checked)
            got.ack()
        assert stream.backlog() == 0


# ------------------------------------------------------------------- the shared empty one


def _frame(properties: object) -> str:
    """A consumer's message frame, its ``properties`` left out (``...``) or set."""
    text = wire.delivery_frame(Delivery(MessageId("s", 1, 2), b"x"))
    frame = json.loads(text)
    del frame["properties"]
    if properties is not ...:
        frame["properties"] = properties
    return json.dumps(frame)


def _publish(properties: object) -> str:
    frame: dict[str, Any] = {"payload": "eA=="}
    if properties is not ...:
        frame["properties"] = properties
    return json.dumps(frame)


def _stored() -> Properties:
    broker = Broker(clock=lambda: 0.0)
    ref = StreamRef("s")
    broker.create_stream(ref)
    broker.subscribe(ref, "sub", ConsumerOptions())
    broker.publish(ref, Envelope(b"x"))
    (event,) = broker.events()
    assert isinstance(event, Deliver)
    return event.delivery.properties


EMPTY: dict[str, Callable[[], Properties]] = {
    "Envelope(b'x')": lambda: Envelope(b"x").properties,
    "Envelope(b'x', {})": lambda: Envelope(b"x", {}).properties,
    "Envelope(b'x', None)": lambda: Envelope(b"x", None).properties,
    "Envelope(b'x', [])": lambda: Envelope(b"x", []).properties,
    "Delivery(id, b'x')": lambda: Delivery(MessageId("s", 0, 0), b"x").properties,
    "Delivery(id, b'x', {})": lambda: Delivery(MessageId("s", 0, 0), b"x", {}).properties,
    "publish frame, none": lambda: wire.parse_publish(_publish(...)).envelope.properties,
    "publish frame, {}": lambda: wire.parse_publish(_publish({})).envelope.properties,
    "publish frame, null": lambda: wire.parse_publish(_publish(None)).envelope.properties,
    "message frame, none": lambda: wire.parse_delivery("s", _frame(...)).delivery.properties,
    "message frame, {}": lambda: wire.parse_delivery("s", _frame({})).delivery.properties,
    "message frame, null": lambda: wire.parse_delivery("s", _frame(None)).delivery.properties,
    "stored by the broker": _stored,
}


@pytest.mark.parametrize("make", EMPTY.values(), ids=EMPTY.keys())
def test_every_empty_properties_the_core_makes_is_the_shared_one(
    make: Callable[[], Properties],
) -> None:
    assert make() is message.NO_PROPERTIES


def test_the_shared_empty_properties_cannot_be_changed() -> None:
    empty = message.NO_PROPERTIES
    with pytest.raises(TypeError):
        empty["a"] = "b"  # type: ignore[index]
    with pytest.raises(TypeError):
        del empty["a"]  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        empty.extra = 1  # type: ignore[attr-defined]
    for name in ("update", "pop", "popitem", "clear", "setdefault"):
        assert not hasattr(empty, name)
    # building non-empty ones next to it leaves it alone
    Envelope(b"x", {"a": "b"})
    wire.parse_publish(_publish({"a": "b"}))
    assert Envelope(b"x", {"a": "b"}).properties is not empty
    assert len(empty) == 0 and dict(empty) == {} and empty == Properties()
    assert hash(empty) == hash(Properties()) and repr(empty) == "{}"


# ------------------------------------------------------------------------ Properties.get


@given(data=st.data(), items=property_dicts, default=st.none() | st.text() | st.integers())
def test_properties_get_is_mapping_get(
    data: st.DataObject, items: dict[str, str], default: object
) -> None:
    props = Properties(items)
    key = data.draw(st.sampled_from(sorted(items)) if items else st.text(), label="key")
    missing = data.draw(st.text().filter(lambda k: k not in items), label="missing")
    probes: list[Any] = [key, missing, 1, None]  # a key not of the str the mapping holds too
    for k in probes:
        assert props.get(k) == Mapping.get(props, k) == items.get(k)
        assert props.get(k, default) == Mapping.get(props, k, default) == items.get(k, default)
    assert props.get(missing, default=default) is default
    with pytest.raises(TypeError):
        props.get([])  # type: ignore[arg-type]  # unhashable, as for a dict


@given(name=stream_names, local=st.booleans())
def test_a_stream_ref_hashes_once_and_alike(name: str, local: bool) -> None:
    ref = StreamRef(name, local)
    twin = pickle.loads(pickle.dumps(ref))
    assert twin == ref and hash(twin) == hash(ref) == hash(StreamRef(name, local))
    assert {ref: 1}[twin] == 1
    assert attrs.evolve(ref, local=not local) != ref
