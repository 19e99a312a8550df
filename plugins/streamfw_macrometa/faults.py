"""The one place where HTTP statuses and third-party exceptions become streamfw errors.

``error_for_status`` (REST answers and refused WebSocket upgrades alike, so a 404 reads the
same whichever path met it), ``request_failure`` (requests exceptions) and ``upgrade_failure``
(websocket-client exceptions while connecting). ``reason`` turns a low-level failure into a
short secret-free phrase. Every message names what was attempted (method and path, or the
WebSocket URL) and never a query string, header or body we sent: OTPs travel in queries.
The third-party exception is kept as the cause (``raise … from exc``) by the callers.
"""

from __future__ import annotations

import re
import socket
import ssl
from http import HTTPStatus

import requests
import websocket

from streamfw.errors import (
    AlreadyExists,
    AuthError,
    ConfigError,
    Conflict,
    ConnectFailed,
    InUse,
    LimitExceeded,
    NotFound,
    OperationTimeout,
    RemoteProtocolError,
    ServerError,
    StreamDeleted,
    StreamError,
    StreamNotFound,
    SubscriptionBusy,
)
from streamfw_macrometa.status import readings

# What no reconnect of a WebSocket link can fix: it fails the link at once.
FATAL = (AuthError, NotFound, ConfigError)


def fatal(what: str, exc: StreamError) -> StreamError:
    """The error a link fails with for a ``FATAL`` one: a stream gone is ``StreamDeleted``
    (not ``Closed``: that is the application's own close; this one the server decided)."""
    if isinstance(exc, NotFound):
        deleted = StreamDeleted(f"{what} closed: the stream no longer exists")
        deleted.__cause__ = exc
        return deleted
    return exc


def unreadable_run(what: str, where: str, deadline: float, last: str) -> RemoteProtocolError:
    """A link's give-up when every frame from ``where`` was unreadable for ``deadline`` s."""
    return RemoteProtocolError(
        f"{what}: every frame from {where} was unreadable for {deadline:g} s; last: {last}"
    )


def too_large(limit: int, announced: int | None = None) -> str:
    """What was wrong with a received message over ``max_frame_size``, in the same words on
    every link; ``announced``: the size its headers announced so far, if the link knows it
    (websocket-client reads each frame header; aiohttp only says the limit was passed)."""
    text = f"a message over max_frame_size ({limit:,} bytes)"
    return text if announced is None else f"{text}: {announced:,} bytes or more"


# What a retry of an idempotent request may cure: rate limiting and a failing gateway or server.
RETRYABLE_STATUSES = frozenset(
    {
        HTTPStatus.TOO_MANY_REQUESTS,
        HTTPStatus.BAD_GATEWAY,
        HTTPStatus.SERVICE_UNAVAILABLE,
        HTTPStatus.GATEWAY_TIMEOUT,
    }
)
_QUERY = re.compile(r"\?\S*")


def strip_query(text: str) -> str:
    """Drop anything that looks like a query string (it may hold an OTP)."""
    return _QUERY.sub("", text)


def error_for_status(
    status: int,
    detail: str,
    *,
    what: str,
    stream: str = "",
    subscription: str = "",
    on_404: type[StreamError] = StreamNotFound,
    on_409: type[StreamError] = AlreadyExists,
    on_412: type[StreamError] | None = None,
) -> StreamError:
    """The streamfw error for an HTTP status answered to ``what`` (e.g. ``GET /_api/user``).

    Pulsar answers 412 both to a delete refused while the stream or subscription is in use and
    to a create or attach over the namespace's or topic's maximum; only the request tells them
    apart: by default a ``DELETE`` gets ``InUse``, anything else ``LimitExceeded``. Which
    classes a status may become is ``status.TABLE``'s; the ``on_*`` choices pick among them.
    """
    detail = strip_query(" ".join(detail.split()))[:300]
    about = " ".join(
        p
        for p in (
            f"stream {stream!r}" if stream else "",
            f"subscription {subscription!r}" if subscription else "",
        )
        if p
    )
    text = (
        f"{what}: HTTP {status}"
        + (f" ({about})" if about else "")
        + (f": {detail}" if detail else "")
    )
    choices = readings(status)
    if not choices:
        return RemoteProtocolError(text)
    by_request: dict[int, type[StreamError]] = {
        HTTPStatus.NOT_FOUND: on_404,
        HTTPStatus.CONFLICT: on_409,
        HTTPStatus.PRECONDITION_FAILED: on_412
        or (InUse if what.startswith("DELETE ") else LimitExceeded),
    }
    chosen = by_request.get(status, choices[0])
    if chosen is SubscriptionBusy:
        return SubscriptionBusy(text, stream=stream, subscription=subscription)
    if chosen is ServerError:
        return ServerError(text, status=_known(status))
    return chosen(text)


def _known(status: int) -> int:
    """``status`` as an ``HTTPStatus`` when it is a registered one."""
    try:
        return HTTPStatus(status)
    except ValueError:
        return status


def reason(exc: BaseException) -> str:
    """A short, secret-free reason for a low-level failure ("Connection refused", ...)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ssl.SSLCertVerificationError):
            return f"TLS certificate not trusted ({e.verify_message})"
        if isinstance(e, (socket.timeout, TimeoutError)):
            return "timed out"
        if isinstance(e, OSError) and e.strerror:
            return e.strerror
        todo.extend(x for x in (e.__cause__, e.__context__) if x is not None)
        todo.extend(a for a in e.args if isinstance(a, BaseException))
        inner = getattr(e, "reason", None)
        if isinstance(inner, BaseException):
            todo.append(inner)
    if isinstance(exc, (requests.Timeout, websocket.WebSocketTimeoutException)):
        return "timed out"
    return type(exc).__name__


def is_connect_error(exc: BaseException) -> bool:
    """True if the request surely never reached the server (safe to retry any method)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        text = type(exc.args[0]).__name__ if exc.args else ""
        return "NewConnection" in text or "NewConnectionError" in repr(exc.args)
    return isinstance(exc, (ConnectionRefusedError, socket.gaierror))


def handshake_error(
    exc: websocket.WebSocketBadStatusException, *, what: str, stream: str, subscription: str
) -> StreamError:
    """A refused WebSocket upgrade: 409 means the subscription (or producer name) is busy."""
    body = exc.resp_body.decode("utf-8", "replace") if exc.resp_body else ""
    return refused_upgrade(
        exc.status_code,
        body or (exc.status_message or ""),
        what=what,
        stream=stream,
        subscription=subscription,
    )


def refused_upgrade(
    status: int, detail: str, *, what: str, stream: str, subscription: str
) -> StreamError:
    """A WebSocket upgrade answered ``status``, whichever client met it."""
    on_409: type[StreamError] = SubscriptionBusy if subscription else Conflict
    return error_for_status(
        status,
        detail,
        what=strip_query(what),
        stream=stream,
        subscription=subscription,
        on_409=on_409,
        on_404=StreamNotFound,
    )


def request_failure(
    exc: requests.RequestException, *, what: str, base: str, attempts: int, timeout: float
) -> StreamError:
    """A REST call that got no answer, after ``attempts`` tries."""
    if isinstance(exc, requests.exceptions.SSLError):
        return ConnectFailed(f"{what} at {base}: TLS failed: {reason(exc)}")
    if isinstance(exc, requests.ReadTimeout):
        return OperationTimeout(f"{what}: no complete answer within timeout={timeout:g} s")
    verb = "could not connect" if is_connect_error(exc) else "connection failed"
    return ConnectFailed(f"{what} at {base}: {verb} after {attempts} attempt(s): {reason(exc)}")


def upgrade_failure(
    exc: Exception, *, where: str, path: str, stream: str, subscription: str
) -> StreamError:
    """A WebSocket connect that failed: refused upgrade (HTTP status) or no connection."""
    if isinstance(exc, websocket.WebSocketBadStatusException):
        return handshake_error(
            exc, what=f"WebSocket {path}", stream=stream, subscription=subscription
        )
    return ConnectFailed(f"WebSocket {strip_query(where)}: could not connect: {reason(exc)}")
