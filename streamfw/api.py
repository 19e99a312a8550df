"""The transport SPI: what a transport plugin implements, and the option values it receives.

Users never call these directly: ``streamfw.connect()`` returns a ``Client`` that applies the
codec pipeline and hands transports plain ``Envelope`` values. A transport plugin registers a
``TransportSpec`` whose factory builds a ``Transport`` from a ``TransportConfig``.
"""

from __future__ import annotations

import argparse
import secrets
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from streamfw.message import Delivery, Envelope, MessageId

# The option values live in streamfw.options; transports have always imported them from here.
from streamfw.options import SUBSCRIPTION_TYPES as SUBSCRIPTION_TYPES
from streamfw.options import ConsumerOptions as ConsumerOptions
from streamfw.options import InitialPosition as InitialPosition
from streamfw.options import ProducerOptions as ProducerOptions
from streamfw.options import ReaderOptions as ReaderOptions
from streamfw.options import SubscriptionType as SubscriptionType
from streamfw.options import check_name as check_name

if TYPE_CHECKING:
    from streamfw.aio.spi import AsyncTransportFactory


def _stream_name(_: object, __: object, value: str) -> None:
    check_name("stream", value)


@attrs.frozen(cache_hash=True)  # the broker's key for a stream, looked up on every publish
class StreamRef:
    """A stream as the user names it; ``local`` streams live in one region only."""

    name: str = attrs.field(validator=_stream_name)
    local: bool = False

    def __str__(self) -> str:
        return self.name + (" (local)" if self.local else "")


@attrs.frozen
class SubscriptionInfo:
    name: str
    type: SubscriptionType
    backlog: int
    consumers: int


@attrs.frozen
class ConsumerStats:
    """One attached consumer: its name and how many messages it holds unacknowledged."""

    name: str
    unacked: int


@attrs.frozen
class SubscriptionStats:
    """One durable subscription: type, messages not yet acknowledged, attached consumers."""

    type: SubscriptionType
    backlog: int  # messages of the stream this subscription has not acknowledged
    unacked: int  # of those, handed to a consumer and not acknowledged yet
    consumers: tuple[ConsumerStats, ...]


@attrs.frozen
class StreamStats:
    """A stream's statistics, as a broker keeps them (a transport may answer in its own shape).

    Attributes:
        published: messages published to the stream since it was created.
        storage_size: payload bytes the stream holds.
        producers: ids of the producers attached.
        subscriptions: durable subscription name -> its statistics.
    """

    published: int
    storage_size: int
    producers: tuple[int, ...]
    subscriptions: Mapping[str, SubscriptionStats]


def first_ledger_now() -> int:
    """A broker's first ledger number from the wall clock, for a broker's front end to pass.

    Milliseconds since the epoch shifted left 16 bits, plus a random 15-bit part: ids of two
    broker instances (a server and its restart) never alias, and a later one's are larger.
    """
    return (time.time_ns() // 1_000_000 << 16) + secrets.randbelow(2**15)


@attrs.frozen
class TransportConfig:
    """The URL a user connected to and the keyword options they passed."""

    url: str
    options: Mapping[str, Any] = attrs.field(factory=dict, repr=False)  # may hold secrets


class Acknowledger(Protocol):
    def ack(self, message_id: MessageId) -> None: ...

    def nack(self, message_id: MessageId) -> None: ...


class ProducerLink(Protocol):
    """One open producer. ``send`` returns a future resolved once the broker stored it."""

    def send(self, envelope: Envelope) -> Future[MessageId]: ...

    def flush(self, timeout: float | None) -> None: ...

    def close(self) -> None: ...


class InlineProducerLink(ProducerLink, Protocol):
    """A producer link whose broker confirms every send before ``send`` returns (loopback).

    Optional: ``Producer.send`` calls ``send_confirmed`` when a link has it, and so builds
    no ``Future`` per message; ``send_async`` still calls ``send``. A link without it (every
    link written before it existed) works as before. ``send_confirmed`` returns the id the
    broker gave, or raises what ``send``'s future would have carried.
    """

    def send_confirmed(self, envelope: Envelope) -> MessageId: ...


class ConsumerLink(Acknowledger, Protocol):
    """One attached consumer or reader. ``receive`` returns None when ``timeout`` passes."""

    def receive(self, timeout: float | None) -> Delivery | None: ...

    def close(self) -> None: ...


class Transport(Protocol):
    """What a transport plugin provides; every method may raise a ``StreamError``."""

    def create_stream(self, stream: StreamRef) -> None: ...

    def delete_stream(self, stream: StreamRef, *, force: bool) -> None: ...

    def list_streams(self, *, local: bool | None) -> list[StreamRef]: ...

    def backlog(self, stream: StreamRef) -> int: ...

    def stats(self, stream: StreamRef) -> dict[str, Any]: ...

    def subscriptions(self, stream: StreamRef) -> list[SubscriptionInfo]: ...

    def delete_subscription(self, stream: StreamRef, subscription: str) -> None: ...

    def clear_backlog(self, stream: StreamRef, subscription: str | None) -> None: ...

    def open_producer(self, stream: StreamRef, options: ProducerOptions) -> ProducerLink: ...

    def open_consumer(
        self, stream: StreamRef, subscription: str, options: ConsumerOptions
    ) -> ConsumerLink: ...

    def open_reader(self, stream: StreamRef, options: ReaderOptions) -> ConsumerLink: ...

    def close(self) -> None: ...


@attrs.frozen
class TransportSpec:
    """What a plugin registers: a URL scheme and how to build a transport for it.

    ``async_factory``, if set, is an async function building the native asyncio transport
    (``streamfw.aio.spi``); without it ``streamfw.aio`` runs ``factory``'s transport in
    worker threads.
    """

    name: str
    factory: Callable[[TransportConfig], Transport]
    summary: str = ""
    async_factory: AsyncTransportFactory | None = None


@attrs.frozen
class CommandSpec:
    """What a plugin registers to add a ``streamfw NAME`` command to the CLI.

    Attributes:
        name: the sub-command (``streamfw NAME``).
        summary: one line for ``streamfw --help``.
        add_arguments: declares the command's options on its sub-parser.
        run: runs the parsed command and returns the exit status.
    """

    name: str
    summary: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
