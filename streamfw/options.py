"""Producer, consumer and reader options: each written once, with its default and its check.

An option is a field of a keyword-only, frozen attrs class (``ProducerOptions``,
``ConsumerOptions``, ``ReaderOptions``); the field holds its only default and a validator that
raises ``ConfigError`` naming the option. Transports receive these values; users may build
them too (the sync and the asyncio API take the same ones).

The client methods do not repeat the options in their signatures. They take
``**options: Unpack[ConsumerOptionsDict]`` and hand the keywords to ``options_from_keywords``.
A ``TypedDict`` per class names the same fields with the same types, and a test keeps the two
in step, so:

* ``mypy --strict`` checks a user's ``stream.consumer("s", receiver_queue_size="9")`` and
  flags a misspelt option, and IDEs complete and document the keywords (PEP 692);
* a default lives in the attrs class alone: a method signature cannot drift from it, and the
  sync and asyncio clients cannot disagree.

The alternatives lose one of these: writing every parameter in each method (as before)
repeats each default in every client; a sentinel default (``= UNSET``) still repeats every
name and type in every method and shows ``UNSET`` where the value should be; taking an options
object only (``stream.consumer("s", ConsumerOptions(...))``) makes the common case verbose.

To add an option, add a field (with a default and a validator) to the class and the same key
to its ``...OptionsDict``; ``tests/test_options.py`` fails until both are there.
"""

from __future__ import annotations

import difflib
import math
import re
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypedDict, TypeGuard, TypeVar

import attrs

from streamfw.errors import ConfigError
from streamfw.message import MessageId

SubscriptionType = Literal["exclusive", "failover", "shared", "key_shared"]
SUBSCRIPTION_TYPES: tuple[SubscriptionType, ...] = ("exclusive", "failover", "shared", "key_shared")
InitialPosition = Literal["latest", "earliest"]
INITIAL_POSITIONS: tuple[InitialPosition, ...] = ("latest", "earliest")
ReaderStart = Literal["earliest", "latest"] | MessageId
MAX_RECEIVER_QUEUE = 1000  # Pulsar's WebSocket proxy caps receiverQueueSize here
MAX_NAME_LENGTH = 200  # any name: they travel in URL paths and queries, and show in stats
JAVA_INT_MAX = 2**31 - 1  # Pulsar keeps counts, levels and seconds in Java ints
MAX_PRIORITY_LEVEL = JAVA_INT_MAX  # priorityLevel; 0 is the highest
MAX_REDELIVER_COUNT = JAVA_INT_MAX  # maxRedeliverCount
# Stream, subscription and tenant names end up in URL paths and topic names: keep them to
# what Pulsar accepts unescaped.
_NAME = re.compile(rf"[A-Za-z0-9_.\-]{{1,{MAX_NAME_LENGTH}}}\Z")


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _name(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    # Names show up in stats, logs and errors: no control characters, bounded length.
    if value is not None and not (
        isinstance(value, str) and 0 < len(value) <= MAX_NAME_LENGTH and value.isprintable()
    ):
        raise ConfigError(
            f"{attribute.name} must be None or 1-{MAX_NAME_LENGTH} printable characters,"
            f" got {value!r:.80}"
        )


def _positive_seconds_or_none(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    # Not finite (inf, nan) would become a timer deadline that never orders or never comes.
    if value is not None and not (_is_number(value) and 0 < value < math.inf):
        raise ConfigError(
            f"{attribute.name} must be a positive, finite number of seconds or None,"
            f" got {value!r:.80}"
        )


def _seconds(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not (_is_number(value) and 0 <= value < math.inf):
        raise ConfigError(
            f"{attribute.name} must be a finite number of seconds >= 0, got {value!r:.80}"
        )


def check_limit(name: str, value: object) -> int:
    """Return ``value`` if it is a usable count or size (an int of at least 1), else raise
    ConfigError naming ``name``. The one check of every such limit, options and broker's."""
    if not (_is_int(value) and value >= 1):
        raise ConfigError(f"{name} must be an int of at least 1, got {value!r:.80}")
    return value


def at_least_one(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """``check_limit`` as an attrs validator."""
    check_limit(attribute.name, value)


def _queue_size(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not (_is_int(value) and 1 <= value <= MAX_RECEIVER_QUEUE):
        raise ConfigError(
            f"{attribute.name} must be an int from 1 to {MAX_RECEIVER_QUEUE}, got {value!r:.80}"
        )


Validator = Callable[[object, "attrs.Attribute[Any]", object], None]


def _one_of(*allowed: str) -> Validator:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value not in allowed:
            raise ConfigError(
                f"{attribute.name} {value!r:.80} is unknown (known: {', '.join(allowed)})"
            )

    return check


def _priority(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not (_is_int(value) and 0 <= value <= MAX_PRIORITY_LEVEL):
        raise ConfigError(
            f"{attribute.name} must be an int from 0 (highest) to {MAX_PRIORITY_LEVEL},"
            f" got {value!r:.80}"
        )


def _positive_int_or_none(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not (_is_int(value) and 1 <= value <= MAX_REDELIVER_COUNT):
        raise ConfigError(
            f"{attribute.name} must be None or an int from 1 to {MAX_REDELIVER_COUNT},"
            f" got {value!r:.80}"
        )


def check_name(kind: str, value: object) -> str:
    """Return ``value`` if it is a usable stream/subscription name, else raise ConfigError."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise ConfigError(
            f"{kind} name {value!r:.80} is invalid: use 1-{MAX_NAME_LENGTH} characters from"
            " A-Z a-z 0-9 _ . -"
        )
    return value


def _stream_name_or_none(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        check_name(attribute.name, value)


def _bool(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{attribute.name} must be True or False, got {value!r:.80}")


def _start(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, MessageId) and value not in ("earliest", "latest"):
        raise ConfigError(
            f"{attribute.name} must be 'earliest', 'latest' or a MessageId, got {value!r:.80}"
        )


@attrs.frozen(kw_only=True)
class ProducerOptions:
    """How a producer sends (Pulsar's producer parameters).

    Attributes:
        name: the producer's name, shown in stream stats; None lets the broker pick one.
        max_pending: unconfirmed sends in flight before ``send`` waits (Pulsar's
            ``maxPendingMessages``).
        send_timeout: seconds one ``send`` waits for its confirmation; None waits as long as
            it takes (Pulsar's ``sendTimeout``, 0 there).
    """

    name: str | None = attrs.field(default=None, validator=_name)
    max_pending: int = attrs.field(default=1000, validator=at_least_one)
    send_timeout: float | None = attrs.field(default=30.0, validator=_positive_seconds_or_none)


@attrs.frozen(kw_only=True)
class ConsumerOptions:
    """How a consumer attaches to its subscription (Pulsar's consumer parameters).

    Attributes:
        name: the consumer's name, shown in subscription stats; None lets the broker pick.
        type: ``exclusive``, ``failover``, ``shared`` or ``key_shared``.
        initial_position: where a new subscription starts: ``latest`` or ``earliest``.
        receiver_queue_size: messages the broker sends before the consumer takes some (its
            permits), 1 to 1000 (the WebSocket API's maximum).
        ack_timeout: seconds after which an unacknowledged message is redelivered; None never.
        nack_delay: seconds before a negatively acknowledged message is redelivered.
        priority_level: 0 (the default) is the highest; on a Failover subscription the
            active consumer is one of those with the highest priority (Pulsar's
            ``priorityLevel``; docs/protocol.md §15.4).
        max_redeliver_count: hand a message back at most this many times; the next nack or
            ack timeout sends it to ``dead_letter_stream`` instead (Pulsar's
            ``maxRedeliverCount``; None: no dead-letter policy; docs/protocol.md §15.2).
        dead_letter_stream: where those messages go; default ``<stream>-<subscription>-DLQ``.
            Needs ``max_redeliver_count``.
        pull_mode: the consumer gets only the messages it asks for (``receive_many(n)``
            asks for n, ``receive()`` for one), not ``receiver_queue_size`` in advance
            (Pulsar's WebSocket ``pullMode``; docs/protocol.md §15.5).
    """

    name: str | None = attrs.field(default=None, validator=_name)
    type: SubscriptionType = attrs.field(
        default="exclusive", validator=_one_of(*SUBSCRIPTION_TYPES)
    )
    initial_position: InitialPosition = attrs.field(
        default="latest", validator=_one_of(*INITIAL_POSITIONS)
    )
    receiver_queue_size: int = attrs.field(default=MAX_RECEIVER_QUEUE, validator=_queue_size)
    ack_timeout: float | None = attrs.field(default=None, validator=_positive_seconds_or_none)
    nack_delay: float = attrs.field(default=60.0, validator=_seconds)
    priority_level: int = attrs.field(default=0, validator=_priority)
    max_redeliver_count: int | None = attrs.field(default=None, validator=_positive_int_or_none)
    dead_letter_stream: str | None = attrs.field(default=None, validator=_stream_name_or_none)
    pull_mode: bool = attrs.field(default=False, validator=_bool)

    def __attrs_post_init__(self) -> None:
        if self.dead_letter_stream is not None and self.max_redeliver_count is None:
            raise ConfigError(
                "dead_letter_stream needs max_redeliver_count (after how many redeliveries a"
                " message goes there)"
            )


@attrs.frozen(kw_only=True)
class ReaderOptions:
    """A non-durable reader's options.

    Attributes:
        start: ``earliest``, ``latest``, or a ``MessageId`` to read just after.
        receiver_queue_size: as for ``ConsumerOptions``.
        name: the reader's name; None lets the broker pick one.
    """

    start: ReaderStart = attrs.field(default="latest", validator=_start)
    receiver_queue_size: int = attrs.field(default=MAX_RECEIVER_QUEUE, validator=_queue_size)
    name: str | None = attrs.field(default=None, validator=_name)


class ProducerOptionsDict(TypedDict, total=False):
    """The keywords of ``Stream.producer``: the fields of ``ProducerOptions``."""

    name: str | None
    max_pending: int
    send_timeout: float | None


class ConsumerOptionsDict(TypedDict, total=False):
    """The keywords of ``Stream.consumer``: the fields of ``ConsumerOptions``."""

    name: str | None
    type: SubscriptionType
    initial_position: InitialPosition
    receiver_queue_size: int
    ack_timeout: float | None
    nack_delay: float
    priority_level: int
    max_redeliver_count: int | None
    dead_letter_stream: str | None
    pull_mode: bool
    consumer_name: str | None  # deprecated spelling of ``name``; removed in the next release


class ReaderOptionsDict(TypedDict, total=False):
    """The keywords of ``Stream.reader``: the fields of ``ReaderOptions``."""

    start: ReaderStart
    receiver_queue_size: int
    name: str | None


Options = TypeVar("Options", ProducerOptions, ConsumerOptions, ReaderOptions)

# Old keyword -> its new spelling, accepted with a DeprecationWarning for one release.
RENAMED: Mapping[type, Mapping[str, str]] = {ConsumerOptions: {"consumer_name": "name"}}


def options_from_keywords(
    cls: type[Options],
    keywords: Mapping[str, object],
    *,
    positional: Mapping[str, object] | None = None,
) -> Options:
    """Build ``cls`` from the keywords a user passed to a client method.

    The one place where ``Stream.producer/consumer/reader``, sync and asyncio alike, turn
    ``**options`` into an options value. Call it directly from the public method, so that a
    deprecation warning points at the line that called that method.

    Args:
        cls: ``ProducerOptions``, ``ConsumerOptions`` or ``ReaderOptions``.
        keywords: the method's ``**options``.
        positional: options the method took positionally (a reader's ``start``), already
            dropped if not given.

    Raises:
        ConfigError: an unknown option (with the closest known one), an option given twice,
            or a value its validator refuses.
    """
    given: dict[str, Any] = dict(keywords)
    for old, new in RENAMED.get(cls, {}).items():
        if old in given:
            warnings.warn(
                f"{old}= is deprecated and will be removed: use {new}=",
                DeprecationWarning,
                stacklevel=3,
            )
            if new in given:
                raise ConfigError(f"{old}= and {new}= name the same option: use {new}= alone")
            given[new] = given.pop(old)
    for key, value in (positional or {}).items():
        if key in given:
            raise ConfigError(f"{key} given both positionally and as a keyword")
        given[key] = value
    known = [field.name for field in attrs.fields(cls)]
    for key in given:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"unknown {cls.__name__} option {key!r:.80}: {hint}(known: {', '.join(known)})"
            )
    return cls(**given)
