"""A message the server would refuse for its size is refused before it leaves (issue 8).

The emulator, like Pulsar's WebSocket proxy, reads frames of at most 1 MiB
(``webSocketMaxTextFrameSize``) and drops a connection that sends a larger one. A producer that
sent such a frame anyway would resend it after every reconnect and never make progress.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from streamfw import EncodeError, MessageTooLarge
from streamfw.client import Client
from streamfw.testing.contract import unique


def test_an_oversized_frame_is_refused_up_front_and_the_producer_goes_on(
    make_client: Callable[..., Client],
) -> None:
    client = make_client()
    stream = client.stream(unique("big")).create()
    with stream.consumer("sub", initial_position="latest") as consumer, stream.producer() as p:
        with pytest.raises(MessageTooLarge, match="max_send_frame_size") as info:
            p.send(b"x" * 2_000_000, timeout=5)
        assert isinstance(info.value, EncodeError)  # nothing was sent: a codec-time refusal
        p.send(b"small", timeout=5)  # the producer is not poisoned
        msg = consumer.receive(timeout=5)
        assert msg is not None and msg.value == b"small"
        msg.ack()
        assert consumer.receive(timeout=0.5) is None  # the big one never reached the server
    stream.delete(force=True)


def test_the_frame_limit_is_an_option(make_client: Callable[..., Client]) -> None:
    client = make_client(max_send_frame_size=4096)
    stream = client.stream(unique("big")).create()
    with stream.producer() as p:
        p.send(b"x" * 2000, timeout=5)
        with pytest.raises(MessageTooLarge, match="4,096 bytes"):
            p.send(b"x" * 4000, timeout=5)  # base64 makes it 5,336 bytes and more
    stream.delete(force=True)
