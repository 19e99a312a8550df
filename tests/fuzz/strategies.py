"""Hypothesis strategies for every frame of the Macrometa streams protocol and every REST body.

Each family comes valid, mutated (a field dropped, retyped or given a hostile value),
truncated, deeply nested, oversized, as JSON of the wrong type, and as bytes that are not
UTF-8. Frames are text (``str``) unless they are meant to be invalid UTF-8 (``bytes``).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import hypothesis.strategies as st
from streamfw_macrometa.wire import encode_message_id

from streamfw.message import MessageId

Frame = str | bytes

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
# Raw JSON number and string texts json.dumps never writes but a peer may.
RAW_VALUES = st.sampled_from(
    [
        "1e400",
        "-1e400",
        "1" * 400,
        "NaN",
        "Infinity",
        '"abc"',
        '""',
        '"\\ud800"',
        "-1",
        "0",
        "1.5",
        "true",
        "null",
        "[]",
        "{}",
        '"' + "A" * 5000 + '"',
    ]
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


message_ids = st.builds(
    lambda ledger, entry, partition, batch: encode_message_id(
        MessageId("s", ledger, entry, partition, batch)
    ),
    st.integers(0, 2**63 - 1),
    st.integers(0, 2**63 - 1),
    st.sampled_from([-1, 0, 3]),
    st.sampled_from([-1, 0, 7]),
)
hostile_ids = (
    message_ids
    | st.text(max_size=30)
    | st.binary(max_size=30).map(b64)
    | st.sampled_from(["", "=", "CAEQAA", "////", "CAEQADAAOAA=", b64(b"\x08" + b"\xff" * 11)])
)
payloads = st.binary(max_size=200).map(b64)
props = st.dictionaries(st.text(max_size=12), st.text(max_size=12), max_size=4)
timestamps = st.datetimes().map(lambda t: t.isoformat()) | st.sampled_from(
    ["2026-12-01T10:00:00.000Z", "2026-13-45T99:99:99Z", "", "yesterday", "2026-12-01"]
)


# ------------------------------------------------------------------------- shapes of harm


def nested(depth: int, opener: str = "[") -> str:
    """A JSON text nested ``depth`` levels deep (unterminated past 1000 levels: cheaper,
    and a parser must give up either way)."""
    closer = {"[": "]", '{"a":': "}"}[opener]
    return opener * depth + "1" + (closer * depth if depth <= 1000 else "")


deep = st.builds(
    nested, st.sampled_from([50, 1000, 5000, 100_000]), st.sampled_from(["[", '{"a":'])
)
not_utf8 = st.sampled_from(
    [b"\xff", b'{"payload":"\xff"}', b"\xc3\x28", b'{"messageId":"\xed\xa0\x80"}', b"\x80abc"]
)


def mutated(valid: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[Frame]:
    """``valid`` frames and every kind of damage done to them."""

    @st.composite
    def damage(draw: st.DrawFn) -> Frame:
        frame = draw(valid)
        how = draw(st.sampled_from(["valid", "drop", "retype", "raw", "extra", "truncate", "wrap"]))
        keys = sorted(frame)
        if how == "drop" and keys:
            frame.pop(draw(st.sampled_from(keys)))
        elif how == "retype" and keys:
            frame[draw(st.sampled_from(keys))] = draw(JSON)
        elif how == "raw" and keys:
            key = draw(st.sampled_from(keys))
            frame[key] = "\x00RAW\x00"
            return json.dumps(frame).replace('"\\u0000RAW\\u0000"', draw(RAW_VALUES))
        elif how == "extra":
            frame[draw(st.text(max_size=10))] = draw(JSON)
        elif how == "truncate":
            text = json.dumps(frame)
            return text[: draw(st.integers(0, max(len(text) - 1, 0)))]
        elif how == "wrap":
            return json.dumps(draw(st.sampled_from([[frame], "frame", 1, None, True])))
        return json.dumps(frame)

    return damage() | deep | not_utf8 | JSON.map(json.dumps) | st.text(max_size=40)


# ------------------------------------------------------------------------------ frames


def _frame(required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(required, optional=optional)


publish_frames = _frame(
    {"payload": payloads},
    {"properties": props, "key": st.text(max_size=10), "context": st.text(max_size=10)},
)
ack_frames = _frame({"messageId": hostile_ids}, {})
nack_frames = _frame({"type": st.just("negativeAcknowledge"), "messageId": hostile_ids}, {})
permit_frames = _frame({"type": st.just("permit"), "permitMessages": st.integers(-5, 2**40)}, {})
end_of_topic_frames = _frame({"type": st.just("isEndOfTopic")}, {})
consumer_frames = ack_frames | nack_frames | permit_frames | end_of_topic_frames

receipts = _frame(
    {"result": st.just("ok"), "messageId": message_ids}, {"context": st.text(max_size=10)}
) | _frame(
    {"result": st.sampled_from(["send-error:3", "send-error:7", "send-error:8", "error"])},
    {"errorMsg": st.text(max_size=30), "context": st.text(max_size=10)},
)
deliveries = _frame(
    {
        "messageId": message_ids,
        "payload": payloads,
        "properties": props,
        "publishTime": timestamps,
        "redeliveryCount": st.integers(0, 2**31),
    },
    {"key": st.text(max_size=10)},
)
error_frames = _frame(
    {"error": st.text(max_size=40), "code": st.integers(0, 9)}, {"messageId": hostile_ids}
)
end_of_topic_answers = _frame({"endOfTopic": st.booleans()}, {})

producer_in = mutated(publish_frames)  # what a producer may send the server
consumer_in = mutated(consumer_frames)  # what a consumer or reader may send the server
server_out = mutated(receipts | deliveries | error_frames | end_of_topic_answers)

# Over the 1 MiB frame limit the socket closes with 1009 (documented): payload sizes.
oversized = st.integers(1 << 20, (1 << 20) + 4096)  # payload characters


# -------------------------------------------------------------------------- REST bodies

credentials = _frame(
    {},
    {
        "email": JSON_SCALARS,
        "username": JSON_SCALARS,
        "password": JSON_SCALARS | st.text(alphabet=st.characters(), max_size=20),
        "tenant": st.text(max_size=10),
    },
)
validations = _frame({}, {"apikey": JSON_SCALARS, "jwt": JSON_SCALARS})


def _to_bytes(frame: Frame) -> bytes:
    return frame.encode("utf-8", "surrogatepass") if isinstance(frame, str) else frame


def bodies(valid: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[bytes]:
    """Request bodies: ``valid`` ones, damaged ones, and bytes that are no JSON at all."""
    as_text = mutated(valid).map(
        lambda f: f.encode("utf-8", "surrogatepass") if isinstance(f, str) else f
    )
    return as_text | st.binary(max_size=200) | st.just(b"")


auth_bodies = bodies(credentials)
validate_bodies = bodies(validations)
publish_bodies = st.binary(max_size=2000) | st.text(max_size=200).map(str.encode)
# Path segments a client may put where a name, a number of seconds or a topic goes.
segments = (
    st.text(alphabet=st.characters(blacklist_characters="/?#%"), min_size=1, max_size=30)
    | st.integers(-(10**6), 10**450).map(str)
    | st.sampled_from(["²", "٣", "1e3", "-0", "0x10", "...", ".", "c8globals.", "c8locals.x"])
)
# Authorization header values (requests sends str headers as latin-1; bytes go as they are).
auth_headers = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=40).map(
        lambda s: s.encode("latin-1")
    ),
    st.text(max_size=30).map(lambda s: b"apikey " + s.encode("utf-8", "surrogatepass")),
    st.text(max_size=30).map(lambda s: b"bearer " + s.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"apikey \xff\xfe", b"bearer \xc3\x28", b"apikey ", b"", b"apikey\t"]),
)
# The consumer's WebSocket query parameters (wire.consumer_options_from_query reads them).
CONSUMER_QUERY_NAMES = [
    "subscriptionType",
    "receiverQueueSize",
    "ackTimeoutMillis",
    "negativeAckRedeliveryDelay",
    "subscriptionInitialPosition",
    "consumerName",
    "priorityLevel",
    "maxRedeliverCount",
    "deadLetterTopic",
    "pullMode",
]
