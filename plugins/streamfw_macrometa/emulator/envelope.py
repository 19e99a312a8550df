"""JSON answers in the shapes both SDKs accept (docs/protocol.md §4).

Success bodies never carry ``errorNum``: pyC8 treats any body holding it as a failure and
jsc8 rejects a body with all four error keys even under status 200.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

# errorNum values. GDN is ArangoDB-based: most errors reuse the HTTP status as errorNum;
# these two are the documented specific ones.
ERRNUM_STREAM_EXISTS = 581
ERRNUM_FABRIC_NOT_FOUND = 1228


def _json(body: Any, status: int) -> web.Response:
    return web.Response(
        text=json.dumps(body, separators=(",", ":")),
        status=status,
        content_type="application/json",
    )


def ok(result: Any) -> web.Response:
    """``{"error": false, "code": 200, "result": …}``."""
    return _json({"error": False, "code": 200, "result": result}, 200)


def error(status: int, message: str, error_num: int | None = None) -> web.Response:
    """``{"error": true, "code": N, "errorMessage": …, "errorNum": …}`` with status N."""
    body = {
        "error": True,
        "code": status,
        "errorMessage": message,
        "errorNum": status if error_num is None else error_num,
    }
    return _json(body, status)


def bare(body: Any, status: int = 200) -> web.Response:
    """A plain JSON object, as ``/datacenter/*`` and ``/apid/otp`` answer."""
    return _json(body, status)


def refuse(status: int, message: str) -> web.Response:
    """A WebSocket handshake refused before the upgrade: Pulsar's status and plain text."""
    return web.Response(text=message, status=status, content_type="text/plain")
