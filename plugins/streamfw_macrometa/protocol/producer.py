"""The producer side of the protocol, sans-I/O: contexts, the send window, receipts, resend.

How it works. ``send`` numbers a message (its ``context``), records it as unconfirmed and
returns the frame to write; the driver calls ``written(context)`` once the whole frame went
out. ``receive(text)`` reads the broker's answer and says what became of that send
(``Confirmed`` or ``Failed``). At most ``max_pending`` sends are unconfirmed (``room()``).
After a reconnect, ``frames_to_resend()`` lists every unconfirmed frame again, in order, to be
written before any new one: delivery is at-least-once, so a message whose receipt was lost
with the old connection may be stored twice. ``fail(error)`` and ``close()`` end every
unconfirmed send. The object owns no socket, thread, lock or clock; the driver serialises
calls and maps each send's ``handle`` (a future, say) to its outcome.

What a failure says about storage. A send that was never written fails with the link's error
(``fail``) or ``Closed`` (``close``): it was not stored. A send that was written and then
failed unconfirmed -- the link gave up or was closed, a refusal of the copy resent after a
reconnect, a ``send-error`` that reports the gateway's own send timeout -- fails with
``OutcomeUnknown``: it may have been stored.
"""

from __future__ import annotations

import itertools
from typing import Generic, TypeVar

import attrs

from streamfw.errors import (
    BacklogQuotaExceeded,
    Closed,
    MessageTooLarge,
    NotSent,
    OutcomeUnknown,
    SendError,
    StreamError,
)
from streamfw.message import Envelope, MessageId
from streamfw_macrometa import wire

H = TypeVar("H")  # the driver's handle on one send, e.g. a future


@attrs.define
class Outgoing:
    """A publish frame to write, and the context its receipt will name."""

    context: int
    frame: str


@attrs.define
class Confirmed(Generic[H]):
    """The broker stored the send ``handle`` as ``message_id``."""

    handle: H
    message_id: MessageId


@attrs.define
class Failed(Generic[H]):
    """The send ``handle`` failed with ``error`` (``OutcomeUnknown``: it may be stored)."""

    handle: H
    error: StreamError


@attrs.define
class _Unconfirmed(Generic[H]):
    frame: str
    handle: H
    written: bool = False  # a whole frame went out on some connection: it may be stored
    resent: bool = False  # written on an earlier connection too


class ProducerProtocol(Generic[H]):
    """One producer session's state; see the module docstring."""

    def __init__(self, stream: str, what: str, *, max_pending: int, max_frame_size: int) -> None:
        self.stream = stream
        self.what = what  # e.g. "producer on stream 'orders'": used in every error
        self.max_pending = max(1, max_pending)
        self.max_frame_size = max_frame_size
        self._unconfirmed: dict[int, _Unconfirmed[H]] = {}
        self._contexts = itertools.count(1)

    @property
    def unconfirmed(self) -> int:
        """How many sends wait for their receipt."""
        return len(self._unconfirmed)

    def contexts(self) -> list[int]:
        """The contexts of the unconfirmed sends, oldest first."""
        return list(self._unconfirmed)

    def room(self) -> int:
        """How many more sends the window takes now."""
        return self.max_pending - len(self._unconfirmed)

    def can_send(self) -> bool:
        return len(self._unconfirmed) < self.max_pending

    def send(self, envelope: Envelope, handle: H) -> Outgoing:
        """Number ``envelope`` and record it unconfirmed; the frame to write.

        ``record(prepare(envelope), handle)``: a threaded driver calls the two apart, so that
        building the frame (the costly part) holds no lock the reader thread needs.

        Raises:
            NotSent: the window is full (the driver waits for ``room()`` first).
            MessageTooLarge: the frame is over ``max_frame_size``; nothing was recorded.
        """
        if len(self._unconfirmed) >= self.max_pending:
            raise self._full()
        out = self.prepare(envelope)
        self.record(out, handle)
        return out

    def prepare(self, envelope: Envelope) -> Outgoing:
        """Number ``envelope`` and build its frame; records nothing and reads nothing that
        ``receive`` changes. Frames go out in the order they were prepared in.

        Raises:
            MessageTooLarge: the frame is over ``max_frame_size``.
        """
        context = next(self._contexts)
        frame = wire.publish_frame(envelope, str(context))
        size = _size(frame)
        if size > self.max_frame_size:
            raise MessageTooLarge(
                f"{self.what}: not sent: its frame is {size:,} bytes, over"
                f" max_send_frame_size ({self.max_frame_size:,} bytes,"
                " the largest frame the server reads)"
            )
        return Outgoing(context, frame)

    def record(self, out: Outgoing, handle: H) -> None:
        """Record a prepared frame as unconfirmed, for ``handle``.

        Raises:
            NotSent: the window is full (the driver waits for ``room()`` first).
        """
        if len(self._unconfirmed) >= self.max_pending:
            raise self._full()
        self._unconfirmed[out.context] = _Unconfirmed(out.frame, handle)

    def _full(self) -> NotSent:
        return NotSent(
            f"{self.what}: not sent: {self.max_pending} sends are unconfirmed (max_pending)"
        )

    def written(self, context: int) -> None:
        """The frame numbered ``context`` went out whole on the current connection."""
        entry = self._unconfirmed.get(context)
        if entry is not None:  # else: confirmed or failed already
            entry.resent = entry.resent or entry.written
            entry.written = True

    def frames_to_resend(self) -> list[Outgoing]:
        """After a reconnect: every unconfirmed frame, oldest first, to write before new ones.

        Call ``written`` for each one written; stop at the first that is not.
        """
        return [Outgoing(context, entry.frame) for context, entry in self._unconfirmed.items()]

    def parse(self, text: str | bytes) -> wire.Receipt | wire.SendRefused:
        """Read a frame from the broker; touches no state (drivers may call it unlocked).

        Raises:
            FrameError: the frame cannot be read.
        """
        return wire.parse_receipt(text, self.stream)

    def receive(self, text: str | bytes) -> Confirmed[H] | Failed[H] | None:
        """``receive_frame(parse(text))``."""
        return self.receive_frame(self.parse(text))

    def receive_frame(
        self, receipt: wire.Receipt | wire.SendRefused
    ) -> Confirmed[H] | Failed[H] | None:
        """What became of the send a receipt names; None if it names none of ours (a second
        receipt for a resent frame, or a context we never sent)."""
        try:
            context = int(receipt.context or "")
        except ValueError:
            return None  # not one of ours (we always send a numeric context)
        entry = self._unconfirmed.pop(context, None)
        if entry is None:
            return None
        if isinstance(receipt, wire.Receipt):
            return Confirmed(entry.handle, receipt.message_id)
        return Failed(entry.handle, self._refusal(receipt, entry))

    def _refusal(self, receipt: wire.SendRefused, entry: _Unconfirmed[H]) -> StreamError:
        refused = SendError(f"{self.what}: broker refused message: {receipt.text}")
        if entry.resent:
            return _unknown(
                f"{self.what}: broker refused the copy resent after a reconnect"
                f" ({receipt.text}); the copy sent before it may have been stored",
                refused,
            )
        if receipt.over_quota:
            return BacklogQuotaExceeded(f"{self.what}: broker refused message: {receipt.text}")
        if receipt.may_be_stored:
            return _unknown(
                f"{self.what}: the gateway's producer timed out waiting for the broker"
                f" ({receipt.text}); the broker may still store the message",
                refused,
            )
        return refused

    def fail(self, error: StreamError) -> list[Failed[H]]:
        """The link gave up with ``error``: every unconfirmed send fails (see module doc)."""
        return self._end(str(error), error)

    def close(self) -> list[Failed[H]]:
        """The application closed the producer: every unconfirmed send fails."""
        return self._end(f"{self.what} was closed before the broker confirmed", None)

    def _end(self, text: str, cause: StreamError | None) -> list[Failed[H]]:
        entries, self._unconfirmed = self._unconfirmed, {}
        failed = []
        for entry in entries.values():
            error = type(cause)(text) if cause is not None else Closed(text)
            error.__cause__ = cause
            if entry.written:
                error = _unknown(
                    f"{text}; the message was sent unconfirmed: it may be stored", error
                )
            failed.append(Failed(entry.handle, error))
        return failed


def _unknown(text: str, cause: StreamError) -> OutcomeUnknown:
    error = OutcomeUnknown(text)
    error.__cause__ = cause
    return error


def _size(frame: str) -> int:
    """The frame's size in bytes on the wire (UTF-8); cheap for the usual ASCII frame."""
    return len(frame) if frame.isascii() else len(frame.encode("utf-8", "surrogatepass"))
