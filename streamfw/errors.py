"""Errors that streamfw raises on purpose.

StreamError
├── PluginError                   plugin missing, duplicated, broken; unknown URL scheme
├── ConfigError (ValueError)      an argument or URL that cannot be used
├── CodecError (ValueError)
│   ├── EncodeError               a value the codec cannot write
│   └── DecodeError               a payload the codec cannot read; carries the raw message
├── NotFound (LookupError)
│   ├── StreamNotFound
│   └── SubscriptionNotFound
├── AlreadyExists                 a stream created twice
├── Conflict
│   ├── SubscriptionBusy          the exclusive conflict (or a different type attached)
│   └── InUse                     delete refused while consumers are attached
├── AuthError                     key, token or one-time password refused
├── Unsupported                   an option this transport cannot honour
├── SendError                     the broker refused a published message
├── ProtocolError
│   ├── LocalProtocolError        this side asked for something illegal
│   └── RemoteProtocolError       the peer sent something illegal
└── TransportError
    ├── ConnectFailed             could not reach the server (retryable)
    ├── ConnectionLost            an open connection dropped
    ├── OperationTimeout (TimeoutError)
    └── Closed                    the producer, consumer or client was closed

Messages name the stream and subscription they are about and never contain secrets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamfw.message import Message


class StreamError(Exception):
    """Catch this to catch everything streamfw raises deliberately."""


class PluginError(StreamError):
    """A plugin is missing, duplicated or failed to load."""


class ConfigError(StreamError, ValueError):
    """An argument, option or URL that cannot be used as given."""


class CodecError(StreamError, ValueError):
    """A payload could not be encoded or decoded."""


class EncodeError(CodecError):
    """The codec cannot write this value."""


class DecodeError(CodecError):
    """The codec cannot read this payload.

    ``message`` is the received message with ``value`` set to ``None``: ack it, nack it or
    inspect its ``payload``; the consumer keeps going either way.
    """

    def __init__(self, text: str, *, message: Message | None = None) -> None:
        super().__init__(text)
        self.message = message


class NotFound(StreamError, LookupError):
    """The stream or subscription does not exist."""


class StreamNotFound(NotFound):
    pass


class SubscriptionNotFound(NotFound):
    pass


class AlreadyExists(StreamError):
    """The stream already exists."""


class Conflict(StreamError):
    """The request conflicts with the current state of the broker."""


class SubscriptionBusy(Conflict):
    """Another consumer holds this exclusive subscription (or one of another type is attached)."""

    def __init__(self, text: str, *, stream: str = "", subscription: str = "") -> None:
        super().__init__(text)
        self.stream = stream
        self.subscription = subscription


class InUse(Conflict):
    """Consumers are attached; delete refused unless forced."""


class AuthError(StreamError):
    """Credentials were refused."""


class Unsupported(StreamError):
    """The transport cannot honour this option; it is refused rather than dropped."""


class SendError(StreamError):
    """The broker refused a published message."""


class ProtocolError(StreamError):
    """Base only: raise LocalProtocolError or RemoteProtocolError."""

    def __init__(self, text: str, *, reply: dict[str, Any] | None = None) -> None:
        super().__init__(text)
        self.reply = reply


class LocalProtocolError(ProtocolError):
    """This side asked for something illegal (acking a message never delivered, ...)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something illegal."""


class TransportError(StreamError):
    """A connection-level failure."""


class ConnectFailed(TransportError):
    """The server could not be reached; retrying may help."""


class ConnectionLost(TransportError):
    """An open connection dropped."""


class OperationTimeout(TransportError, TimeoutError):
    """An operation did not finish before its deadline."""


class Closed(TransportError):
    """The client, producer or consumer was closed."""
