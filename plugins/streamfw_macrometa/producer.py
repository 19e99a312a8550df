"""The producer link: pipelined publishes, receipts matched by ``context``, resend on reconnect.

Each ``send`` numbers its frame (``context``), records it as pending and writes it. The reader
thread resolves the future when the receipt with that context arrives (``MessageId`` for
``ok``, ``SendError`` for ``send-error:N``). At most ``max_pending`` sends are unconfirmed; the
next ``send`` waits for room (up to ``send_timeout``). After a reconnect every pending frame is
written again, in order, before any new one: delivery is at-least-once, so a message whose
receipt was lost with the old connection may be stored twice.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import threading

import websocket

from streamfw import wire
from streamfw.api import ProducerOptions, StreamRef
from streamfw.errors import Closed, OperationTimeout, SendError, StreamError
from streamfw.message import Envelope, MessageId
from streamfw_macrometa.ws import Connector, Link


class MacrometaProducer(Link):
    """``ProducerLink`` over one WebSocket producer session."""

    def __init__(self, connector: Connector, stream: StreamRef, options: ProducerOptions) -> None:
        super().__init__(connector, f"producer on stream {stream.name!r}")
        self._stream = stream
        self._options = options
        self._window = threading.Semaphore(max(1, options.max_pending))
        self._pending: dict[int, tuple[str, cf.Future[MessageId]]] = {}
        self._contexts = itertools.count(1)
        self._idle = threading.Condition()  # guards _pending; never held while writing
        self.start()

    def send(self, envelope: Envelope) -> cf.Future[MessageId]:
        future: cf.Future[MessageId] = cf.Future()
        try:
            self.raise_if_unusable()
            if not self._window.acquire(timeout=self._options.send_timeout):
                raise OperationTimeout(
                    f"{self.what}: {self._options.max_pending} sends still unconfirmed after"
                    f" {self._options.send_timeout:g} s"
                )
            with self.lock:  # the write lock: frames go out in context order
                try:
                    self.raise_if_unusable()
                except StreamError:
                    self._window.release()
                    raise
                context = next(self._contexts)
                frame = wire.publish_frame(envelope, str(context))
                with self._idle:
                    self._pending[context] = (frame, future)
                self.write(frame)  # if it fails, the frame stays pending and is resent
        except StreamError as exc:
            future.set_exception(exc)
        return future

    def flush(self, timeout: float | None) -> None:
        with self._idle:
            done = self._idle.wait_for(
                lambda: not self._pending or self.failure is not None or self.closed, timeout
            )
            if not done:
                raise OperationTimeout(
                    f"{self.what}: {len(self._pending)} send(s) unconfirmed after {timeout:g} s"
                )

    def close(self) -> None:
        super().close()
        self._fail_pending(f"{self.what} was closed before the broker confirmed")

    # ----------------------------------------------------------------------- reader side

    def on_text(self, text: str) -> None:
        receipt = wire.parse_receipt(text)
        try:
            context = int(receipt.context or "")
        except ValueError:
            return  # not one of ours (we always send a numeric context)
        with self._idle:
            entry = self._pending.pop(context, None)
            if not self._pending:
                self._idle.notify_all()
        if entry is None:
            return  # a second receipt for a resent frame
        self._window.release()
        future = entry[1]
        if receipt.error is not None:
            future.set_exception(SendError(f"{self.what}: broker refused message: {receipt.error}"))
            return
        try:
            future.set_result(wire.decode_message_id(self._stream.name, receipt.message_id))
        except StreamError as exc:
            future.set_exception(exc)

    def on_reconnect(self, ws: websocket.WebSocket) -> None:
        with self._idle:
            frames = [frame for frame, _ in self._pending.values()]
        for frame in frames:
            if not self.write(frame):
                return  # dropped again: the reader thread reconnects and resends

    def on_fail(self, error: StreamError) -> None:
        self._fail_pending(str(error), error)

    def _fail_pending(self, text: str, cause: StreamError | None = None) -> None:
        with self._idle:
            pending, self._pending = self._pending, {}
            self._idle.notify_all()
        for _, future in pending.values():
            self._window.release()
            if not future.done():
                error = type(cause)(text) if cause is not None else Closed(text)
                error.__cause__ = cause
                future.set_exception(error)
