"""streamfw: produce and consume message streams over pluggable transports."""

from streamfw.api import (
    ConsumerOptions,
    ProducerOptions,
    ReaderOptions,
    StreamRef,
    SubscriptionInfo,
    Transport,
    TransportConfig,
    TransportSpec,
)
from streamfw.client import Client, Stream, connect
from streamfw.codec import CodecSpec
from streamfw.consumer import Consumer
from streamfw.errors import (
    AlreadyExists,
    AuthError,
    Closed,
    CodecError,
    ConfigError,
    Conflict,
    ConnectFailed,
    ConnectionLost,
    DecodeError,
    EncodeError,
    InUse,
    LocalProtocolError,
    NotFound,
    OperationTimeout,
    PluginError,
    ProtocolError,
    RemoteProtocolError,
    SendError,
    StreamError,
    StreamNotFound,
    SubscriptionBusy,
    SubscriptionNotFound,
    TransportError,
    Unsupported,
)
from streamfw.hookspecs import hookimpl
from streamfw.message import Delivery, Envelope, Message, MessageId, Properties
from streamfw.plugins import discover
from streamfw.producer import Producer

__all__ = [
    "AlreadyExists", "AuthError", "Client", "Closed", "CodecError", "CodecSpec", "ConfigError",
    "Conflict", "ConnectFailed", "ConnectionLost", "Consumer", "ConsumerOptions", "DecodeError",
    "Delivery", "EncodeError", "Envelope", "InUse", "LocalProtocolError", "Message", "MessageId",
    "NotFound", "OperationTimeout", "PluginError", "Producer", "ProducerOptions", "Properties",
    "ProtocolError", "ReaderOptions", "RemoteProtocolError", "SendError", "Stream", "StreamError",
    "StreamNotFound", "StreamRef", "SubscriptionBusy", "SubscriptionInfo", "SubscriptionNotFound",
    "Transport", "TransportConfig", "TransportSpec", "TransportError", "Unsupported", "connect",
    "discover", "hookimpl",
]
__version__ = "0.1.0"
