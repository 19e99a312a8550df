"""The producer link: pipelined publishes, receipts matched by ``context``, resend on reconnect.

Each ``send`` numbers its frame (``context``), records it as pending and writes it. The reader
thread resolves the future when the receipt with that context arrives (``MessageId`` for
``ok``, ``SendError`` for ``send-error:N``). At most ``max_pending`` sends are unconfirmed; the
next ``send`` waits for room (up to ``send_timeout``). After a reconnect every pending frame is
written again, in order, before any new one: delivery is at-least-once, so a message whose
receipt was lost with the old connection may be stored twice.

What a failure says about storage. A send that never got room in the window fails with
``NotSent``; one that was never written (the link failed first) with the link's error: neither
was stored. A send that was written and then failed unconfirmed -- the link gave up or was
closed, a refusal of the copy resent after a reconnect, a ``send-error`` that reports the
gateway's own send timeout, a receipt whose id is unreadable -- fails with
``OutcomeUnknown``: it may have been stored. Futures are marked running at once, so
``cancel()`` returns False: a message handed to the socket cannot be withdrawn.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import threading

import attrs
import websocket

from streamfw.api import ProducerOptions, StreamRef
from streamfw.errors import (
    BacklogQuotaExceeded,
    Closed,
    MessageTooLarge,
    NotSent,
    OutcomeUnknown,
    SendError,
    SendTimeout,
    StreamError,
)
from streamfw.message import Envelope, MessageId
from streamfw_macrometa import wire
from streamfw_macrometa.ws import Connector, Link

# Pulsar's WebSocket proxy answers ``send-error`` with the message of the exception its own
# producer raised; a send timeout there (PulsarClientException.TimeoutException) leaves the
# message possibly persisted: https://pulsar.apache.org/api/client/4.0.x/org/apache/pulsar/
# client/api/PulsarClientException.TimeoutException.html, apache/pulsar issue #13568.
TIMEOUT_EXCEPTION = "TimeoutException"
# The exception Pulsar raises for a publish refused under the producer_exception backlog
# policy (ProducerBlockedQuotaExceededException / ...Error); the emulator's message names it.
QUOTA_EXCEPTION = "ProducerBlockedQuotaExceeded"


@attrs.define
class _Pending:
    """One unconfirmed send."""

    frame: str
    future: cf.Future[MessageId]
    written: bool = False  # a whole frame went out on some connection: it may be stored
    resent: bool = False  # written on an earlier connection too


class MacrometaProducer(Link):
    """``ProducerLink`` over one WebSocket producer session."""

    def __init__(self, connector: Connector, stream: StreamRef, options: ProducerOptions) -> None:
        super().__init__(connector, f"producer on stream {stream.name!r}")
        self._stream = stream
        self._options = options
        self._window = threading.Semaphore(max(1, options.max_pending))
        self._pending: dict[int, _Pending] = {}
        self._contexts = itertools.count(1)
        self._idle = threading.Condition()  # guards _pending; never held while writing
        self.start()

    def send(self, envelope: Envelope) -> cf.Future[MessageId]:
        future: cf.Future[MessageId] = cf.Future()
        future.set_running_or_notify_cancel()  # a sent message cannot be withdrawn
        try:
            self.raise_if_unusable()
            if not self._window.acquire(timeout=self._options.send_timeout):
                raise NotSent(
                    f"{self.what}: not sent: {self._options.max_pending} sends still"
                    f" unconfirmed after {self._options.send_timeout:g} s"
                )
            with self.lock:  # the write lock: frames go out in context order
                try:
                    self.raise_if_unusable()
                except StreamError:
                    self._window.release()
                    raise
                context = next(self._contexts)
                frame = wire.publish_frame(envelope, str(context))
                if _size(frame) > self.settings.max_send_frame_size:
                    self._window.release()
                    raise MessageTooLarge(
                        f"{self.what}: not sent: its frame is {_size(frame):,} bytes, over"
                        f" max_send_frame_size ({self.settings.max_send_frame_size:,} bytes,"
                        " the largest frame the server reads)"
                    )
                entry = _Pending(frame, future)
                with self._idle:
                    self._pending[context] = entry
                # if the write fails, the frame stays pending and is resent
                entry.written = self.write(entry.frame)
        except StreamError as exc:
            future.set_exception(exc)
        return future

    def flush(self, timeout: float | None) -> None:
        with self._idle:
            done = self._idle.wait_for(
                lambda: not self._pending or self.failure is not None or self.closed, timeout
            )
            if not done:
                raise SendTimeout(
                    f"{self.what}: {len(self._pending)} send(s) unconfirmed after {timeout:g} s;"
                    " they stay pending and may still be stored (their futures tell)"
                )

    def close(self) -> None:
        super().close()
        self._fail_pending(f"{self.what} was closed before the broker confirmed")

    # ----------------------------------------------------------------------- reader side

    def on_text(self, text: str) -> None:
        receipt = wire.parse_receipt(text, self._stream.name)
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
        future = entry.future
        if receipt.error is not None:
            refused: StreamError = SendError(
                f"{self.what}: broker refused message: {receipt.error}"
            )
            if entry.resent:
                refused = _unknown(
                    f"{self.what}: broker refused the copy resent after a reconnect"
                    f" ({receipt.error}); the copy sent before it may have been stored",
                    refused,
                )
            elif QUOTA_EXCEPTION in receipt.error:
                refused = BacklogQuotaExceeded(
                    f"{self.what}: broker refused message: {receipt.error}"
                )
            elif TIMEOUT_EXCEPTION in receipt.error:
                refused = _unknown(
                    f"{self.what}: the gateway's producer timed out waiting for the broker"
                    f" ({receipt.error}); the broker may still store the message",
                    refused,
                )
            future.set_exception(refused)
            return
        assert receipt.decoded_id is not None  # an "ok" receipt always carries one
        future.set_result(receipt.decoded_id)

    def on_reconnect(self, ws: websocket.WebSocket) -> None:
        with self._idle:
            entries = list(self._pending.values())
        for entry in entries:
            entry.resent = entry.resent or entry.written
            if not self.write(entry.frame):
                return  # dropped again: the reader thread reconnects and resends
            entry.written = True

    def on_fail(self, error: StreamError) -> None:
        self._fail_pending(str(error), error)

    def _fail_pending(self, text: str, cause: StreamError | None = None) -> None:
        with self._idle:
            pending, self._pending = self._pending, {}
            self._idle.notify_all()
        for entry in pending.values():
            self._window.release()
            if entry.future.done():
                continue
            error = type(cause)(text) if cause is not None else Closed(text)
            error.__cause__ = cause
            if entry.written:
                error = _unknown(
                    f"{text}; the message was sent unconfirmed: it may be stored", error
                )
            entry.future.set_exception(error)


def _unknown(text: str, cause: StreamError) -> OutcomeUnknown:
    error = OutcomeUnknown(text)
    error.__cause__ = cause
    return error


def _size(frame: str) -> int:
    """The frame's size in bytes on the wire (UTF-8); cheap for the usual ASCII frame."""
    return len(frame) if frame.isascii() else len(frame.encode("utf-8", "surrogatepass"))
