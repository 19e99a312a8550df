"""The Macrometa/Pulsar frame translator."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from streamfw_macrometa.wire import (
    ID_CACHE,
    Ack,
    AskEndOfTopic,
    EndOfTopic,
    FrameError,
    MessageFrame,
    Nack,
    Permit,
    Publish,
    Receipt,
    SendRefused,
    ServerError,
    Unsubscribe,
    consumer_options_from_query,
    consumer_query,
    decode_message_id,
    delivery_frame,
    encode_message_id,
    format_time,
    parse_consumer_frame,
    parse_delivery,
    parse_publish,
    parse_receipt,
    parse_server_frame,
    publish_frame,
    reader_options_from_query,
    reader_query,
)

from streamfw import ConfigError, Envelope, MessageId
from streamfw.api import ConsumerOptions, ReaderOptions
from streamfw.message import Delivery
from tests.strategies import properties

ids = st.builds(
    MessageId,
    st.just("s"),
    st.integers(0, 2**63),
    st.integers(0, 2**63),
    st.integers(-1, 2**31 - 1),
    st.integers(-1, 2**31 - 1),
)


@given(ids)
def test_message_ids_round_trip(mid: MessageId) -> None:
    assert decode_message_id("s", encode_message_id(mid)) == mid


def test_message_id_matches_pulsar_bytes() -> None:
    # 08 e9 07 10 00: ledger 1001, entry 0 -- the form seen in the SDK captures
    assert decode_message_id("s", "COkHEAA=") == MessageId("s", 1001, 0)
    assert encode_message_id(MessageId("s", 1001, 0)) == "COkHEAA="


def test_unknown_protobuf_fields_are_skipped() -> None:
    raw = bytes([0x08, 0x05, 0x10, 0x07, 0x2A, 0x02, 0x01, 0x02, 0x30, 0x09])
    assert decode_message_id("s", base64.b64encode(raw).decode()) == MessageId("s", 5, 7)


def test_ids_out_of_the_wire_range_decode_as_the_wire_reads_them() -> None:
    # Encoded ids are remembered for their decode: one whose text cannot give it back (a
    # partition below -1 is not sent) must be decoded, not served from memory.
    mid = MessageId("s", 1, 2, -5, -7)
    assert decode_message_id("s", encode_message_id(mid)) == MessageId("s", 1, 2)
    with pytest.raises(FrameError):  # and a decode for one stream does not answer another's
        decode_message_id("s", "not an id")
    assert decode_message_id("t", encode_message_id(MessageId("s", 1, 2))).stream == "t"


def test_the_id_cache_stays_bounded() -> None:
    from streamfw_macrometa import wire

    for entry in range(ID_CACHE + 10):
        encode_message_id(MessageId("s", 1, entry))
        decode_message_id("s", base64.b64encode(bytes([8, 1, 16, 0, 24, entry & 0x7F])).decode())
    assert 0 < len(wire._id_cache) <= ID_CACHE and 0 < len(wire._id_texts) <= ID_CACHE


def test_a_full_id_cache_keeps_the_newest_ids() -> None:
    """A full cache drops its older half, not everything: the ids in flight stay cached."""
    from streamfw_macrometa import wire

    wire._id_texts.clear()
    wire._id_cache.clear()
    ids = [MessageId("recent", 7, entry) for entry in range(ID_CACHE + 1)]  # one over: full
    texts = [encode_message_id(mid) for mid in ids]
    newest = ids[-ID_CACHE // 4 :]
    assert all(mid in wire._id_texts for mid in newest)
    assert all(("recent", text) in wire._id_cache for text in texts[-ID_CACHE // 4 :])
    assert ids[0] not in wire._id_texts  # the oldest went
    assert len(wire._id_texts) <= ID_CACHE and len(wire._id_cache) <= ID_CACHE


@pytest.mark.parametrize("bad", ["", "!!!", base64.b64encode(b"\x08\x05").decode(), 17])
def test_bad_message_ids_are_refused(bad: object) -> None:
    with pytest.raises(FrameError):
        decode_message_id("s", bad)


@given(st.binary(), properties, st.none() | st.text(), st.none() | st.text())
def test_publish_frames_round_trip(
    payload: bytes, props: dict[str, str], key: str | None, context: str | None
) -> None:
    env = Envelope(payload, props, key)
    assert parse_publish(publish_frame(env, context)) == Publish(env, context)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", 3),
        ("[1]", 3),
        ("{}", 7),
        ('{"payload": "***"}', 7),
        ('{"payload": "", "properties": {"a": 1}}', 3),
    ],
)
def test_bad_publish_frames_carry_the_pulsar_code(frame: str, code: int) -> None:
    with pytest.raises(FrameError) as err:
        parse_publish(frame)
    assert err.value.code == code


def test_receipts() -> None:
    mid = MessageId("s", 1, 2)
    assert parse_receipt(Receipt("7", mid).encode(), "s") == Receipt("7", mid)
    refused = SendRefused.with_code("8", 7, "payload is not valid base64")
    assert parse_receipt(refused.encode()) == refused and refused.text.startswith("send-error:7")


def test_delivery_frames_round_trip() -> None:
    when = dt.datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=dt.timezone.utc)
    d = Delivery(MessageId("s", 3, 4), b"\x00hi", {"k": "v"}, "key", when, 2)
    frame = delivery_frame(d)
    assert json.loads(frame)["publishTime"] == "2024-05-01T12:00:00.123Z"
    assert parse_delivery("s", frame) == MessageFrame(d, encode_message_id(d.message_id))


def _stdlib(frame: dict[str, object]) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


@given(st.text(), st.none() | st.text(), properties, st.none() | st.text(), st.datetimes())
def test_hand_assembled_frames_are_the_stdlib_text(
    raw_id: str, context: str | None, props: dict[str, str], key: str | None, when: dt.datetime
) -> None:
    mid = MessageId("s", 3, 4)
    receipt: dict[str, object] = {"result": "ok", "messageId": encode_message_id(mid)}
    assert Receipt(context, mid).encode() == _stdlib(
        receipt if context is None else {**receipt, "context": context}
    )
    when = when.replace(tzinfo=dt.timezone.utc)
    d = Delivery(mid, b"\x00hi", props, key, when, 2)
    frame: dict[str, object] = {
        "messageId": raw_id,
        "payload": "AGhp",
        "properties": dict(d.properties),
        "publishTime": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
        "redeliveryCount": 2,
    }
    if key is not None:
        frame["key"] = key
    assert MessageFrame(d, raw_id).encode() == _stdlib(frame)
    assert Ack(raw_id).encode() == _stdlib({"messageId": raw_id})


@pytest.mark.parametrize("year", [1, 999, 1000, 2024, 9999])
def test_publish_times_keep_the_strftime_text(year: int) -> None:
    when = dt.datetime(year, 5, 1, 12, 0, 0, 123999, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    utc = when.astimezone(dt.timezone.utc)
    assert format_time(when) == utc.strftime("%Y-%m-%dT%H:%M:%S.") + "123Z"


def test_server_frames_round_trip_and_are_told_apart() -> None:
    when = dt.datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=dt.timezone.utc)
    d = Delivery(MessageId("s", 3, 4), b"hi", {"error": "in a property"}, None, when)
    for frame in (
        MessageFrame.of(d),
        ServerError(3, "no such message", "CAUQBw=="),
        ServerError(8, "the emulator failed"),
        EndOfTopic(False),
    ):
        assert parse_server_frame("s", frame.encode()) == frame


@pytest.mark.parametrize(
    "frame",
    [{"error": "x", "code": "3"}, {"error": 1, "code": 3}, {"endOfTopic": "no"}, {"code": 3}],
)
def test_bad_server_frames_are_frame_errors(frame: dict[str, object]) -> None:
    with pytest.raises(FrameError):
        parse_server_frame("s", json.dumps(frame))


def test_delivery_accepts_older_pulsar_time_and_missing_fields() -> None:
    frame = json.dumps(
        {"messageId": "CAUQBw==", "payload": "aGk=", "publishTime": "2024-05-01 12:00:00.123"}
    )
    got = parse_delivery("s", frame).delivery
    assert got.payload == b"hi" and got.publish_time.tzinfo is not None
    assert got.properties == {} and got.redelivery_count == 0


def test_consumer_frames() -> None:
    assert parse_consumer_frame('{"messageId": "CAUQBw=="}') == Ack("CAUQBw==")
    nack = parse_consumer_frame('{"type": "negativeAcknowledge", "messageId": "CAUQBw=="}')
    assert nack == Nack("CAUQBw==")
    assert parse_consumer_frame('{"type": "permit", "permitMessages": 5}') == Permit(5)
    for frame in (Ack("x"), Nack("x"), Permit(3), Unsubscribe(), AskEndOfTopic()):
        assert parse_consumer_frame(frame.encode()) == frame
    for bad in ['{"type": "explode"}', '{"type": "permit"}', "{}", "nope"]:
        with pytest.raises(FrameError):
            parse_consumer_frame(bad)


def test_consumer_query_round_trip() -> None:
    opts = ConsumerOptions(
        type="shared",
        initial_position="earliest",
        receiver_queue_size=10,
        name="c1",
        ack_timeout=2.5,
        nack_delay=0.25,
    )
    assert consumer_options_from_query(consumer_query(opts)) == opts
    assert consumer_options_from_query({}).type == "exclusive"  # Pulsar's default
    # what a query leaves out takes the options' defaults, written there only
    assert consumer_options_from_query({}) == ConsumerOptions()
    assert reader_options_from_query("s", {}) == ReaderOptions()
    assert consumer_options_from_query({"ackTimeoutMillis": "0"}).ack_timeout is None
    assert consumer_options_from_query({"receiverQueueSize": "5000"}).receiver_queue_size == 1000
    assert consumer_options_from_query({"subscriptionType": "failover"}).type == "failover"
    assert consumer_options_from_query({"subscriptionType": "Key_Shared"}).type == "key_shared"
    with pytest.raises(ConfigError, match="subscriptionType"):
        consumer_options_from_query({"subscriptionType": "Sticky"})
    with pytest.raises(ConfigError, match="receiverQueueSize"):
        consumer_options_from_query({"receiverQueueSize": "lots"})


GOOD_DELIVERY = {"messageId": "CAUQBw==", "payload": "aGk=", "publishTime": "2024-05-01T12:00:00Z"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("redeliveryCount", "abc"),
        ("redeliveryCount", 1e400),  # json gives inf
        ("redeliveryCount", -1),
        ("redeliveryCount", 2**31),
        ("redeliveryCount", True),
        ("redeliveryCount", 1.5),
        ("messageId", 7),
        ("messageId", "not base64!"),
        ("payload", None),
        ("payload", "***"),
        ("properties", ["a"]),
        ("properties", {"a": 1}),
        ("properties", {"a": {"b": "c"}}),
        ("key", 5),
        ("publishTime", 1714564800000),
        ("publishTime", "yesterday"),
    ],
)
def test_every_delivery_field_is_checked(field: str, value: object) -> None:
    frame = json.dumps({**GOOD_DELIVERY, field: value})
    with pytest.raises(FrameError, match=field) as err:
        parse_delivery("s", frame)
    assert len(str(err.value)) < 200  # quotes of what was sent are cut short


def test_a_huge_bad_value_is_not_quoted_whole() -> None:
    frame = json.dumps({**GOOD_DELIVERY, "messageId": "!" * 1_000_000})
    with pytest.raises(FrameError) as err:
        parse_delivery("s", frame)
    assert len(str(err.value)) < 200


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000, "{" + '"a":{' * 5000, b"[" * 100_000, '{"a":' + "[" * 33 + "]" * 33 + "}"],
)
def test_deep_nesting_is_a_frame_error_for_every_parser(text: str | bytes) -> None:
    for parse in (
        parse_publish,
        parse_receipt,
        parse_consumer_frame,
        lambda t: parse_delivery("s", t),
        lambda t: parse_server_frame("s", t),
    ):
        with pytest.raises(FrameError, match="nested deeper") as err:
            parse(text)
        assert err.value.code == 3


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    props = {f"k{i}": "[[[{{{" * 20 for i in range(10)}
    props["quote"] = '\\"[[[['
    env = Envelope(b"x", props)
    assert parse_publish(publish_frame(env)) == Publish(env, None)


@pytest.mark.parametrize(
    "frame",
    [
        {"result": 1},
        {"result": "ok"},
        {"result": "ok", "messageId": "!!"},
        {"result": "ok", "messageId": "CAUQBw==", "context": 7},
        {"result": "send-error:3", "errorMsg": ["x"]},
    ],
)
def test_every_receipt_field_is_checked(frame: dict[str, object]) -> None:
    with pytest.raises(FrameError):
        parse_receipt(json.dumps(frame))


@pytest.mark.parametrize("permits", [True, 0, -1, 2**31, 1.0, "5"])
def test_permits_must_be_a_positive_java_int(permits: object) -> None:
    with pytest.raises(FrameError, match="permitMessages"):
        parse_consumer_frame(json.dumps({"type": "permit", "permitMessages": permits}))


JSON = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(), kids, max_size=4),
    max_leaves=8,
)
FIELDS = st.sampled_from(
    [
        "messageId",
        "payload",
        "properties",
        "key",
        "publishTime",
        "redeliveryCount",
        "context",
        "result",
        "errorMsg",
        "type",
        "permitMessages",
    ]
)


@given(JSON, st.dictionaries(FIELDS, JSON), st.binary(max_size=64))
def test_every_parser_reads_or_refuses_with_a_frame_error(
    junk: object, fields: dict[str, object], raw: bytes
) -> None:
    """Valid-looking frames with any field swapped for any JSON value, any JSON, any bytes."""
    good_receipt = {"result": "ok", "messageId": "CAUQBw==", "context": "1"}
    frames: list[str | bytes] = [
        json.dumps(junk),
        json.dumps({**GOOD_DELIVERY, **fields}),
        json.dumps({**good_receipt, **fields}),
        json.dumps({"payload": "aGk=", **fields}),
        raw,
    ]
    parsers: list[Callable[[str | bytes], object]] = [
        lambda t: parse_delivery("s", t),
        lambda t: parse_server_frame("s", t),
        parse_receipt,
        parse_publish,
        parse_consumer_frame,
    ]
    for frame in frames:
        for parse in parsers:
            with contextlib.suppress(FrameError):
                parse(frame)


@pytest.mark.parametrize(
    "query",
    [
        {"receiverQueueSize": "1E400"},
        {"ackTimeoutMillis": "1e400"},
        {"negativeAckRedeliveryDelay": "nan"},
        {"ackTimeoutMillis": "-inf"},
    ],
)
def test_non_finite_consumer_parameters_are_config_errors(query: dict[str, str]) -> None:
    name = next(iter(query))
    with pytest.raises(ConfigError, match=f"Invalid {name} .*not a finite number"):
        consumer_options_from_query(query)


@pytest.mark.parametrize(
    "frame",
    [
        '{"payload":"aGk=","properties":{"k":"\\ud800"}}',
        '{"payload":"aGk=","properties":{"\\udfff":"v"}}',
        '{"payload":"aGk=","key":"a\\udbff"}',
        '{"payload":"aGk=","context":"\\ud800"}',
    ],
)
def test_a_lone_surrogate_escape_is_a_frame_error(frame: str) -> None:
    # Stored, such a string would break every socket it is later written to as UTF-8.
    with pytest.raises(FrameError, match="lone surrogate"):
        parse_publish(frame)
    with pytest.raises(FrameError, match="lone surrogate"):
        parse_publish(frame.encode())


def test_an_escaped_surrogate_pair_is_one_character() -> None:
    envelope = parse_publish('{"payload":"aGk=","properties":{"k":"\\ud83d\\ude00"}}').envelope
    assert envelope.properties["k"] == "\U0001f600"


@given(
    start=st.sampled_from(["earliest", "latest"]) | ids,
    size=st.integers(1, 1000),
    name=st.none() | st.text("abc-_", min_size=1, max_size=8),
)
def test_reader_query_round_trips(start: str | MessageId, size: int, name: str | None) -> None:
    options = ReaderOptions(start=start, receiver_queue_size=size, name=name)  # type: ignore[arg-type]
    query = reader_query("s", options)
    assert reader_options_from_query("s", query) == options


def test_reader_query_refuses_what_it_cannot_use() -> None:
    with pytest.raises(ConfigError, match="not a message of stream"):
        reader_query("other", ReaderOptions(start=MessageId("s", 1, 2)))
    with pytest.raises(FrameError):
        reader_options_from_query("s", {"messageId": "not-an-id"})
    with pytest.raises(ConfigError, match="receiverQueueSize"):
        reader_options_from_query("s", {"receiverQueueSize": "1e400"})
    clamped = reader_options_from_query("s", {"receiverQueueSize": "5000"})
    assert clamped.receiver_queue_size == 1000  # Pulsar's proxy caps it


@given(
    query=st.dictionaries(
        st.sampled_from(["messageId", "receiverQueueSize", "readerName"]),
        st.text(max_size=40)
        | st.sampled_from(["1e400", "-1e400", "nan", "inf", "\ud800", "[" * 64, "earliest"])
        | st.integers(-(10**400), 10**400).map(str),
    )
)
def test_reader_query_parameters_fail_only_as_typed_errors(query: dict[str, str]) -> None:
    try:
        options = reader_options_from_query("s", query)
    except (ConfigError, FrameError) as exc:
        assert str(exc)
        return
    assert 1 <= options.receiver_queue_size <= 1000


def test_an_encoded_lone_surrogate_in_bytes_is_refused_like_an_escaped_one() -> None:
    """json.loads decodes bytes with "surrogatepass"; the frame would then break the socket
    it is written to (an error frame echoing its id, a delivery of its properties)."""
    lone = "\ud800".encode("utf-8", "surrogatepass")
    for frame in (
        b'{"messageId": "' + lone + b'"}',
        b'{"payload": "aGk=", "properties": {"k": "' + lone + b'"}}',
    ):
        for parse in (parse_consumer_frame, parse_publish):
            with pytest.raises(FrameError, match="utf-8"):
                parse(frame)
