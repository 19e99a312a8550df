"""Macrometa/Pulsar WebSocket JSON frames <-> streamfw values. Pure: no I/O, no state.

Used by both sides: the emulator (server) and the macrometa transport (client). Frame shapes
follow docs/protocol.md section 7 (message ids: 7.6); message ids are Pulsar's
``MessageIdData`` protobuf, base64-encoded (field 1 ledger, 2 entry, 3 partition, 4 batch).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import itertools
import json
import math
import re
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

import attrs

from streamfw.api import ConsumerOptions, ReaderOptions, StreamRef
from streamfw.errors import ConfigError, RemoteProtocolError
from streamfw.message import NO_PROPERTIES, Delivery, Envelope, MessageId, Properties
from streamfw.options import MAX_RECEIVER_QUEUE

# Pulsar WebSocketError codes, used in ``send-error:<code>`` results and close frames.
ERR_FAILED_TO_CREATE_PRODUCER = 1
ERR_FAILED_TO_SUBSCRIBE = 2
ERR_FAILED_TO_DESERIALIZE = 3
ERR_FAILED_TO_SERIALIZE = 4
ERR_AUTHENTICATION = 5
ERR_AUTHORIZATION = 6
ERR_PAYLOAD_ENCODING = 7
ERR_UNKNOWN = 8

# Frames are flat (an object holding one object of properties); anything nested deeper than
# this is refused before the parser's recursion can be exhausted by it.
MAX_DEPTH = 32
INT32_MAX = 2**31 - 1  # redeliveryCount and permitMessages are Java ints in Pulsar
_SHOWN = 60  # characters of a bad value quoted in an error (values can be megabytes long)

_WIRE_TYPES = {
    "exclusive": "Exclusive",
    "failover": "Failover",
    "shared": "Shared",
    "key_shared": "Key_Shared",
}
_FROM_WIRE_TYPES = {v.lower(): k for k, v in _WIRE_TYPES.items()}


class FrameError(RemoteProtocolError):
    """A frame that cannot be read; ``code`` is the Pulsar WebSocketError code to answer.

    ``context`` is the ``context`` of a publish frame refused for its content, so the
    refusal can name it (None when the frame is not even a readable object).
    """

    def __init__(self, text: str, code: int, context: str | None = None) -> None:
        super().__init__(text)
        self.code = code
        self.context = context


def _show(value: object) -> str:
    """``repr(value)``, cut short: error texts quote what the peer sent, and end up in logs."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


# ------------------------------------------------------------------------------ topic names

# GDN names a stream's topic by its scope: ``c8globals.<name>`` (replicated to every region)
# or ``c8locals.<name>`` (one region), inside the namespace ``c8global.<fabric>`` or
# ``c8local.<fabric>``. This is the one place that knows these prefixes; client and emulator
# both build and parse names here.
GLOBAL_TOPIC = "c8globals."
LOCAL_TOPIC = "c8locals."
TOPIC_FORMS = f"{GLOBAL_TOPIC}<name> or {LOCAL_TOPIC}<name>"
_NAMESPACE_KINDS = {"c8global": False, "c8local": True}
NAMESPACE_FORMS = "c8global.<fabric> or c8local.<fabric>"


def topic_name(stream: StreamRef) -> str:
    """The topic GDN names ``stream`` by in paths and listings."""
    return (LOCAL_TOPIC if stream.local else GLOBAL_TOPIC) + stream.name


def split_topic_name(topic: str) -> tuple[str, bool] | None:
    """``topic_name`` undone, unchecked: ``(name, local)``, or None if not a stream topic."""
    for prefix, local in ((GLOBAL_TOPIC, False), (LOCAL_TOPIC, True)):
        if topic.startswith(prefix):
            return topic[len(prefix) :], local
    return None


def parse_topic_name(topic: str) -> StreamRef | None:
    """``topic_name`` undone: None if ``topic`` is not a stream topic.

    Raises:
        ConfigError: a stream topic whose name streamfw cannot address.
    """
    split = split_topic_name(topic)
    return None if split is None else StreamRef(*split)


def namespace_name(fabric: str, local: bool) -> str:
    """The namespace of a fabric's global or local topics, as WebSocket paths name it."""
    return ("c8local." if local else "c8global.") + fabric


def split_namespace_name(namespace: str) -> tuple[str, bool] | None:
    """``namespace_name`` undone: ``(fabric, local)`` (fabric possibly empty), or None."""
    kind, _, fabric = namespace.partition(".")
    local = _NAMESPACE_KINDS.get(kind)
    return None if local is None else (fabric, local)


# ------------------------------------------------------------------------------ message ids


def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1  # negative int32 values are sign-extended to 10 bytes by protobuf
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_message_id(mid: MessageId) -> str:
    text = _id_texts.get(mid)  # a server encodes each id twice: receipt, then delivery
    if text is not None:
        return text
    data = b"\x08" + _varint(mid.ledger) + b"\x10" + _varint(mid.entry)
    if mid.partition >= 0:
        data += b"\x18" + _varint(mid.partition)
    if mid.batch_index >= 0:
        data += b"\x20" + _varint(mid.batch_index)
    text = base64.b64encode(data).decode("ascii")
    _keep(_id_texts, mid, text)
    if _round_trips(mid):  # the peer echoes it back (acks): its decode is then a look-up
        _remember((mid.stream, text), mid)
    return text


def _round_trips(mid: MessageId) -> bool:
    """Whether decoding ``mid``'s text gives ``mid`` back (the encoding drops what is out of
    range: a partition or batch index below -1, values wider than the wire's fields)."""
    return (
        mid.ledger < _U63
        and mid.entry < _U63
        and -1 <= mid.partition < _U31
        and -1 <= mid.batch_index < _U31
    )


_U63 = 1 << 63
_U31 = 1 << 31

# Ids encoded or decoded lately, both ways: a server encodes each id for its receipt and its
# delivery, then decodes it from every ack, and a client decodes a receipt's id, then (with
# its consumer in the same process) the delivery's. ``MessageId`` is frozen, so sharing one
# is safe. Only short texts are kept (ledger, entry, partition and batch index take at most
# 44 characters), and a cache that reaches ``ID_CACHE`` entries drops its older half (a dict
# keeps insertion order), so together they never hold more than about ID_CACHE x 400 bytes
# (the two share each MessageId). Documented in docs/macrometa.md. Emptying a full cache
# instead made every id in flight miss at once, a cliff a busy consumer fell off every few
# thousand messages.
ID_CACHE = 4096
K = TypeVar("K")
V = TypeVar("V")
_ID_TEXT_CACHED = 44
_id_cache: dict[tuple[str, str], MessageId] = {}  # (stream, text) -> id
_id_texts: dict[MessageId, str] = {}  # id -> text


def _remember(key: tuple[str, str], mid: MessageId) -> None:
    if len(key[1]) <= _ID_TEXT_CACHED:
        _keep(_id_cache, key, mid)


def _keep(cache: dict[K, V], key: K, value: V) -> None:
    if len(cache) >= ID_CACHE:
        # The older half goes. list(islice(...)) runs as one C call, so no other thread's
        # insert lands mid-iteration; pop(..., None) tolerates one that removed a key first.
        for old in list(itertools.islice(cache, ID_CACHE // 2)):
            cache.pop(old, None)
    cache[key] = value


def decode_message_id(stream: str, text: object) -> MessageId:
    """Parse a base64 ``MessageIdData``; unknown fields are skipped, as protobuf does."""
    if not isinstance(text, str):
        raise FrameError(f"messageId must be a base64 string, got {type(text).__name__}", 3)
    cached = _id_cache.get((stream, text))
    if cached is not None:
        return cached
    mid = _parse_message_id(stream, text)
    _remember((stream, text), mid)
    return mid


def _parse_message_id(stream: str, text: str) -> MessageId:
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FrameError(f"messageId {_show(text)} is not valid base64", 3) from exc
    fields: dict[int, int] = {}
    i = 0
    try:
        while i < len(data):
            tag, i = _read_varint(data, i)
            number, wire_type = tag >> 3, tag & 7
            if wire_type == 0:
                value, i = _read_varint(data, i)
                fields[number] = value
            elif wire_type == 2:
                length, i = _read_varint(data, i)
                i += length
            elif wire_type in (1, 5):
                i += 8 if wire_type == 1 else 4
            else:
                raise ValueError(f"wire type {wire_type}")
        if i > len(data) or 1 not in fields or 2 not in fields:
            raise ValueError("ledger and entry are required")
    except (ValueError, IndexError) as exc:
        raise FrameError(f"messageId {_show(text)} is not a Pulsar message id: {exc}", 3) from exc

    def signed32(v: int | None) -> int:
        if v is None:
            return -1
        v &= 0xFFFFFFFF
        return v - (1 << 32) if v >= 1 << 31 else v

    return MessageId(stream, fields[1], fields[2], signed32(fields.get(3)), signed32(fields.get(4)))


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


# ------------------------------------------------------------------------------- timestamps


def format_time(t: dt.datetime) -> str:
    """ISO-8601, milliseconds, UTC with ``Z`` (what current Pulsar sends)."""
    utc = t.astimezone(dt.timezone.utc)
    if utc.year >= 1000:  # isoformat pads the year to 4 digits, strftime does not
        # The same text as the strftime below, about five times faster (once per delivery).
        return utc.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def parse_time(text: object) -> dt.datetime:
    """Lenient: ISO-8601 with ``Z`` or an offset, or Pulsar's older ``yyyy-MM-dd HH:mm:ss.SSS``."""
    if not isinstance(text, str):
        raise FrameError(f"publishTime must be a string, got {_show(text)}", 3)
    value = text.strip().replace("Z", "+00:00").replace(" ", "T", 1)
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise FrameError(f"publishTime {_show(text)} is not a timestamp", 3) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


# ---------------------------------------------------------------------------------- helpers


def load_json(text: str | bytes) -> Any:
    """Parse JSON from a peer (frame or REST body): a value, or ValueError naming the fault.

    Nesting deeper than ``MAX_DEPTH`` is refused before parsing, so no input can reach the
    parser's recursion limit.
    """
    if isinstance(text, bytes):
        # Strictly: json.loads would decode bytes with "surrogatepass", letting an encoded
        # lone surrogate through (the escaped kind is caught below).
        text = text.decode("utf-8")
    if _too_deep(text):
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    try:
        value = json.loads(text)
    except RecursionError as exc:  # a guard only: _too_deep refuses such input first
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from exc
    # JSON may escape a lone surrogate ("\ud800"), which no UTF-8 frame can carry onwards:
    # stored, it would break every socket it is later written to.
    # ("\\" in text first: a scan for one character, far cheaper than the pattern's.)
    if "\\" in text and _SURROGATE_ESCAPE.search(text) and not _utf8_clean(value):
        raise ValueError("a string holds a lone surrogate (\\ud800-\\udfff), not valid UTF-8")
    return value


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _utf8_clean(value: Any) -> bool:
    """Whether every string in a parsed JSON value (keys included) encodes as UTF-8."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def not_json(exc: ValueError) -> FrameError:
    """The error for a frame that is not JSON, or not UTF-8 (``UnicodeDecodeError``), wherever
    that was found: Pulsar's words first; then what was wrong, shortened (it never quotes the
    input)."""
    return FrameError(
        f"Failed to de-serialize from JSON: {str(exc)[:120]}", ERR_FAILED_TO_DESERIALIZE
    )


def _load(text: str | bytes) -> dict[str, Any]:
    """The one JSON entry point for frames, both directions: a dict, or FrameError."""
    try:
        frame = load_json(text)
    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
        raise not_json(exc) from exc
    if not isinstance(frame, dict):
        raise FrameError(
            "Failed to de-serialize from JSON: not an object", ERR_FAILED_TO_DESERIALIZE
        )
    return frame


_BRACKETS_STR = re.compile(r'"(?:[^"\\]|\\.)*"|[\[{]|[\]}]')


def _too_deep(text: str) -> bool:
    """Whether ``text`` nests arrays/objects deeper than ``MAX_DEPTH`` (strings skipped).

    Counting brackets is enough for almost every frame (base64 payloads hold none), so the
    exact scan runs only for frames with more than ``MAX_DEPTH`` opening brackets.
    """
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    depth = 0
    for token in (m.group() for m in _BRACKETS_STR.finditer(text)):
        if token in ("[", "{"):
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif token in ("]", "}"):
            depth -= 1
    return False


def _b64(payload: bytes) -> str:
    return base64.b64encode(payload).decode("ascii")


def _unb64(value: object) -> bytes:
    if not isinstance(value, str):
        raise FrameError("payload is missing or not a base64 string", ERR_PAYLOAD_ENCODING)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FrameError("payload is not valid base64", ERR_PAYLOAD_ENCODING) from exc


def _properties(value: object) -> Properties:
    if value is None or (isinstance(value, Mapping) and not value):
        return NO_PROPERTIES  # the one shared empty mapping (memory per stored message)
    if not isinstance(value, Mapping):
        raise FrameError("properties must be an object of strings", ERR_FAILED_TO_DESERIALIZE)
    for name, item in value.items():
        if not isinstance(item, str):
            raise FrameError(
                f"properties: {_show(name)} must be a string, got {type(item).__name__}",
                ERR_FAILED_TO_DESERIALIZE,
            )
    return Properties(value)


def _key(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise FrameError("key must be a string", ERR_FAILED_TO_DESERIALIZE)
    return value


# What ``json.dumps(frame, separators=(",", ":"), ensure_ascii=False)`` builds on every call;
# made once (it keeps no state between calls, so threads may share it).
_FRAME_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _dumps(frame: dict[str, Any]) -> str:
    return _FRAME_JSON.encode(frame)


# A string as ``_dumps`` writes it (quoted and escaped, non-ASCII kept): for frames assembled
# by hand on the hot paths, with the same text as ``_dumps`` of the whole frame.
_json_str = json.encoder.encode_basestring


def _dumps_value(value: object) -> str:
    """``value`` as ``_dumps`` writes it inside a frame."""
    if type(value) is str:
        return _json_str(value)
    if type(value) is int:  # not bool, which JSON writes as true/false
        return int.__repr__(value)
    return _FRAME_JSON.encode(value)


def _dumps_with_payload(payload: str, rest: dict[str, Any]) -> str:
    """``_dumps({"payload": payload, **rest})`` for a base64 ``payload``, spliced in as it is.

    Base64 text holds no character JSON escapes, so scanning it (the bulk of a frame) for
    one is wasted work; the output is the same text.
    """
    head = '{"payload":"' + payload + '"'
    return head + "," + _dumps(rest)[1:] if rest else head + "}"


# ---------------------------------------------------------------------------------- frames
#
# Every frame either side sends is one frozen class below: ``parse_*`` turns text into it,
# ``encode()`` turns it into text. The client (``protocol/``) and the emulator
# (``emulator/sockets.py``) both go through these, so a frame's shape is written once.


@attrs.frozen
class Publish:
    """A producer's frame: one message, and the ``context`` its receipt echoes."""

    envelope: Envelope
    context: str | None = None

    def encode(self) -> str:
        return publish_frame(self.envelope, self.context)


def publish_frame(envelope: Envelope, context: str | None = None) -> str:
    """``Publish(envelope, context).encode()`` without building the object (the hot path)."""
    frame: dict[str, Any] = {}  # after "payload", which goes first
    if envelope.properties:
        frame["properties"] = dict(envelope.properties)
    if envelope.key is not None:
        frame["key"] = envelope.key
    if context is not None:
        frame["context"] = context
    return _dumps_with_payload(_b64(envelope.payload), frame)


def parse_publish(text: str | bytes) -> Publish:
    """Read a producer frame; raise FrameError (with the code to answer) if it is unusable."""
    frame = _load(text)
    context = frame.get("context")
    context = None if context is None else str(context)
    try:
        envelope = Envelope(
            _unb64(frame.get("payload")),
            _properties(frame.get("properties")),
            _key(frame.get("key")),
        )
    except FrameError as exc:
        exc.context = context
        raise
    return Publish(envelope, context)


# Pulsar's WebSocket proxy answers ``send-error`` with the message of the exception its own
# producer raised; a send timeout there (PulsarClientException.TimeoutException) leaves the
# message possibly persisted: https://pulsar.apache.org/api/client/4.0.x/org/apache/pulsar/
# client/api/PulsarClientException.TimeoutException.html, apache/pulsar issue #13568.
TIMEOUT_EXCEPTION = "TimeoutException"
# The exception Pulsar raises for a publish refused under the producer_exception backlog
# policy (ProducerBlockedQuotaExceededException / ...Error); the emulator's message names it.
QUOTA_EXCEPTION = "ProducerBlockedQuotaExceeded"
SEND_ERROR = "send-error:"  # + the WebSocketError code: a refused publish's ``result``


@attrs.frozen
class Receipt:
    """``{"result": "ok"}``: the broker stored the publish numbered ``context``."""

    context: str | None
    message_id: MessageId

    def encode(self) -> str:
        # _dumps({"result": "ok", "messageId": ..., ["context": ...]}), assembled by hand.
        head = '{"result":"ok","messageId":"' + encode_message_id(self.message_id) + '"'
        if self.context is None:
            return head + "}"
        return head + ',"context":' + _dumps_value(self.context) + "}"


@attrs.frozen
class SendRefused:
    """Any other result: the broker did not store the publish numbered ``context``.

    ``result`` is as sent (Pulsar: ``send-error:<code>``), ``reason`` its ``errorMsg``; both
    are cut short when parsed, since they end up in error messages.
    """

    context: str | None
    result: str
    reason: str

    @classmethod
    def with_code(cls, context: str | None, code: int, reason: str) -> SendRefused:
        """The refusal Pulsar sends: ``send-error:<code>`` (a WebSocketError code)."""
        return cls(context, f"{SEND_ERROR}{code}", reason)

    @property
    def text(self) -> str:
        """What the refusal says, for an error message."""
        return f"{self.result}: {self.reason}"

    @property
    def may_be_stored(self) -> bool:
        """The gateway's own producer timed out: the broker may store the message yet."""
        return TIMEOUT_EXCEPTION in self.reason

    @property
    def over_quota(self) -> bool:
        """Refused under the ``producer_exception`` backlog quota policy."""
        return QUOTA_EXCEPTION in self.reason

    def encode(self) -> str:
        frame: dict[str, Any] = {"result": self.result, "errorMsg": self.reason}
        if self.context is not None:
            frame["context"] = self.context
        return _dumps(frame)


def parse_receipt(text: str | bytes, stream: str = "") -> Receipt | SendRefused:
    """Read the broker's answer to a publish; raise FrameError if any field is unusable.

    The id of an ``ok`` receipt is decoded as a message of ``stream``.
    """
    frame = _load(text)
    context = _optional_str(frame, "context")
    result = frame.get("result")
    if not isinstance(result, str):
        raise FrameError(f"receipt result must be a string, got {_show(result)}", 3)
    if result == "ok":
        mid = frame.get("messageId")
        if not isinstance(mid, str):
            raise FrameError("receipt without a messageId", ERR_FAILED_TO_DESERIALIZE)
        return Receipt(context, decode_message_id(stream, mid))
    reason = _optional_str(frame, "errorMsg") or "no reason given"
    return SendRefused(context, result[:_SHOWN], reason[:300])


@attrs.frozen
class MessageFrame:
    """A message sent to a consumer or reader; ``raw_id`` is its id exactly as sent (acks,
    nacks and a reader's resume position echo it)."""

    delivery: Delivery
    raw_id: str

    @classmethod
    def of(cls, delivery: Delivery) -> MessageFrame:
        """The frame a server sends for ``delivery``."""
        return cls(delivery, encode_message_id(delivery.message_id))

    def encode(self) -> str:
        # _dumps({"messageId": ..., "payload": ..., "properties": ..., "publishTime": ...,
        # "redeliveryCount": ...[, "key": ...]}), with the base64 payload (most of the frame,
        # and nothing in it JSON escapes) spliced in unscanned, as publish_frame does.
        # The time is ASCII digits and separators only, so it is spliced in as well.
        delivery = self.delivery
        properties = delivery.properties
        key = delivery.key
        # One f-string: the frame is copied once, not once per "+".
        tail = "}" if key is None else f',"key":{_dumps_value(key)}}}'
        props = _dumps(dict(properties)) if properties else "{}"
        return (
            f'{{"messageId":{_dumps_value(self.raw_id)},"payload":"{_b64(delivery.payload)}"'
            f',"properties":{props},"publishTime":"{format_time(delivery.publish_time)}"'
            f',"redeliveryCount":{_dumps_value(delivery.redelivery_count)}{tail}'
        )


def delivery_frame(delivery: Delivery) -> str:
    """``MessageFrame.of(delivery).encode()``: what a server sends for a delivery."""
    return MessageFrame.of(delivery).encode()


@attrs.frozen
class ServerError:
    """The emulator's answer to a consumer or reader frame it could not act on:
    ``{"error": <text>, "code": <WebSocketError code>[, "messageId": <id it named>]}``."""

    code: int
    text: str
    message_id: str | None = None

    def encode(self) -> str:
        frame: dict[str, Any] = {"error": self.text, "code": self.code}
        if self.message_id is not None:
            frame["messageId"] = self.message_id
        return _dumps(frame)


@attrs.frozen
class EndOfTopic:
    """The answer to ``{"type": "isEndOfTopic"}``."""

    reached: bool

    def encode(self) -> str:
        return _dumps({"endOfTopic": self.reached})


ServerFrame = MessageFrame | ServerError | EndOfTopic  # what a consumer or reader reads


def parse_delivery(stream: str, text: str | bytes) -> MessageFrame:
    """Read a message frame of ``stream``; raise FrameError if any field is unusable."""
    return _message(stream, _load(text))


def parse_server_frame(stream: str, text: str | bytes) -> ServerFrame:
    """Read any frame a consumer or reader of ``stream`` gets; FrameError if unusable."""
    frame = _load(text)
    if "error" in frame and "payload" not in frame:
        code = frame.get("code")
        if type(code) is not int:
            raise FrameError(f"error frame code must be an integer, got {_show(code)}", 3)
        return ServerError(
            code,
            (_optional_str(frame, "error") or "")[:300],
            _optional_str(frame, "messageId"),
        )
    if "endOfTopic" in frame and "messageId" not in frame:
        reached = frame["endOfTopic"]
        if not isinstance(reached, bool):
            raise FrameError(f"endOfTopic must be true or false, got {_show(reached)}", 3)
        return EndOfTopic(reached)
    return _message(stream, frame)


def _message(stream: str, frame: dict[str, Any]) -> MessageFrame:
    raw_id = frame.get("messageId")
    mid = decode_message_id(stream, raw_id)
    publish = frame.get("publishTime")
    delivery = Delivery(
        mid,
        _unb64(frame.get("payload")),
        _properties(frame.get("properties")),
        _key(frame.get("key")),
        parse_time(publish) if publish is not None else dt.datetime.now(dt.timezone.utc),
        _count(frame.get("redeliveryCount")),
    )
    return MessageFrame(delivery, str(raw_id))


def _count(value: object) -> int:
    """``redeliveryCount``: absent means 0; otherwise a Java int >= 0, as Pulsar sends it."""
    if value is None:
        return 0
    if type(value) is not int or not 0 <= value <= INT32_MAX:  # bool is an int: refused too
        raise FrameError(
            f"redeliveryCount must be an integer from 0 to {INT32_MAX}, got {_show(value)}",
            ERR_FAILED_TO_DESERIALIZE,
        )
    return value


def _optional_str(frame: Mapping[str, Any], name: str) -> str | None:
    value = frame.get(name)
    if value is not None and not isinstance(value, str):
        raise FrameError(
            f"{name} must be a string, got {type(value).__name__}", ERR_FAILED_TO_DESERIALIZE
        )
    return value


@attrs.frozen
class Ack:
    """A consumer acks the message ``message_id`` (as the broker sent it); on a reader the
    same frame acks nothing and frees a slot of its receiver queue."""

    message_id: str

    def encode(self) -> str:
        return ack_frame(self.message_id)


def ack_frame(raw_id: str) -> str:
    """``Ack(raw_id).encode()`` without building the object (the hot path)."""
    return '{"messageId":' + _dumps_value(raw_id) + "}"  # _dumps({"messageId": raw_id})


@attrs.frozen
class Nack:
    """A consumer hands the message back: the broker sends it again after the nack delay."""

    message_id: str

    def encode(self) -> str:
        return _dumps({"type": "negativeAcknowledge", "messageId": self.message_id})


@attrs.frozen
class Permit:
    """Pull mode: the consumer asks for ``count`` more messages."""

    count: int

    def encode(self) -> str:
        return _dumps({"type": "permit", "permitMessages": self.count})


@attrs.frozen
class Unsubscribe:
    """The consumer deletes its subscription."""

    def encode(self) -> str:
        return _dumps({"type": "unsubscribe"})


@attrs.frozen
class AskEndOfTopic:
    """Whether the topic is terminated; answered with ``EndOfTopic``."""

    def encode(self) -> str:
        return _dumps({"type": "isEndOfTopic"})


ConsumerFrame = Ack | Nack | Permit | Unsubscribe | AskEndOfTopic  # what a server reads


def parse_consumer_frame(text: str | bytes) -> ConsumerFrame:
    """Read a consumer's or reader's frame; FrameError (with the code to answer) if unusable."""
    frame = _load(text)
    kind = frame.get("type")
    if kind is None or kind in ("ack", "negativeAcknowledge"):  # Pulsar: untyped is an ack
        mid = frame.get("messageId")
        if not isinstance(mid, str):
            raise FrameError("messageId is missing", ERR_FAILED_TO_DESERIALIZE)
        return Nack(mid) if kind == "negativeAcknowledge" else Ack(mid)
    if kind == "permit":
        n = frame.get("permitMessages")
        if type(n) is not int or not 0 < n <= INT32_MAX:
            raise FrameError("permitMessages must be a positive integer", ERR_FAILED_TO_DESERIALIZE)
        return Permit(n)
    if kind == "unsubscribe":
        return Unsubscribe()
    if kind == "isEndOfTopic":
        return AskEndOfTopic()
    raise FrameError(f"unknown frame type {_show(kind)}", ERR_FAILED_TO_DESERIALIZE)


# ---------------------------------------------------------------------- consumer parameters


def consumer_query(options: ConsumerOptions, *, local: bool = False) -> dict[str, str]:
    """The WebSocket query parameters for a consumer (of a ``local`` stream or not).

    Issue 11's options travel under Pulsar's WebSocket names (docs/protocol.md §15):
    ``priorityLevel``, ``maxRedeliverCount``, ``deadLetterTopic`` (as the dead-letter
    stream's topic; left out, the server's default ``<topic>-<subscription>-DLQ``) and
    ``pullMode``.
    """
    query = {
        "subscriptionType": _WIRE_TYPES[options.type],
        "receiverQueueSize": str(options.receiver_queue_size),
        "negativeAckRedeliveryDelay": str(round(options.nack_delay * 1000)),
    }
    if options.name:
        query["consumerName"] = options.name
    if options.ack_timeout:
        query["ackTimeoutMillis"] = str(round(options.ack_timeout * 1000))
    if options.initial_position == "earliest":
        # Not part of Pulsar's WebSocket API; the emulator understands it (an extension).
        query["subscriptionInitialPosition"] = "Earliest"
    if options.priority_level:
        query["priorityLevel"] = str(options.priority_level)
    if options.max_redeliver_count is not None:
        query["maxRedeliverCount"] = str(options.max_redeliver_count)
    if options.dead_letter_stream is not None:
        query["deadLetterTopic"] = topic_name(StreamRef(options.dead_letter_stream, local))
    if options.pull_mode:
        query["pullMode"] = "true"
    return query


def dead_letter_stream_of(topic: str) -> str:
    """The stream a ``deadLetterTopic`` names: a full Pulsar topic, a GDN topic, or a name."""
    short = topic.rsplit("/", 1)[-1]  # persistent://tenant/namespace/<topic>
    split = split_topic_name(short)
    return short if split is None else split[0]


def _query_number(query: Mapping[str, str], name: str, default: float) -> float:
    value = query.get(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError as exc:
        raise ConfigError(f"Invalid {name} {_show(value)}: not a number") from exc
    if not math.isfinite(number):
        raise ConfigError(f"Invalid {name} {_show(value)}: not a finite number")
    return number


def _queue_size(query: Mapping[str, str]) -> dict[str, Any]:
    """``receiverQueueSize`` if given, clamped to 1..1000 as Pulsar's WebSocket proxy does."""
    if "receiverQueueSize" not in query:
        return {}  # the options' default
    size = int(_query_number(query, "receiverQueueSize", MAX_RECEIVER_QUEUE))
    return {"receiver_queue_size": min(max(size, 1), MAX_RECEIVER_QUEUE)}


_POSITIONS: dict[str, Literal["earliest", "latest"]] = {"earliest": "earliest", "latest": "latest"}


READER_START = "messageId"  # a reader's start: earliest, latest, or after this message id


def reader_resume_query(raw_id: str) -> dict[str, str]:
    """The query parameters that start a reader after the message ``raw_id`` (as sent)."""
    return {READER_START: raw_id}


def reader_query(stream: str, options: ReaderOptions) -> dict[str, str]:
    """The WebSocket query parameters for a reader of ``stream``."""
    start = options.start
    if isinstance(start, MessageId):
        if start.stream != stream:
            raise ConfigError(f"{start} is not a message of stream {stream!r}")
        position = encode_message_id(start)
    else:
        position = start
    query = {"receiverQueueSize": str(options.receiver_queue_size), READER_START: position}
    if options.name:
        query["readerName"] = options.name
    return query


def reader_options_from_query(stream: str, query: Mapping[str, str]) -> ReaderOptions:
    """Parse reader query parameters; raise ConfigError (or FrameError for an id) naming it."""
    # A parameter left out takes the options' default (Pulsar's, written once there).
    fields = _queue_size(query)
    raw = query.get(READER_START)
    if raw is not None:
        fields["start"] = _POSITIONS[raw] if raw in _POSITIONS else decode_message_id(stream, raw)
    if query.get("readerName"):
        fields["name"] = query["readerName"]
    return ReaderOptions(**fields)


def consumer_options_from_query(query: Mapping[str, str]) -> ConsumerOptions:
    """Parse consumer query parameters as Pulsar does; raise ConfigError naming the bad one."""
    # A parameter left out takes the options' default (Pulsar's, written once there).
    fields = _queue_size(query)
    raw_type = query.get("subscriptionType")
    if raw_type is not None:
        sub_type = _FROM_WIRE_TYPES.get(raw_type.lower())
        if sub_type is None:
            raise ConfigError(f"Invalid subscriptionType {raw_type!r}")
        fields["type"] = sub_type
    position = query.get("subscriptionInitialPosition")
    if position is not None:
        if position.lower() not in ("latest", "earliest"):
            raise ConfigError(f"Invalid subscriptionInitialPosition {position!r}")
        fields["initial_position"] = position.lower()
    if query.get("consumerName"):
        fields["name"] = query["consumerName"]
    ack_ms = _query_number(query, "ackTimeoutMillis", 0)
    if ack_ms > 0:  # 0: none, as absent
        fields["ack_timeout"] = ack_ms / 1000
    if "negativeAckRedeliveryDelay" in query:
        fields["nack_delay"] = _query_number(query, "negativeAckRedeliveryDelay", 0) / 1000
    if "priorityLevel" in query:
        fields["priority_level"] = _query_int(query, "priorityLevel")
    if "maxRedeliverCount" in query:
        fields["max_redeliver_count"] = _query_int(query, "maxRedeliverCount")
    if query.get("deadLetterTopic"):
        fields["dead_letter_stream"] = dead_letter_stream_of(query["deadLetterTopic"])
    pull = query.get("pullMode", "false").lower()
    if pull not in ("true", "false"):
        raise ConfigError(f"Invalid pullMode {_show(pull)}: true or false")
    fields["pull_mode"] = pull == "true"
    return ConsumerOptions(**fields)


def _query_int(query: Mapping[str, str], name: str) -> int:
    """A whole-number parameter (Integer.parseInt in Pulsar's proxy: 400 otherwise)."""
    value = query[name]
    if not (value.isascii() and value.lstrip("-").isdigit()) or len(value) > 11:
        raise ConfigError(f"Invalid {name} {_show(value)}: not an int")
    return int(value)
