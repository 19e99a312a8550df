"""Hook specifications: what a streamfw plugin may implement.

A plugin is a module (or object) registered under the ``streamfw`` entry-point group. It
implements any of the hooks. The registration hooks receive a ``register`` callable and call
it once per transport, codec stage, CLI command or test harness the plugin provides. The
message hooks (``streamfw_send``, ``streamfw_after_receive``, ``streamfw_on_ack``,
``streamfw_on_nack``) see every message on its way out and in, for tracing and metrics; a
producer or consumer looks them up once, when it opens, and calls nothing when no plugin
implements them (docs/plugins.md, "Message hooks").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import concurrent.futures as cf

    from streamfw.api import CommandSpec, TransportSpec
    from streamfw.codec import CodecSpec
    from streamfw.consumer import Consumer
    from streamfw.message import Message, MessageId, OutgoingMessage
    from streamfw.producer import Producer
    from streamfw.testing.harness import HarnessSpec

hookspec = pluggy.HookspecMarker("streamfw")
hookimpl = pluggy.HookimplMarker("streamfw")


@hookspec
def streamfw_register_transports(register: Callable[[TransportSpec], None]) -> None:
    """Call ``register`` once for each transport this plugin provides (name = URL scheme)."""


@hookspec
def streamfw_register_codecs(register: Callable[[CodecSpec], None]) -> None:
    """Call ``register`` once for each codec stage this plugin provides."""


@hookspec
def streamfw_register_commands(register: Callable[[CommandSpec], None]) -> None:
    """Call ``register`` once for each ``streamfw`` CLI command this plugin provides."""


@hookspec
def streamfw_register_harnesses(register: Callable[[HarnessSpec], None]) -> None:
    """Call ``register`` once for each test harness (a transport to run the contract kit,
    the state machine and ``streamfw_harness`` tests on) this plugin provides."""


@hookspec(firstresult=True)
def streamfw_send(producer: Producer, message: OutgoingMessage) -> cf.Future[MessageId] | None:
    """Wrap each send of ``producer`` (``send`` and ``send_async`` alike).

    Implement it as a wrapper, ``@hookimpl(wrapper=True)``: change ``message.properties``
    before ``yield`` (e.g. add a ``traceparent``); the ``yield`` sends the message and gives
    the future of the broker's confirmation (already done on transports that confirm
    inline; ``add_done_callback`` sees the outcome either way), or raises what the send
    raised. Return that future. Wrappers compose: pluggy calls the last registered first,
    so it is the outermost. streamfw's own implementation, last in line, does the sending;
    a plain (non-wrapper) implementation runs before it and should return None, since
    whatever else it returns stands in for the send.
    """


@hookspec
def streamfw_after_receive(consumer: Consumer, message: Message) -> None:
    """See each message ``consumer`` hands to the application, once decoded.

    Called before ``receive`` (or iteration) returns it; also for a message that did not
    decode, before its ``DecodeError`` is raised (then ``message.value`` is None). A
    redelivery is a message with ``message.redelivery_count > 0``.
    """


@hookspec
def streamfw_on_ack(consumer: Consumer, message_id: MessageId) -> None:
    """``consumer`` acknowledged ``message_id`` (``msg.ack()`` or ``consumer.ack()``).

    Not called for a reader: readers acknowledge nothing (nor for ``streamfw_on_nack``).
    """


@hookspec
def streamfw_on_nack(consumer: Consumer, message_id: MessageId) -> None:
    """``consumer`` negatively acknowledged ``message_id``: it comes back after the nack delay."""
