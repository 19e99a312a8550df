"""Emulator test helpers: plain requests and websocket-client against real sockets."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
import websocket
from streamfw_macrometa.emulator import Emulator


class Api:
    """REST and WebSocket calls against one emulator, authenticated with its key."""

    def __init__(self, emu: Emulator, fabric: str = "_system") -> None:
        self.emu = emu
        self.fabric = fabric
        self.headers = {"Authorization": f"apikey {emu.api_key}"}
        self.session = requests.Session()
        self.verify: bool | str = True  # a CA file for TLS tests

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("headers", self.headers)
        kw.setdefault("timeout", 5)
        kw.setdefault("verify", self.verify)  # explicit: REQUESTS_CA_BUNDLE beats session.verify
        return self.session.request(method, self.emu.url + path, **kw)

    def streams(self, method: str, tail: str = "", **kw: Any) -> requests.Response:
        return self.request(method, f"/_fabric/{self.fabric}/_api/streams{tail}", **kw)

    def create(self, name: str, *, local: bool = False) -> str:
        r = self.streams("POST", f"/{name}?global={'false' if local else 'true'}")
        assert r.status_code == 200, r.text
        return str(r.json()["result"]["stream-id"])

    def ws_url(
        self,
        kind: str,
        topic: str,
        sub: str | None = None,
        *,
        tenant: str | None = None,
        namespace: str | None = None,
        **query: str,
    ) -> str:
        local = topic.startswith("c8locals.")
        ns = namespace or f"{'c8local' if local else 'c8global'}.{self.fabric}"
        path = f"/_ws/ws/v2/{kind}/persistent/{tenant or self.emu.tenant}/{ns}/{topic}"
        if sub is not None:
            path += "/" + sub
        base = self.emu.url.replace("http", "ws", 1)
        return base + path + ("?" + urlencode(query) if query else "")

    def connect(self, url: str, *, auth: bool = True, **kw: Any) -> websocket.WebSocket:
        kw.setdefault("timeout", 3)
        header = [f"Authorization: apikey {self.emu.api_key}"] if auth else []
        return websocket.create_connection(url, header=header, **kw)

    def producer(self, topic: str, **query: str) -> websocket.WebSocket:
        return self.connect(self.ws_url("producer", topic, **query))

    def consumer(self, topic: str, sub: str, **query: str) -> websocket.WebSocket:
        return self.connect(self.ws_url("consumer", topic, sub, **query))

    def reader(self, topic: str, **query: str) -> websocket.WebSocket:
        return self.connect(self.ws_url("reader", topic, **query))

    def otp(self) -> str:
        r = self.request("POST", "/apid/otp")
        assert r.status_code == 200, r.text
        return str(r.json()["otp"])


def send(ws: websocket.WebSocket, payload: bytes, **extra: Any) -> dict[str, Any]:
    """Publish one message and return its receipt."""
    ws.send(json.dumps({"payload": base64.b64encode(payload).decode(), **extra}))
    return recv(ws)


def recv(ws: websocket.WebSocket, timeout: float = 3.0) -> dict[str, Any]:
    ws.settimeout(timeout)
    frame = json.loads(ws.recv())
    assert isinstance(frame, dict)
    return frame


def nothing(ws: websocket.WebSocket, wait: float = 0.15) -> bool:
    """True if no frame arrives within ``wait`` seconds."""
    ws.settimeout(wait)
    try:
        ws.recv()
    except websocket.WebSocketTimeoutException:
        return True
    return False


def payload(frame: dict[str, Any]) -> bytes:
    return base64.b64decode(frame["payload"])


def ack(ws: websocket.WebSocket, frame: dict[str, Any]) -> None:
    ws.send(json.dumps({"messageId": frame["messageId"]}))


def refused(api: Api, url: str, **kw: Any) -> websocket.WebSocketBadStatusException:
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        api.connect(url, **kw).close()
    return info.value


def close_code(ws: websocket.WebSocket, timeout: float = 3.0) -> int:
    """Wait for the server's close frame and return its status code."""
    ws.settimeout(timeout)
    while True:
        try:
            opcode, data = ws.recv_data(control_frame=True)
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            return -1  # closed without a readable close frame
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
