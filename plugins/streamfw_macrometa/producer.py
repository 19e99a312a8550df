"""The producer link: drives a ``ProducerProtocol`` over one WebSocket from threads.

What the protocol decides (contexts, the window's accounting, receipts, which error a failed
send gets, what to resend after a reconnect) lives in ``protocol/producer.py``. This link adds
what needs threads: ``send`` waits for room in the window (a semaphore, up to
``send_timeout``; a send that never got room fails with ``NotSent``), writes under the link's
write lock so frames go out in context order, and resolves each send's future from the reader
thread. Futures are marked running at once, so ``cancel()`` returns False: a message handed to
the socket cannot be withdrawn.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading

import websocket

from streamfw.api import ProducerOptions, StreamRef
from streamfw.errors import NotSent, SendTimeout, StreamError
from streamfw.message import Envelope, MessageId
from streamfw_macrometa.protocol.producer import Confirmed, Failed, ProducerProtocol
from streamfw_macrometa.ws import Connector, Link

log = logging.getLogger("streamfw.macrometa")

_Future = cf.Future[MessageId]


class MacrometaProducer(Link):
    """``ProducerLink`` over one WebSocket producer session."""

    def __init__(self, connector: Connector, stream: StreamRef, options: ProducerOptions) -> None:
        super().__init__(connector, f"producer on stream {stream.name!r}")
        self._options = options
        self.protocol: ProducerProtocol[_Future] = ProducerProtocol(
            stream.name,
            self.what,
            max_pending=options.max_pending,
            max_frame_size=self.settings.max_send_frame_size,
        )
        self._window = threading.Semaphore(self.protocol.max_pending)
        self._idle = threading.Condition()  # guards the protocol; never held while writing
        self.start()

    def send(self, envelope: Envelope) -> _Future:
        future: _Future = cf.Future()
        future.set_running_or_notify_cancel()  # a sent message cannot be withdrawn
        try:
            self.raise_if_unusable()
            if not self._window.acquire(timeout=self._options.send_timeout):
                raise NotSent(
                    f"{self.what}: not sent: {self.protocol.max_pending} sends still"
                    f" unconfirmed after {self._options.send_timeout:g} s"
                )
            with self.lock:  # the write lock: frames go out in context order
                try:
                    self.raise_if_unusable()
                    out = self.protocol.prepare(envelope)  # outside _idle: the costly part
                    with self._idle:
                        self.protocol.record(out, future)
                except StreamError:
                    self._window.release()
                    raise
                # If the write fails, the frame stays unconfirmed and is resent. ``written``
                # without ``_idle``: it only marks the entry (if the receipt has not removed it
                # yet), and every call to it is made holding the write lock.
                if self.write(out.frame):
                    self.protocol.written(out.context)
        except StreamError as exc:
            future.set_exception(exc)
        return future

    def flush(self, timeout: float | None) -> None:
        with self._idle:
            done = self._idle.wait_for(
                lambda: not self.protocol.unconfirmed or self.failure is not None or self.closed,
                timeout,
            )
            if not done:
                raise SendTimeout(
                    f"{self.what}: {self.protocol.unconfirmed} send(s) unconfirmed after"
                    f" {timeout:g} s; they stay pending and may still be stored (their futures"
                    " tell)"
                )

    def close(self) -> None:
        super().close()
        with self._idle:
            failed = self.protocol.close()
            self._idle.notify_all()
        self._settle(failed)

    # ----------------------------------------------------------------------- reader side

    def on_text(self, text: str) -> None:
        receipt = self.protocol.parse(text)  # unlocked: parsing is the costly part
        with self._idle:
            event = self.protocol.receive_frame(receipt)
            if not self.protocol.unconfirmed:
                self._idle.notify_all()
        if event is not None:
            self._settle((event,))

    def on_reconnect(self, ws: websocket.WebSocket) -> None:
        with self._idle:
            frames = self.protocol.frames_to_resend()
        if frames:
            log.info("%s: resending %d unconfirmed frame(s)", self.what, len(frames))
        for out in frames:
            if not self.write(out.frame):
                return  # dropped again: the reader thread reconnects and resends
            self.protocol.written(out.context)  # under the write lock, as in send

    def on_fail(self, error: StreamError) -> None:
        with self._idle:
            failed = self.protocol.fail(error)
            self._idle.notify_all()
        if failed:
            log.warning("%s: %d unconfirmed send(s) failed: %s", self.what, len(failed), error)
        self._settle(failed)

    def _settle(
        self, events: tuple[Confirmed[_Future] | Failed[_Future], ...] | list[Failed[_Future]]
    ) -> None:
        for event in events:
            self._window.release()
            if isinstance(event, Confirmed):
                event.handle.set_result(event.message_id)
            elif not event.handle.done():
                event.handle.set_exception(event.error)
