"""Which protocol object a receiving session gets, and the name its errors use."""

from __future__ import annotations

from streamfw_macrometa.protocol.consumer import ConsumerProtocol
from streamfw_macrometa.protocol.reader import ReaderProtocol


def receiving_protocol(
    stream: str, subscription: str | None, *, pull: bool = False
) -> ConsumerProtocol | ReaderProtocol:
    """A consumer's protocol (``subscription`` given) or a reader's (``None``).

    Its ``what`` (e.g. ``consumer of 'jobs' on stream 'orders'``) names the session in every
    error and log line, the same for the threaded and the asyncio link.
    """
    if subscription is None:
        return ReaderProtocol(stream, f"reader on stream {stream!r}")
    return ConsumerProtocol(stream, f"consumer of {subscription!r} on stream {stream!r}", pull=pull)
