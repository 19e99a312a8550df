"""A scripted HTTP server on 127.0.0.1: answers queued responses and records requests."""

from __future__ import annotations

import json
import threading
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
