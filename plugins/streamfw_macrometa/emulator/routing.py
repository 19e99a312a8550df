"""Request routing: one catch-all aiohttp handler, our own segment matcher.

aiohttp's router cannot be told to treat ``//_ws/...`` (what the jsc8 seed sends) like
``/_ws/...`` without answering a redirect, which WebSocket clients do not follow. So the
emulator splits the raw path itself, drops empty segments, URL-decodes each one and matches
the result against a small table of routes. The same place checks the ``Host`` header, answers
a connection accepted over the limit with 503, checks credentials once per request (the answer
both marks the connection trusted, see ``edge``, and admits the request or WebSocket upgrade),
bounds the time to read a body and turns broker exceptions into the error envelope.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from urllib.parse import unquote

import attrs
from aiohttp import web

from streamfw.errors import AlreadyExists
from streamfw_macrometa import gateway
from streamfw_macrometa.emulator import envelope
from streamfw_macrometa.emulator.edge import EDGE, Connection, Edge
from streamfw_macrometa.emulator.state import FabricHost, ServerState
from streamfw_macrometa.status import CLIENT_CLOSED_REQUEST, status_for

log = logging.getLogger("streamfw.emulator")
STATE: web.AppKey[ServerState] = web.AppKey("streamfw_emulator_state", ServerState)


@attrs.frozen
class Call:
    """One matched request: its path parameters and, for fabric routes, the fabric."""

    request: web.Request
    state: ServerState
    params: dict[str, str]
    fabric: FabricHost | None

    @property
    def host(self) -> FabricHost:
        assert self.fabric is not None, "route has no {fabric} segment"
        return self.fabric


Handler = Callable[[Call], Awaitable[web.StreamResponse]]


@attrs.frozen
class Route:
    method: str
    pattern: tuple[str, ...]  # literal segments, or "{name}" placeholders
    handler: Handler
    public: bool = False  # True: no credentials needed (they are in the body)


def split_path(raw_path: str) -> list[str]:
    """Path segments without empty ones (``//`` collapses), each URL-decoded."""
    path = raw_path.split("?", 1)[0]
    return [unquote(s) for s in path.split("/") if s]


def route(method: str, pattern: str, *, public: bool = False) -> Callable[[Handler], Route]:
    """Decorator: turn a handler into a ``Route``."""

    def wrap(handler: Handler) -> Route:
        return Route(method, tuple(s for s in pattern.split("/") if s), handler, public)

    return wrap


def _match(route: Route, segments: Sequence[str]) -> dict[str, str] | None:
    if len(route.pattern) != len(segments):
        return None
    params: dict[str, str] = {}
    for want, got in zip(route.pattern, segments, strict=True):
        if want.startswith("{"):
            params[want[1:-1]] = got
        elif want != got:
            return None
    return params


def find(
    routes: Sequence[Route], method: str, segments: Sequence[str]
) -> tuple[Route, dict[str, str]] | HTTPStatus:
    """The route and its parameters, or 404 / 405. Literal segments win over placeholders."""
    candidates = [(r, p) for r in routes if (p := _match(r, segments)) is not None]
    candidates.sort(key=lambda rp: [s.startswith("{") for s in rp[0].pattern])
    if not candidates:
        return HTTPStatus.NOT_FOUND
    for r, p in candidates:
        if r.method == method:
            return r, p
    return HTTPStatus.METHOD_NOT_ALLOWED


def error_response(exc: Exception) -> web.Response | None:
    """The REST error envelope for a broker or argument error, None if not ours."""
    status = status_for(exc)
    if status is None:
        return None
    errnum = envelope.ERRNUM_STREAM_EXISTS if isinstance(exc, AlreadyExists) else None
    return envelope.error(status, str(exc), errnum)


def make_dispatcher(
    routes: Sequence[Route],
    websocket: Callable[[web.Request, ServerState, list[str], bool], Awaitable[web.StreamResponse]],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The single aiohttp handler: limits, routing, credentials, error envelopes."""

    async def dispatch(request: web.Request) -> web.StreamResponse:
        state, edge = request.app[STATE], request.app[EDGE]
        conn = edge.limiter.request_started(request)
        try:
            if edge.hosts is not None and not edge.hosts.allows(request.headers.get("Host")):
                log.warning("refused %s %s: Host header not served", request.method, request.path)
                return _closing(
                    envelope.error(
                        HTTPStatus.FORBIDDEN,
                        "this emulator listens on loopback and answers only loopback Host "
                        "names (protection against DNS rebinding; see allowed_hosts)",
                    )
                )
            if conn.over_limit:
                limit = edge.limiter.max_connections
                log.warning("refused %s %s: %d connections", request.method, request.path, limit)
                return _closing(
                    envelope.error(
                        HTTPStatus.SERVICE_UNAVAILABLE, f"Too many connections (limit {limit})"
                    )
                )
            return await _dispatch(request, state, edge, conn)
        except ConnectionError as exc:
            if request.transport is not None and not request.transport.is_closing():
                raise
            # The client went away (mid-body, mid-upgrade): routine, not a server error.
            log.debug("%s %s: client disconnected: %r", request.method, request.path, exc)
            return web.Response(status=CLIENT_CLOSED_REQUEST, reason="Client Closed Request")
        finally:
            edge.limiter.request_finished(conn)

    async def _dispatch(
        request: web.Request, state: ServerState, edge: Edge, conn: Connection
    ) -> web.StreamResponse:
        segments = split_path(request.raw_path)
        if segments[:1] == ["_ws"]:
            # checked here once: the result both trusts the connection and admits the upgrade
            authenticated = state.auth.authenticate(
                request.headers.get("Authorization"), request.query.get(gateway.OTP)
            )
            if authenticated:
                conn.trusted = True
            return await websocket(request, state, segments, authenticated)
        found = find(routes, request.method, segments)
        if isinstance(found, HTTPStatus):
            what = (
                "not found"
                if found == HTTPStatus.NOT_FOUND
                else f"method {request.method} not allowed"
            )
            return envelope.error(found, f"{request.method} {'/' + '/'.join(segments)}: {what}")
        r, params = found
        if state.auth.check_header(request.headers.get("Authorization")):
            conn.trusted = True
        elif not r.public:
            return envelope.error(HTTPStatus.UNAUTHORIZED, "not authorized to execute this request")
        fabric = None
        if "fabric" in params:
            fabric = state.fabrics.get(params["fabric"])
            if fabric is None:
                return envelope.error(
                    HTTPStatus.NOT_FOUND,
                    f"fabric {params['fabric']!r} not found",
                    envelope.ERRNUM_FABRIC_NOT_FOUND,
                )
        try:
            if request.body_exists:
                # One deadline for the whole body: aiohttp's reads have none, and a body
                # sent a byte at a time would otherwise hold its handler forever.
                try:
                    await asyncio.wait_for(request.read(), edge.body_timeout)
                except asyncio.TimeoutError:
                    return _closing(
                        envelope.error(
                            HTTPStatus.REQUEST_TIMEOUT,
                            f"request body not received within {edge.body_timeout:g} s",
                        )
                    )
            # the body is cached now: handlers read it again at no cost
            return await r.handler(Call(request, state, params, fabric))
        except web.HTTPException as exc:  # e.g. 413 from a body over client_max_size
            return envelope.error(exc.status, exc.reason)
        except Exception as exc:
            answer = error_response(exc)
            if answer is None:
                raise
            return answer

    return dispatch


def _closing(response: web.Response) -> web.Response:
    """``response``, after which the connection is closed (what is left of it is junk)."""
    response.force_close()
    return response
