"""A scripted WebSocket server on 127.0.0.1 playing the GDN side towards streamfw's client.

On the first connection of each script it sends the hostile frames it is given (to a
consumer at once; to a producer in answer to its first publish, followed by the real
receipt). Every later connection behaves: a consumer gets the one good delivery, a producer
gets an ``ok`` receipt for each publish. So whatever rule the client applies to a bad frame
(skip it, or reconnect), the good message must come through.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiohttp import WSMsgType, web
from streamfw_macrometa.wire import delivery_frame, encode_message_id

from streamfw.message import Delivery, MessageId

GOOD = delivery_frame(Delivery(MessageId("s", 7, 7), b"ok"))
THREAD = "fuzz-fake-gdn"


class FakeGdn:
    def __init__(self) -> None:
        self.hostile: list[str | bytes] = []
        self.forever = False
        self.connections = 0
        self._fresh = True
        self._entries = iter(range(10**9))
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0
        threading.Thread(target=self._serve, daemon=True, name=THREAD).start()
        if not self._started.wait(10):
            raise RuntimeError("fake GDN did not start")

    def script(self, hostile: list[str | bytes], *, forever: bool = False) -> None:
        """Frames for the next first connection (``forever``: sent again every 0.1 s on every
        connection, and never a good delivery: a server that only ever sends junk)."""
        self.hostile = hostile
        self.forever = forever
        self._fresh = True

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._socket)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        server: Any = site._server
        self.port = server.sockets[0].getsockname()[1]
        self._started.set()
        self._loop.run_forever()

    async def _send(self, ws: web.WebSocketResponse, frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            await ws.send_frame(frame, WSMsgType.TEXT)  # a text frame that is not UTF-8
        else:
            await ws.send_str(frame)

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self.connections += 1
        first, self._fresh = self._fresh, False
        hostile = self.hostile if first or self.forever else []
        try:
            if "/consumer/" in request.path:
                for frame in hostile:
                    await self._send(ws, frame)
                while self.forever and not ws.closed:
                    await asyncio.sleep(0.1)
                    for frame in hostile:
                        await self._send(ws, frame)
                if not self.forever:
                    await ws.send_str(GOOD)
                async for _ in ws:  # acks and nacks: read and let go
                    pass
            else:
                async for msg in ws:
                    if msg.type != WSMsgType.TEXT:
                        break
                    for frame in hostile:
                        await self._send(ws, frame)
                    hostile = []
                    context = json.loads(msg.data).get("context")
                    mid = encode_message_id(MessageId("s", 8, next(self._entries)))
                    await ws.send_str(
                        json.dumps({"result": "ok", "messageId": mid, "context": context})
                    )
        except (ConnectionError, asyncio.CancelledError):
            pass
        return ws

    def close(self) -> None:
        async def stop() -> None:
            assert self._runner is not None
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)


@contextmanager
def fake_gdn() -> Iterator[FakeGdn]:
    server = FakeGdn()
    try:
        yield server
    finally:
        server.close()


class FakeRest:
    """A plain HTTP server on 127.0.0.1 answering every request with ``status`` and ``body``,
    the raw bytes as given (not UTF-8, truncated, nested: whatever the test sets)."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b"{}"
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                self.send_response(fake.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(fake.body)))
                self.end_headers()
                self.wfile.write(fake.body)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
