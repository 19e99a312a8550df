"""The asyncio producer: encodes values and sends them through an ``AsyncProducerLink``."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
from collections.abc import Callable, Mapping
from typing import Any

from streamfw.aio.spi import AsyncProducerLink
from streamfw.errors import PluginError
from streamfw.message import Envelope, MessageId, OutgoingMessage
from streamfw.options import ProducerOptions
from streamfw.producer_core import ProducerCore

# A link may confirm a send before returning it (loopback does, from the event loop itself),
# so a loop of awaited sends would never suspend and would starve every other task. After
# this many sends in a row confirmed so, the next send first yields to the event loop once
# (``await asyncio.sleep(0)``, before the message is handed over, so cancelling it there
# sends nothing). docs/asyncio.md gives its cost, measured with benchmarks/aio_loopback.py.
INLINE_SENDS_PER_YIELD = 16


class Producer(ProducerCore[AsyncProducerLink]):
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

    A send the link confirms at once (loopback) does not suspend the caller, but every
    ``INLINE_SENDS_PER_YIELD``-th such send in a row yields to the event loop first, so a
    tight send loop leaves other tasks their turn.
    """

    _KIND = "aio.Producer"

    def _setup(self) -> None:
        self._handed_over: Envelope | None = None  # what the hooks' innermost send made
        self._inline_sends = 0  # sends in a row the link confirmed without suspending
        # A link that confirms every send before returning (AsyncInlineProducerLink) gives
        # the id directly to ``send``: no coroutine of the link's, no asyncio.Future. The
        # streamfw_send wrappers need the future, so with them every send takes the link's.
        send_confirmed = getattr(self._link, "send_confirmed", None)
        self._send_confirmed: Callable[[Envelope], MessageId] | None = (
            send_confirmed if callable(send_confirmed) and self._send_hook is None else None
        )

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
        send_confirmed = self._send_confirmed
        if send_confirmed is not None:  # confirmed before it returns: nothing to time out
            self._check_open()
            envelope = self._envelope(value, properties, key)
            if self._inline_sends >= INLINE_SENDS_PER_YIELD:
                await self._yield_before_handing_over()
            self._inline_sends += 1  # stored or refused, it did not suspend
            return send_confirmed(envelope)
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
            raise self._send_timeout(wait, future)
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
        self._check_open()
        envelope = self._envelope(value, properties, key)
        if self._inline_sends >= INLINE_SENDS_PER_YIELD:
            await self._yield_before_handing_over()
        if self._send_hook is None:
            future = await self._link.send(envelope)
        else:
            future = await self._send_through_hooks(envelope)
        self._inline_sends = self._inline_sends + 1 if future.done() else 0
        return future

    async def _yield_before_handing_over(self) -> None:
        """Give the other tasks their turn after a run of sends confirmed inline."""
        self._inline_sends = 0
        await asyncio.sleep(0)  # cancelled here, the send has handed nothing over
        self._check_open()  # another task may have closed this producer meanwhile

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

    async def _send_through_hooks(self, envelope: Envelope) -> asyncio.Future[MessageId]:
        assert self._send_hook is not None
        confirmation = self._send_hook(producer=self, message=self._outgoing(envelope))
        outgoing, self._handed_over = self._handed_over, None
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
        self._handed_over = self._hooked_envelope(message)
        return cf.Future()


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
