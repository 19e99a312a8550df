"""The asyncio API of streamfw: the concepts and names of the sync API, awaited.

::

    import streamfw.aio

    async with streamfw.aio.connect("loopback://") as client:
        stream = await client.stream("orders").create(exist_ok=True)
        async with stream.consumer("billing") as c, stream.producer() as p:
            await p.send({"n": 1})
            msg = await c.receive(timeout=5)
            await msg.ack()

Options, errors, codecs and plugins are the sync API's own (``streamfw.ProducerOptions``,
``streamfw.DecodeError``, ...). ``streamfw.aio.spi`` is what a transport implements to run
natively on the event loop; other transports run through the thread adapter
(``streamfw.aio.adapter``). See docs/asyncio.md.
"""

from streamfw.aio.client import Client, Opening, Stream, connect
from streamfw.aio.consumer import Consumer, MessageIterator
from streamfw.aio.message import Message
from streamfw.aio.producer import Producer
from streamfw.aio.spi import AsyncConsumerLink, AsyncProducerLink, AsyncTransport

__all__ = [
    "AsyncConsumerLink",
    "AsyncProducerLink",
    "AsyncTransport",
    "Client",
    "Consumer",
    "Message",
    "MessageIterator",
    "Opening",
    "Producer",
    "Stream",
    "connect",
]
