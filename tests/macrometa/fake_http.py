"""Scripted HTTP servers on 127.0.0.1: queued JSON answers (``FakeServer``), raw bytes
(``RawServer``)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

USER = {"error": False, "code": 200, "result": [{"tenant": "acme", "user": "root"}]}


class FakeServer:
    """``answers[(method, path_without_query)]`` is a list of (status, body) used in turn;
    the last one repeats. ``requests`` records (method, full path, headers)."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], list[tuple[int, Any]]] = {
            ("GET", "/_api/user"): [(200, USER)]
        }
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                fake.requests.append((self.command, self.path, dict(self.headers)))
                queue = fake.answers.get((self.command, self.path.split("?")[0]))
                status, body = (
                    404,
                    {"error": True, "code": 404, "errorMessage": "nope", "errorNum": 404},
                )
                if queue:
                    status, body = queue.pop(0) if len(queue) > 1 else queue[0]
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def paths(self, method: str | None = None) -> list[str]:
        return [p for m, p, _ in self.requests if method is None or m == method]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class RawServer:
    """Reads each request's head, then lets ``respond(conn)`` write whatever it likes.

    ``sent`` counts the bytes ``respond`` reported writing (through ``count``); ``requests``
    holds each request's first line.
    """

    def __init__(self, respond: Callable[[RawServer, socket.socket], None]) -> None:
        self.respond = respond
        self.sent = 0
        self.requests: list[bytes] = []
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)  # closing a listener does not wake accept() on Linux
        self.port = self._listener.getsockname()[1]
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def wait_stopped(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True at once if the server is closing."""
        return self._stop.wait(seconds)

    def count(self, n: int) -> None:
        self.sent += n

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            worker = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(worker)
            worker.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.settimeout(5)
            head = read_head(conn)
            if head is None:
                return
            self.requests.append(head.split(b"\r\n", 1)[0])
            self.respond(self, conn)

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        for t in self._threads:
            t.join(5)


def read_head(conn: socket.socket) -> bytes | None:
    """The next request's head (up to its blank line, perhaps a little more); None when the
    peer closes first."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        head += chunk
    return head
