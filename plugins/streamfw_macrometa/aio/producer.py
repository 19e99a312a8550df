"""The asyncio producer link: drives a ``ProducerProtocol`` over one ``AsyncLink``.

What the protocol decides (contexts, the window's accounting, receipts, which error a failed
send gets, what to resend after a reconnect) lives in ``protocol/producer.py``, as for the
threaded link. This link adds the event loop's side: ``send`` waits for room in the window
(up to ``send_timeout``, else ``NotSent``), then numbers the message and queues its frame in
one step with no ``await`` in between, so a cancelled ``send`` took no slot and sent nothing;
the writer task writes frames in context order; receipts resolve the ``asyncio.Future`` each
send returned (one the application cancelled is left alone).
"""

from __future__ import annotations

import asyncio
import logging

from streamfw.api import ProducerOptions, StreamRef
from streamfw.errors import NotSent, SendTimeout, StreamError
from streamfw.message import Envelope, MessageId
from streamfw_macrometa.aio.link import AsyncLink, Endpoint
from streamfw_macrometa.aio.waiters import Waiters
from streamfw_macrometa.protocol.producer import Confirmed, Failed, ProducerProtocol

log = logging.getLogger("streamfw.macrometa")

_Future = asyncio.Future[MessageId]


class AsyncMacrometaProducer(AsyncLink):
    """``AsyncProducerLink`` over one WebSocket producer session."""

    def __init__(self, endpoint: Endpoint, stream: StreamRef, options: ProducerOptions) -> None:
        super().__init__(endpoint, f"producer on stream {stream.name!r}")
        self._options = options
        self.protocol: ProducerProtocol[_Future] = ProducerProtocol(
            stream.name,
            self.what,
            max_pending=options.max_pending,
            max_frame_size=self.settings.max_send_frame_size,
        )
        self._changed = Waiters()  # woken when sends settle or the link ends

    async def send(self, envelope: Envelope) -> _Future:
        self.raise_if_unusable()
        protocol = self.protocol
        if not protocol.can_send():
            ok = await self._changed.wait_for(
                lambda: protocol.can_send() or self._ended(), self._options.send_timeout
            )
            self.raise_if_unusable()
            if not ok:
                raise NotSent(
                    f"{self.what}: not sent: {protocol.max_pending} sends still"
                    f" unconfirmed after {self._options.send_timeout:g} s"
                )
        future: _Future = self._loop.create_future()
        out = protocol.send(envelope, future)  # MessageTooLarge: nothing recorded
        self.write(out.frame, out.context)  # not connected: resent after the reconnect
        return future

    async def flush(self, timeout: float | None) -> None:
        protocol = self.protocol
        if not await self._changed.wait_for(
            lambda: not protocol.unconfirmed or self._ended(), timeout
        ):
            raise SendTimeout(
                f"{self.what}: {protocol.unconfirmed} send(s) unconfirmed after"
                f" {timeout:g} s; they stay pending and may still be stored (their futures"
                " tell)"
            )

    async def close(self) -> None:
        if self.closed:
            return
        self._settle(self.protocol.close())  # before the first await: cancelling still closes
        await super().close()

    def _ended(self) -> bool:
        return self.closed or self.failure is not None

    # ------------------------------------------------------------------------ link side

    def written(self, context: int) -> None:
        self.protocol.written(context)

    def on_text(self, data: bytes) -> None:
        event = self.protocol.receive(data)  # FrameError: the link reconnects
        if event is not None:
            self._settle((event,))

    def on_reconnect(self) -> None:
        frames = self.protocol.frames_to_resend()
        if frames:
            log.info("%s: resending %d unconfirmed frame(s)", self.what, len(frames))
        for out in frames:
            self.write(out.frame, out.context)

    def on_fail(self, error: StreamError) -> None:
        failed = self.protocol.fail(error)
        if failed:
            log.warning("%s: %d unconfirmed send(s) failed: %s", self.what, len(failed), error)
        self._settle(failed)
        self._changed.wake()

    def _settle(
        self, events: tuple[Confirmed[_Future] | Failed[_Future], ...] | list[Failed[_Future]]
    ) -> None:
        for event in events:
            future = event.handle
            if future.done():
                continue  # cancelled by the application
            if isinstance(event, Confirmed):
                future.set_result(event.message_id)
            else:
                future.set_exception(event.error)
        if events:
            self._changed.wake()
