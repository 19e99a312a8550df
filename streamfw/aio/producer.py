"""The asyncio producer: encodes values and sends them through an ``AsyncProducerLink``."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
from collections.abc import Mapping
from typing import Any

from streamfw.aio.spi import AsyncProducerLink
from streamfw.api import StreamRef
from streamfw.codec import CODEC_PROPERTY, Pipeline
from streamfw.errors import Closed, ConfigError, PluginError, SendTimeout
from streamfw.message import Envelope, MessageId, OutgoingMessage, Properties
from streamfw.options import ProducerOptions
from streamfw.plugins import NO_HOOKS, MessageHooks


class Producer:
    """Sends values to one stream. Use with ``async with``; ``close()`` is idempotent.

    ``await send(value)`` returns the ``MessageId`` once the broker confirmed it.
    ``await send_async(value)`` returns as soon as the message is on its way, with an
    ``asyncio.Future`` of the confirmation: it waits only while ``max_pending`` sends are
    unconfirmed (the same bound as the sync ``send_async``), so a loop of them cannot queue
    without limit. Messages go out in the order the calls returned.

    Cancelling ``send`` or ``send_async`` while it waits for room sends nothing (retrying is
    safe). Cancelling ``send`` while it waits for the confirmation does not withdraw the
    message: it stays pending and may be stored, as after a ``SendTimeout``.

    Message hooks (``streamfw_send`` wrappers) run as for the sync producer, with one
    difference: the wrappers' ``yield`` gives the confirmation's ``concurrent.futures.Future``
    at once, and the message is handed to the link when the wrappers have returned; a failure
    to hand it over (``NotSent``, ``Closed``, a cancellation) fails that future too.
    """

    def __init__(
        self,
        link: AsyncProducerLink,
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
        self._outgoing: Envelope | None = None  # what the hooks' innermost send handed over

    @property
    def transport(self) -> str:
        """The URL scheme of the transport this producer sends over (``loopback``, ...)."""
        return self._hooks.transport

    @property
    def codec(self) -> str:
        return self._pipeline.name

    @property
    def options(self) -> ProducerOptions:
        return self._options

    async def send(
        self,
        value: Any,
        *,
        properties: Mapping[str, str] | None = None,
        key: str | None = None,
        timeout: float | None = None,
    ) -> MessageId:
        """Send and wait for the broker's confirmation, ``timeout`` s at most in all
        (default: the producer's ``send_timeout``; ``None`` there waits as long as it takes).

        Raises:
            NotSent: no room to send in time; the message was not stored.
            SendTimeout: sent but not confirmed in time; it may still be stored, and
                ``exc.future`` (an ``asyncio.Future``) tells the outcome. Retrying may store
                it twice.
        """
        loop = asyncio.get_running_loop()
        wait = self._options.send_timeout if timeout is None else timeout
        started = loop.time()
        future = await self.send_async(value, properties=properties, key=key)
        if future.done():  # the loopback case: confirmed before the send returned
            return future.result()
        left = None if wait is None else max(0.0, wait - (loop.time() - started))
        # asyncio.wait neither cancels the future on timeout nor when this task is cancelled:
        # the send stays pending either way.
        await asyncio.wait((future,), timeout=left)
        if not future.done():
            raise SendTimeout(
                f"stream {self.stream}: sent, but not confirmed within {wait:g} s; it stays"
                " pending and may still be stored (exc.future tells)",
                future=future,  # type: ignore[arg-type]  # an asyncio future under streamfw.aio
            )
        return future.result()

    async def send_async(
        self,
        value: Any,
        *,
        properties: Mapping[str, str] | None = None,
        key: str | None = None,
    ) -> asyncio.Future[MessageId]:
        """Send without waiting for the confirmation; return its future.

        Waits only for room (at most ``max_pending`` unconfirmed sends; ``NotSent`` after
        ``send_timeout``). The future resolves to the ``MessageId``, or fails as ``send``
        would (``SendError``, ``OutcomeUnknown``).
        """
        if self._closed:
            raise Closed(f"producer on stream {self.stream} is closed")
        envelope = self._envelope(value, properties, key)
        if self._send_hook is None:
            return await self._link.send(envelope)
        return await self._send_through_hooks(envelope)

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every message sent so far is confirmed (or failed).

        Raises:
            SendTimeout: some were still unconfirmed after ``timeout`` seconds (default: the
                producer's ``send_timeout``).
        """
        await self._link.flush(self._options.send_timeout if timeout is None else timeout)

    async def close(self) -> None:
        """Flush what is pending, then close. Safe to call twice.

        Cancelled during the flush, the producer is closed all the same; what was still
        unconfirmed fails with ``OutcomeUnknown``.
        """
        if self._closed:
            return
        self._closed = True
        try:
            await self._link.flush(self._options.send_timeout)
        finally:
            await asyncio.shield(self._link.close())

    async def __aenter__(self) -> Producer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<aio.Producer stream={self.stream.name!r} codec={self.codec!r} {state}>"

    async def _send_through_hooks(self, envelope: Envelope) -> asyncio.Future[MessageId]:
        props = envelope.properties
        message = OutgoingMessage(
            self.stream.name, envelope.payload, dict(props), envelope.key, props[CODEC_PROPERTY]
        )
        confirmation = self._send_hook(producer=self, message=message)  # type: ignore[misc]
        outgoing, self._outgoing = self._outgoing, None
        if not isinstance(confirmation, cf.Future) or outgoing is None:
            raise PluginError("a streamfw_send hook did not return the send's Future")
        try:
            future = await self._link.send(outgoing)
        except BaseException as exc:  # not handed over: the hooks' future tells them so
            if isinstance(exc, asyncio.CancelledError):
                confirmation.cancel()
            elif not confirmation.done():
                confirmation.set_exception(exc)
            raise
        if future.done():  # confirmed inline (loopback): the hooks hear of it at once
            _copy(future, confirmation)
        else:
            future.add_done_callback(lambda f: _copy(f, confirmation))
        return future

    def _transmit(self, message: OutgoingMessage) -> cf.Future[MessageId]:
        """The innermost ``streamfw_send`` (``plugins._Sender``): keep what the wrappers made
        of the message for ``_send_through_hooks`` to hand over, and give their future."""
        props = message.properties
        if props.get(CODEC_PROPERTY) != message.codec:
            raise PluginError(
                f"a streamfw_send hook changed the reserved property {CODEC_PROPERTY!r}"
            )
        try:
            self._outgoing = Envelope(message.payload, Properties(props), message.key)
        except TypeError as exc:
            raise PluginError(f"a streamfw_send hook wrote bad properties: {exc}") from exc
        return cf.Future()

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


def _copy(future: asyncio.Future[MessageId], confirmation: cf.Future[MessageId]) -> None:
    """The link's outcome, told to the hooks' future."""
    if confirmation.done():  # a hook cancelled it: nothing to tell
        return
    if future.cancelled():
        confirmation.cancel()
    elif future.exception() is not None:
        confirmation.set_exception(future.exception())
    else:
        confirmation.set_result(future.result())
