"""The user-facing producer: encodes values and sends them through a transport link."""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections.abc import Callable, Mapping
from typing import Any

from streamfw.api import ProducerLink
from streamfw.errors import PluginError
from streamfw.message import Envelope, MessageId, OutgoingMessage
from streamfw.producer_core import ProducerCore


class Producer(ProducerCore[ProducerLink]):
    """Sends values to one stream. Use as a context manager; ``close()`` is idempotent.

    ``send`` blocks until the broker confirms and returns the ``MessageId``; ``send_async``
    returns a future at once (at most ``max_pending`` unconfirmed sends are in flight).
    """

    def _setup(self) -> None:
        # A link that confirms every send before returning gives the id directly: no Future.
        send_confirmed = getattr(self._link, "send_confirmed", None)
        self._send_confirmed: Callable[[Envelope], MessageId] | None = (
            send_confirmed if callable(send_confirmed) and self._send_hook is None else None
        )

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
                self._check_open()  # raises
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
            raise self._send_timeout(wait, future) from exc

    def send_async(
        self,
        value: Any,
        *,
        properties: Mapping[str, str] | None = None,
        key: str | None = None,
        callback: Callable[[cf.Future[MessageId]], None] | None = None,
    ) -> cf.Future[MessageId]:
        """Send without waiting; ``callback(future)`` runs once the broker answers."""
        self._check_open()
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

    def _send_through_hooks(self, envelope: Envelope) -> cf.Future[MessageId]:
        assert self._send_hook is not None
        future = self._send_hook(producer=self, message=self._outgoing(envelope))
        if not isinstance(future, cf.Future):
            raise PluginError(
                f"a streamfw_send hook returned {type(future).__name__}, not the send's Future"
            )
        return future

    def _transmit(self, message: OutgoingMessage) -> cf.Future[MessageId]:
        """The send itself, innermost in the ``streamfw_send`` hook's wrappers (``_Sender``)."""
        return self._link.send(self._hooked_envelope(message))
