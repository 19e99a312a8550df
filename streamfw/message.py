"""Immutable message values: ids, what a producer sends, what a consumer receives."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from streamfw.errors import ConfigError

if TYPE_CHECKING:
    from streamfw.api import Acknowledger


def check_text(what: str, text: str) -> str:
    """``text`` if UTF-8 can carry it, else ConfigError naming ``what``.

    Python strings may hold lone surrogates (``"\\ud800"``); no wire format that speaks UTF-8
    can, so every transport refuses them at the API instead of one storing them and another
    failing mid-send.
    """
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ConfigError(
                f"{what} holds {text[exc.start]!r} at index {exc.start}, a lone surrogate that"
                " UTF-8 cannot carry"
            ) from None
    return text


class Properties(Mapping[str, str]):
    """A read-only, hashable ``str -> str`` mapping (Pulsar message properties)."""

    __slots__ = ("_hash", "_items")

    def __init__(self, value: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        items = dict(value)
        for k, v in items.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError(f"message properties must map str to str, got {k!r}: {v!r}")
            if not (k.isascii() and v.isascii()):
                check_text("message property name", k)
                check_text(f"message property {k!r}", v)
        # Sorted, so equal mappings iterate, print and hash alike.
        self._items: dict[str, str] = dict(sorted(items.items()))
        self._hash: int | None = None

    def __getitem__(self, key: str) -> str:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(self._items.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Properties):
            return self._items == other._items
        if isinstance(other, Mapping):
            return self._items == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return repr(self._items)


def _to_properties(value: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> Properties:
    if isinstance(value, Properties):
        return value
    return Properties(value or ())


@attrs.frozen(order=True, cache_hash=True)  # a dict/set key on every hot path
class MessageId:
    """Where a message sits in its stream: Pulsar's (ledger, entry[, partition, batch])."""

    stream: str
    ledger: int = attrs.field(validator=attrs.validators.ge(0))
    entry: int = attrs.field(validator=attrs.validators.ge(0))
    partition: int = -1
    batch_index: int = -1

    def __str__(self) -> str:
        return f"{self.stream}:{self.ledger}:{self.entry}"

    @classmethod
    def trusted(cls, stream: str, ledger: int, entry: int) -> MessageId:
        """A core-only constructor that skips the validators: for parts already checked.

        The broker numbers every message it stores from a stream name it checked and
        counters it keeps, so ``ledger >= 0`` and ``entry >= 0`` hold by construction, and
        running the validators there cost a third of building the id on every publish.
        Never use it for anything a user or a peer supplied: ``MessageId(...)`` checks.
        """
        self = _new(cls)
        _set(self, "stream", stream)
        _set(self, "ledger", ledger)
        _set(self, "entry", entry)
        _set(self, "partition", -1)
        _set(self, "batch_index", -1)
        _set(self, "_attrs_cached_hash", None)  # what attrs' cache_hash __init__ sets
        return self


_new = object.__new__
_set = object.__setattr__  # a frozen attrs class refuses its own __setattr__


@attrs.frozen
class Envelope:
    """What a producer hands to a transport: encoded payload, properties and key."""

    payload: bytes = attrs.field(validator=attrs.validators.instance_of(bytes))
    properties: Properties = attrs.field(factory=Properties, converter=_to_properties)
    key: str | None = attrs.field(default=None, validator=lambda _, __, k: _check_key(k))


@attrs.define
class OutgoingMessage:
    """A message on its way out, as the ``streamfw_send`` hook sees it.

    ``properties`` is a plain dict a plugin may change (W3C ``traceparent``, ...); the
    producer checks it as it checks a user's properties when the message is sent. The
    codec's ``streamfw-codec`` entry must stay ``codec``, the tag the payload was encoded
    with. The rest is read-only.
    """

    stream: str = attrs.field(on_setattr=attrs.setters.frozen)
    payload: bytes = attrs.field(
        on_setattr=attrs.setters.frozen, repr=lambda p: f"<{len(p)} bytes>"
    )
    properties: dict[str, str] = attrs.field(on_setattr=attrs.setters.frozen)
    key: str | None = attrs.field(on_setattr=attrs.setters.frozen)
    codec: str = attrs.field(on_setattr=attrs.setters.frozen)


def _check_key(key: object) -> None:
    if key is None:
        return
    if not isinstance(key, str):
        raise ConfigError(f"a message key must be a str or None, got {type(key).__name__}")
    check_text("message key", key)


@attrs.frozen
class Delivery:
    """What a transport hands to a consumer: an envelope plus where and when it was stored."""

    message_id: MessageId
    payload: bytes
    properties: Properties = attrs.field(factory=Properties, converter=_to_properties)
    key: str | None = None
    publish_time: dt.datetime = attrs.field(factory=lambda: dt.datetime.now(dt.timezone.utc))
    redelivery_count: int = 0

    @classmethod
    def trusted(
        cls,
        message_id: MessageId,
        payload: bytes,
        properties: Properties,
        key: str | None,
        publish_time: dt.datetime,
    ) -> Delivery:
        """A core-only constructor for a first delivery of a message the broker stores.

        Every part was checked or built by the core already (the envelope's properties are a
        ``Properties``), so the converter runs for nothing; as ``MessageId.trusted``, never
        use it for parts a user or a peer supplied.
        """
        self = _new(cls)
        _set(self, "message_id", message_id)
        _set(self, "payload", payload)
        _set(self, "properties", properties)
        _set(self, "key", key)
        _set(self, "publish_time", publish_time)
        _set(self, "redelivery_count", 0)
        return self


@attrs.frozen
class ReceivedMessage:
    """The fields of a received message, decoded: the base of ``streamfw.Message`` and of
    ``streamfw.aio.Message``, which add ``ack()`` and ``nack()`` (blocking or awaited).

    Hashable; ``value`` is left out of equality (a sync and an aio message never compare equal).
    """

    id: MessageId
    value: Any = attrs.field(eq=False)
    payload: bytes
    properties: Properties = attrs.field(converter=_to_properties)
    key: str | None
    publish_time: dt.datetime
    redelivery_count: int
    stream: str
    subscription: str | None


def no_acker(message_id: MessageId) -> Exception:
    """The error for ``ack()``/``nack()`` on a message no consumer received."""
    from streamfw.errors import LocalProtocolError

    return LocalProtocolError(f"{message_id}: this message was not received by a consumer")


@attrs.frozen
class Message(ReceivedMessage):
    """A received message, decoded. Hashable; ``value`` is left out of equality.

    ``ack()`` and ``nack()`` act on the consumer that received it.
    """

    _acker: Acknowledger | None = attrs.field(default=None, eq=False, repr=False, alias="acker")

    def ack(self) -> None:
        """Acknowledge: the subscription will not deliver this message again."""
        self._acker_or_raise().ack(self.id)

    def nack(self) -> None:
        """Negative-acknowledge: redeliver after the consumer's nack delay."""
        self._acker_or_raise().nack(self.id)

    def _acker_or_raise(self) -> Acknowledger:
        if self._acker is None:
            raise no_acker(self.id)
        return self._acker
