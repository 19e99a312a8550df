"""The user-facing producer: encodes values and sends them through a transport link."""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections.abc import Callable, Mapping
from typing import Any

from streamfw.api import ProducerLink, ProducerOptions, StreamRef
from streamfw.codec import CODEC_PROPERTY, Pipeline
from streamfw.errors import Closed, ConfigError, PluginError, SendTimeout
from streamfw.message import Envelope, MessageId, OutgoingMessage, Properties
from streamfw.plugins import NO_HOOKS, MessageHooks


class Producer:
    """Sends values to one stream. Use as a context manager; ``close()`` is idempotent.

    ``send`` blocks until the broker confirms and returns the ``MessageId``; ``send_async``
    returns a future at once (at most ``max_pending`` unconfirmed sends are in flight).
    """

    def __init__(
        self,
        link: ProducerLink,
        stream: StreamRef,
        pipeline: Pipeline,
        options: ProducerOptions,
        hooks: MessageHooks = NO_HOOKS,
    ) -> None:
        self._link = link
        self._pipeline = pipeline
        self._options = options
        self.stream = stream
        self._closed = False
        self._tag_only: dict[str, Properties] = {}
        self._hooks = hooks
        self._send_hook = hooks.send  # looked up once: None costs nothing per message
        # A link that confirms every send before returning gives the id directly: no Future.
        send_confirmed = getattr(link, "send_confirmed", None)
        self._send_confirmed: Callable[[Envelope], MessageId] | None = (
            send_confirmed if callable(send_confirmed) and hooks.send is None else None
        )

    @property
    def transport(self) -> str:
        """The URL scheme of the transport this producer sends over (``loopback``, ...)."""
        return self._hooks.transport

    @property
    def codec(self) -> str:
        return self._pipeline.name

    def send(
        self,
        value: Any,
        *,
        properties: Mapping[str, str] | None = None,
        key: str | None = None,
        timeout: float | None = None,
    ) -> MessageId:
        """Send and wait for the broker's confirmation, ``timeout`` s at most in all.

        Raises:
            NotSent: no room to send within the timeout; the message was not stored.
            SendTimeout: sent but not confirmed in time; it may still be stored, and
                ``exc.future`` tells the outcome. Retrying may store it twice.
        """
        if self._send_confirmed is not None:
            if self._closed:
                raise Closed(f"producer on stream {self.stream} is closed")
            return self._send_confirmed(self._envelope(value, properties, key))
        wait = self._options.send_timeout if timeout is None else timeout
        started = time.monotonic()
        future = self.send_async(value, properties=properties, key=key)
        try:
            # None (no send_timeout) waits as long as the confirmation takes, as before
            left = None if wait is None else max(0.0, wait - (time.monotonic() - started))
            return future.result(left)
        except cf.TimeoutError as exc:
            if future.done():  # the send's own failure: NotSent is a TimeoutError as well
                raise
            raise SendTimeout(
                f"stream {self.stream}: sent, but not confirmed within {wait:g} s; it stays"
                " pending and may still be stored (exc.future tells)",
                future=future,
            ) from exc

    def send_async(
        self,
        value: Any,
        *,
        properties: Mapping[str, str] | None = None,
        key: str | None = None,
        callback: Callable[[cf.Future[MessageId]], None] | None = None,
    ) -> cf.Future[MessageId]:
        """Send without waiting; ``callback(future)`` runs once the broker answers."""
        if self._closed:
            raise Closed(f"producer on stream {self.stream} is closed")
        envelope = self._envelope(value, properties, key)
        if self._send_hook is None:
            future = self._link.send(envelope)
        else:
            future = self._send_through_hooks(envelope)
        if callback is not None:
            future.add_done_callback(callback)
        return future

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every message sent so far is confirmed (or failed)."""
        self._link.flush(self._options.send_timeout if timeout is None else timeout)

    def close(self) -> None:
        """Flush what is pending, then close. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            self._link.flush(self._options.send_timeout)
        finally:
            self._link.close()

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Producer stream={self.stream.name!r} codec={self.codec!r} {state}>"

    def _send_through_hooks(self, envelope: Envelope) -> cf.Future[MessageId]:
        assert self._send_hook is not None
        props = envelope.properties
        message = OutgoingMessage(
            self.stream.name, envelope.payload, dict(props), envelope.key, props[CODEC_PROPERTY]
        )
        future = self._send_hook(producer=self, message=message)
        if not isinstance(future, cf.Future):
            raise PluginError(
                f"a streamfw_send hook returned {type(future).__name__}, not the send's Future"
            )
        return future

    def _transmit(self, message: OutgoingMessage) -> cf.Future[MessageId]:
        """The send itself, innermost in the ``streamfw_send`` hook's wrappers (``_Sender``)."""
        props = message.properties
        if props.get(CODEC_PROPERTY) != message.codec:
            raise PluginError(
                f"a streamfw_send hook changed the reserved property {CODEC_PROPERTY!r}"
            )
        try:
            envelope = Envelope(message.payload, Properties(props), message.key)
        except TypeError as exc:
            raise PluginError(f"a streamfw_send hook wrote bad properties: {exc}") from exc
        return self._link.send(envelope)

    def _envelope(
        self, value: Any, properties: Mapping[str, str] | None, key: str | None
    ) -> Envelope:
        if key is not None and not isinstance(key, str):
            raise ConfigError(f"key must be a str or None, got {type(key).__name__}")
        if properties and CODEC_PROPERTY in properties:
            raise ConfigError(f"property {CODEC_PROPERTY!r} is reserved for the codec pipeline")
        payload, tag = self._pipeline.encode(value)
        if not properties:  # the common case: one immutable Properties per tag, reused
            props = self._tag_only.get(tag)
            if props is None:
                props = self._tag_only[tag] = Properties({CODEC_PROPERTY: tag})
            return Envelope(payload, props, key)
        try:
            return Envelope(payload, Properties({**properties, CODEC_PROPERTY: tag}), key)
        except TypeError as exc:
            raise ConfigError(str(exc)) from exc
