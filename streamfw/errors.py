"""Errors that streamfw raises on purpose.

StreamError
├── PluginError                   plugin missing, duplicated, broken; unknown URL scheme
├── UsageError                    the caller's own mistake: retrying the same call cannot help
│   ├── ConfigError (ValueError)  an argument, option or URL that cannot be used
│   ├── Closed                    used after its own close() (client, producer, consumer)
│   └── LocalProtocolError        this side asked for something illegal (also a ProtocolError)
├── CodecError (ValueError)
│   ├── EncodeError               a value the codec cannot write
│   │   └── MessageTooLarge       over max_message_size or the server's frame limit; not sent
│   └── DecodeError               a payload the codec cannot read; ``undecodable`` is the message
├── NotFound (LookupError)
│   ├── StreamNotFound
│   │   └── StreamDeleted         the stream went away under an open producer or consumer
│   └── SubscriptionNotFound
├── Conflict                      the broker's current state refuses the request
│   ├── AlreadyExists             a stream created twice
│   ├── SubscriptionBusy          the exclusive conflict (or a different type attached)
│   ├── InUse                     delete refused while consumers are attached
│   └── LimitExceeded             a stream or subscription over the broker's cap
├── AuthError                     key, token or one-time password refused
├── Unsupported                   an option this transport cannot honour
├── SendError                     the broker refused a published message
│   └── BacklogQuotaExceeded      the stream's backlog quota is full (retry later)
├── ProtocolError
│   ├── LocalProtocolError        (see UsageError)
│   └── RemoteProtocolError       the peer sent something illegal
└── TransportError                the connection or the server failed: retrying may help
    ├── ConnectFailed             could not reach the server
    ├── ConnectionLost            an open connection dropped (and, for a producer or
    │                             consumer, could not be re-established: it is closed)
    ├── ServerError               the server answered 5xx; ``status`` is the HTTP status
    ├── OperationTimeout (TimeoutError)
    │   ├── NotSent               a send timed out before its message left: retrying is safe
    │   └── SendTimeout           sent, unconfirmed at the deadline (also an OutcomeUnknown)
    └── OutcomeUnknown            a sent message may be stored: retrying may duplicate it
        └── SendTimeout

``except TransportError`` is the retry point: it never catches ``Closed`` (your own
``close()``) or any other ``UsageError``. A producer or consumer the transport had to close
raises what closed it, never ``Closed``: ``ConnectionLost`` when it gave up reconnecting after
``reconnect_deadline`` (open a new one to retry) and ``StreamDeleted`` when its stream was
deleted (retrying cannot help until the stream is created again).

Did a failed send store its message? ``OutcomeUnknown`` (``SendTimeout`` included): maybe,
and a retry may duplicate it. Any other error from ``send``, ``send_async`` or its future
(``NotSent``, ``SendError``, ``Closed``, ``ConnectionLost``, ``StreamDeleted``,
``EncodeError``, ...): no, the message was not stored and retrying it is safe.

Messages name the stream and subscription they are about and never contain secrets.
"""

from __future__ import annotations

import warnings
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Generic

if TYPE_CHECKING:
    import asyncio
    from concurrent.futures import Future

    # PEP 696 defaults (typing.TypeVar takes ``default=`` from 3.13 only): a bare
    # ``DecodeError`` or ``SendTimeout`` means ``[Any]``, so code written for either API
    # type-checks with the bare name; see DecodeError.
    from typing_extensions import TypeVar

    from streamfw.message import MessageId, ReceivedMessage

    M = TypeVar("M", bound=ReceivedMessage, default=Any)
    F = TypeVar("F", bound="Future[MessageId] | asyncio.Future[MessageId]", default=Any)
else:
    from typing import TypeVar

    M = TypeVar("M")
    F = TypeVar("F")


class StreamError(Exception):
    """Catch this to catch everything streamfw raises deliberately."""


class PluginError(StreamError):
    """A plugin is missing, duplicated or failed to load."""


class UsageError(StreamError):
    """The caller used the API wrongly; the same call fails the same way if retried."""


class ConfigError(UsageError, ValueError):
    """An argument, option or URL that cannot be used as given."""


class CodecError(StreamError, ValueError):
    """A payload could not be encoded or decoded."""


class EncodeError(CodecError):
    """The codec cannot write this value."""


class MessageTooLarge(EncodeError):
    """A message larger than this client or the server accepts; nothing was sent.

    Raised by ``send`` before the message leaves: its payload (or a codec stage's output) is
    over ``max_message_size``, or its frame is over the transport's limit for what the server
    accepts (a transport option, e.g. ``max_send_frame_size``).
    """


class DecodeError(CodecError, Generic[M]):
    """The codec cannot read this payload.

    ``undecodable`` is the received message with ``value`` set to ``None`` (``None`` when a
    codec is used on its own, outside a consumer): ack it, nack it or inspect its
    ``payload``; the consumer keeps going either way.

    One class for both APIs, so one ``except DecodeError`` catches it anywhere, generic in
    the message type ``M``: a sync consumer raises ``DecodeError[streamfw.Message]``, an
    asyncio one ``DecodeError[streamfw.aio.Message]`` (whose ``ack()`` is awaited), and each
    API's ``on_decode_error`` callback is typed so. The bare name (what an ``except`` clause
    gives) means ``DecodeError[Any]``: no type checker is told the wrong class, and code
    written for either API type-checks unchanged; to have the message's class checked, hand
    the error to a function taking ``DecodeError[streamfw.Message]`` or
    ``DecodeError[streamfw.aio.Message]``. docs/asyncio.md says why.
    """

    def __init__(self, text: str, *, undecodable: M | None = None) -> None:
        super().__init__(text)
        self.undecodable = undecodable

    @property
    def message(self) -> M | None:
        """Deprecated alias of ``undecodable`` (the name read as the error's text)."""
        warnings.warn(
            "DecodeError.message is deprecated; use DecodeError.undecodable",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.undecodable


class NotFound(StreamError, LookupError):
    """The stream or subscription does not exist."""


class StreamNotFound(NotFound):
    """The stream does not exist (never created, or deleted)."""


class StreamDeleted(StreamNotFound):
    """The stream was deleted while this producer or consumer was attached; it is closed.

    Not a ``Closed``: the application did not close it. Retrying cannot help until the stream
    is created again (and then with a new producer or consumer).
    """


class SubscriptionNotFound(NotFound):
    """The subscription does not exist on this stream."""


class Conflict(StreamError):
    """The request conflicts with the current state of the broker."""


class AlreadyExists(Conflict):
    """The stream already exists."""


class SubscriptionBusy(Conflict):
    """Another consumer holds this exclusive subscription (or one of another type is attached)."""

    def __init__(self, text: str, *, stream: str = "", subscription: str = "") -> None:
        super().__init__(text)
        self.stream = stream
        self.subscription = subscription


class InUse(Conflict):
    """Consumers are attached; delete refused unless forced."""


class LimitExceeded(Conflict):
    """A stream or subscription refused because the broker's cap on them is reached."""


class AuthError(StreamError):
    """Credentials were refused."""


class Unsupported(StreamError):
    """The transport cannot honour this option; it is refused rather than dropped."""


class SendError(StreamError):
    """The broker refused a published message."""


class BacklogQuotaExceeded(SendError):
    """The stream's backlog quota is full: the publish was refused (nothing stored).

    Pulsar's ``producer_exception`` backlog policy. Retrying is safe and succeeds once
    consumers have acknowledged enough of the backlog.
    """


class ProtocolError(StreamError):
    """Base only: raise LocalProtocolError or RemoteProtocolError."""

    def __init__(self, text: str, *, reply: dict[str, Any] | None = None) -> None:
        super().__init__(text)
        self.reply = reply


class LocalProtocolError(ProtocolError, UsageError):
    """This side asked for something illegal (acking a message never delivered, ...)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something illegal."""


class TransportError(StreamError):
    """A connection-level failure."""


class ConnectFailed(TransportError):
    """The server could not be reached; retrying may help."""


class ConnectionLost(TransportError):
    """An open connection dropped.

    A producer or consumer that could not re-establish it within ``reconnect_deadline`` is
    closed for good and raises this from then on: open a new one to retry.
    """


class ServerError(TransportError):
    """The server answered with a 5xx status: it failed, the request may be retried.

    ``status`` is the HTTP status (an ``http.HTTPStatus`` when it is a known one).
    """

    def __init__(self, text: str, *, status: int = HTTPStatus.INTERNAL_SERVER_ERROR) -> None:
        super().__init__(text)
        self.status = status


class OperationTimeout(TransportError, TimeoutError):
    """An operation did not finish before its deadline."""


class NotSent(OperationTimeout):
    """A send timed out before its message left this process: it will never be stored.

    Raised when ``max_pending`` sends stayed unconfirmed for ``send_timeout`` (no room to
    send). Retrying the same value is safe: it cannot create a duplicate.
    """


class OutcomeUnknown(TransportError, Generic[F]):
    """A message was sent but not confirmed: the broker may have stored it, or may yet.

    Raised for a send that timed out after its message left (``SendTimeout``), and as the
    failure of an unconfirmed send when its producer gave up reconnecting, lost its stream or
    was closed (the ``ConnectionLost``, ``StreamDeleted`` or ``Closed`` that ended it is the
    ``__cause__``). Retrying may store
    the message twice: retry only if a duplicate is harmless (or deduplicated downstream),
    otherwise record the value as "maybe sent". ``future`` is the send's future when it may
    still resolve (``SendTimeout``), else ``None``.
    """

    def __init__(self, text: str, *, future: F | None = None) -> None:
        super().__init__(text)
        self.future = future


class SendTimeout(OutcomeUnknown[F], OperationTimeout):
    """``send`` waited its timeout for the broker's confirmation after the message left.

    The message stays pending: the producer keeps waiting for its receipt and resends it after
    a reconnect, so it may still be stored. ``future.result(timeout)`` tells the final
    outcome (a ``MessageId``, or an error). Retrying instead may store it twice. A ``flush``
    that times out raises it too, with ``future=None``: each ``send_async`` future tells.

    Generic in the future's type ``F``, like ``DecodeError`` in its message's: the sync API
    raises ``SendTimeout[concurrent.futures.Future[MessageId]]``, the asyncio API
    ``SendTimeout[asyncio.Future[MessageId]]`` (await it, or ``result()`` once done), and the
    bare name means ``SendTimeout[Any]`` so code for either API type-checks unchanged.
    """


class Closed(UsageError):
    """The client, producer or consumer was used after the application closed it.

    A usage error, not a ``TransportError``: retrying cannot help. What the transport closed
    raises its own reason instead (``ConnectionLost``, ``StreamDeleted``).
    """
