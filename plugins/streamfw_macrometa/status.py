"""The HTTP status <-> streamfw error table, written once for both sides. Pure: no I/O, no state.

The emulator answers a broker error with ``status_for(exc)`` (REST error envelopes and
WebSocket upgrades refused before the 101); the client reads a status back with
``readings(status)`` (``faults.error_for_status``, which picks among a status's readings by the
request when there are several). docs/protocol.md section 8.3 is the user-facing copy.
"""

from __future__ import annotations

from http import HTTPStatus

import attrs

from streamfw.errors import (
    AlreadyExists,
    AuthError,
    BacklogQuotaExceeded,
    ConfigError,
    Conflict,
    InUse,
    LimitExceeded,
    LocalProtocolError,
    NotFound,
    ServerError,
    StreamError,
    StreamNotFound,
    SubscriptionBusy,
    SubscriptionNotFound,
    TransportError,
)

# nginx's "499 Client Closed Request": the client went away before the answer. Not an IANA
# status, so ``http.HTTPStatus`` has no member for it; only logs and proxies ever see it.
CLIENT_CLOSED_REQUEST = 499


@attrs.frozen
class Row:
    """One line of the table.

    Attributes:
        error: what the server side raises (the broker's error, or the refusal's cause).
        status: the HTTP status it is answered with.
        read_as: what the client makes of ``status``; the first is the default, the others
            are the request-dependent choices named in ``note``.
        note: when the row applies.
    """

    error: type[StreamError]
    status: HTTPStatus
    read_as: tuple[type[StreamError], ...]
    note: str


# Subclasses come before their bases: ``status_for`` takes the first row that matches.
TABLE: tuple[Row, ...] = (
    Row(AlreadyExists, HTTPStatus.CONFLICT, (AlreadyExists,), "create of a stream that exists"),
    Row(
        SubscriptionBusy,
        HTTPStatus.CONFLICT,
        (SubscriptionBusy, Conflict),
        "an exclusive subscription taken: SubscriptionBusy to a consumer upgrade, Conflict to "
        "a producer upgrade",
    ),
    Row(InUse, HTTPStatus.PRECONDITION_FAILED, (InUse,), "a DELETE refused while in use"),
    Row(
        LimitExceeded,
        HTTPStatus.PRECONDITION_FAILED,
        (LimitExceeded,),
        "a create or attach over a stream or subscription cap",
    ),
    Row(
        NotFound,
        HTTPStatus.NOT_FOUND,
        (StreamNotFound, SubscriptionNotFound),
        "a stream, subscription, fabric or route; the request says which the client reads",
    ),
    Row(ConfigError, HTTPStatus.BAD_REQUEST, (ConfigError,), "a bad parameter, path or body"),
    Row(LocalProtocolError, HTTPStatus.BAD_REQUEST, (ConfigError,), "a request out of order"),
    Row(AuthError, HTTPStatus.UNAUTHORIZED, (AuthError,), "missing or wrong credentials"),
    Row(AuthError, HTTPStatus.FORBIDDEN, (AuthError,), "a foreign tenant or Host"),
    Row(
        BacklogQuotaExceeded,
        HTTPStatus.TOO_MANY_REQUESTS,
        (TransportError,),
        "a REST publish over the backlog quota: the server asks the client to slow down",
    ),
    Row(ServerError, HTTPStatus.INTERNAL_SERVER_ERROR, (ServerError,), "a server bug"),
    Row(ServerError, HTTPStatus.SERVICE_UNAVAILABLE, (ServerError,), "too many connections"),
)


def status_for(exc: BaseException) -> HTTPStatus | None:
    """The status the server answers ``exc`` with, or None if the table has no row for it."""
    for row in TABLE:
        if isinstance(exc, row.error):
            return row.status
    return None


def readings(status: int) -> tuple[type[StreamError], ...]:
    """What the client may make of ``status``, default first; empty if no row names it.

    Any 5xx reads as the 500 row: a gateway's 502 or 504 is as much a server failure.
    """
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        status = HTTPStatus.INTERNAL_SERVER_ERROR
    found: list[type[StreamError]] = []
    for row in TABLE:
        if row.status == status:
            found.extend(c for c in row.read_as if c not in found)
    return tuple(found)
