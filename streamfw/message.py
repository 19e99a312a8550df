"""Immutable message values: ids, what a producer sends, what a consumer receives."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

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

    def get(self, key: str, default: Any = None) -> Any:
        """``Mapping.get`` in one step (a codec reads its tag with it, once per message)."""
        return self._items.get(key, default)

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


NO_PROPERTIES = Properties()  # immutable: shared by every message without properties


def _to_properties(value: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> Properties:
    if isinstance(value, Properties):
        return value
    return Properties(value) if value else NO_PROPERTIES


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
        _mid_stream(self, stream)
        _mid_ledger(self, ledger)
        _mid_entry(self, entry)
        _mid_partition(self, -1)
        _mid_batch(self, -1)
        _mid_hash(self, None)  # what attrs' cache_hash __init__ sets
        return self


_new = object.__new__


def _slot_setters(cls: type, *names: str) -> tuple[Any, ...]:
    """The ``__set__`` of each named slot of ``cls``: the trusted constructors below fill a
    frozen attrs instance through them (a frozen class refuses its own ``__setattr__``), about
    40% faster than ``object.__setattr__`` by name, on paths that run once per message."""
    return tuple(getattr(cls, name).__set__ for name in names)


_mid_stream, _mid_ledger, _mid_entry, _mid_partition, _mid_batch, _mid_hash = _slot_setters(
    MessageId, "stream", "ledger", "entry", "partition", "batch_index", "_attrs_cached_hash"
)


@attrs.frozen
class Envelope:
    """What a producer hands to a transport: encoded payload, properties and key."""

    payload: bytes = attrs.field(validator=attrs.validators.instance_of(bytes))
    properties: Properties = attrs.field(default=NO_PROPERTIES, converter=_to_properties)
    key: str | None = attrs.field(default=None, validator=lambda _, __, k: _check_key(k))

    @classmethod
    def trusted(cls, payload: bytes, properties: Properties) -> Envelope:
        """A core-only constructor for an envelope without a key, from parts already checked:
        ``payload`` is ``bytes`` (its type tested by the caller) and ``properties`` a
        ``Properties``. A producer builds one per send; never use it for a peer's parts."""
        self = _new(cls)
        _env_payload(self, payload)
        _env_properties(self, properties)
        _env_key(self, None)
        return self


_env_payload, _env_properties, _env_key = _slot_setters(Envelope, "payload", "properties", "key")


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
    properties: Properties = attrs.field(default=NO_PROPERTIES, converter=_to_properties)
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
        _dl_id(self, message_id)
        _dl_payload(self, payload)
        _dl_properties(self, properties)
        _dl_key(self, key)
        _dl_time(self, publish_time)
        _dl_count(self, 0)
        return self


_dl_id, _dl_payload, _dl_properties, _dl_key, _dl_time, _dl_count = _slot_setters(
    Delivery, "message_id", "payload", "properties", "key", "publish_time", "redelivery_count"
)


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


R = TypeVar("R", bound=ReceivedMessage)


def message_maker(cls: type[R]) -> Callable[[str, str | None, Any, Delivery, Any], R]:
    """A constructor of ``cls`` (a ``ReceivedMessage`` with an ``_acker`` field) for a consumer:
    ``make(stream, subscription, acker, delivery, value)`` (a consumer binds the first three
    once with ``functools.partial``).

    The same instance ``cls(...)`` builds, without running the properties converter again
    (a ``Delivery``'s properties are a ``Properties`` already) and filling the frozen slots
    directly: it runs once per received message.
    """
    fields = ("id", "value", "payload", "properties", "key", "publish_time")
    s_id, s_value, s_payload, s_props, s_key, s_time = _slot_setters(cls, *fields)
    s_count, s_stream, s_sub, s_acker = _slot_setters(
        cls, "redelivery_count", "stream", "subscription", "_acker"
    )

    def make(stream: str, subscription: str | None, acker: Any, d: Delivery, value: Any) -> R:
        self = _new(cls)
        s_id(self, d.message_id)
        s_value(self, value)
        s_payload(self, d.payload)
        s_props(self, d.properties)
        s_key(self, d.key)
        s_time(self, d.publish_time)
        s_count(self, d.redelivery_count)
        s_stream(self, stream)
        s_sub(self, subscription)
        s_acker(self, acker)
        return self

    return make


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
        acker = self._acker
        if acker is None:
            raise no_acker(self.id)
        acker.ack(self.id)

    def nack(self) -> None:
        """Negative-acknowledge: redeliver after the consumer's nack delay."""
        self._acker_or_raise().nack(self.id)

    def _acker_or_raise(self) -> Acknowledger:
        if self._acker is None:
            raise no_acker(self.id)
        return self._acker
