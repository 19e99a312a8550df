"""Request routing: one catch-all aiohttp handler, our own segment matcher.

aiohttp's router cannot be told to treat ``//_ws/...`` (what the jsc8 seed sends) like
``/_ws/...`` without answering a redirect, which WebSocket clients do not follow. So the
emulator splits the raw path itself, drops empty segments, URL-decodes each one and matches
the result against a small table of routes. The same place counts open connections, checks
credentials and turns broker exceptions into the error envelope.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import unquote

import attrs
from aiohttp import web

from streamfw.emulator import envelope
from streamfw.emulator.state import FabricHost, ServerState
from streamfw.errors import (
    AlreadyExists,
    ConfigError,
    InUse,
    LocalProtocolError,
    NotFound,
    SubscriptionBusy,
)

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
) -> tuple[Route, dict[str, str]] | int:
    """The route and its parameters, or 404 / 405. Literal segments win over placeholders."""
    candidates = [(r, p) for r in routes if (p := _match(r, segments)) is not None]
    candidates.sort(key=lambda rp: [s.startswith("{") for s in rp[0].pattern])
    if not candidates:
        return 404
    for r, p in candidates:
        if r.method == method:
            return r, p
    return 405


def error_response(exc: Exception) -> web.Response | None:
    """The REST error envelope for a broker or argument error, None if not ours."""
    if isinstance(exc, AlreadyExists):
        return envelope.error(409, str(exc), envelope.ERRNUM_STREAM_EXISTS)
    if isinstance(exc, NotFound):
        return envelope.error(404, str(exc))
    if isinstance(exc, InUse):
        return envelope.error(412, str(exc))
    if isinstance(exc, SubscriptionBusy):
        return envelope.error(409, str(exc))
    if isinstance(exc, (ConfigError, LocalProtocolError)):
        return envelope.error(400, str(exc))
    return None


def make_dispatcher(
    routes: Sequence[Route],
    websocket: Callable[[web.Request, ServerState, list[str]], Awaitable[web.StreamResponse]],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The single aiohttp handler: limits, routing, credentials, error envelopes."""

    async def dispatch(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        if state.open_connections >= state.max_connections:
            log.warning(
                "refused %s %s: %d connections open (the limit)",
                request.method,
                request.path,
                state.open_connections,
            )
            return envelope.error(503, f"Too many connections (limit {state.max_connections})")
        state.open_connections += 1
        try:
            return await _dispatch(request, state)
        finally:
            state.open_connections -= 1

    async def _dispatch(request: web.Request, state: ServerState) -> web.StreamResponse:
        segments = split_path(request.raw_path)
        if segments[:1] == ["_ws"]:
            return await websocket(request, state, segments)
        found = find(routes, request.method, segments)
        if isinstance(found, int):
            what = "not found" if found == 404 else f"method {request.method} not allowed"
            return envelope.error(found, f"{request.method} {'/' + '/'.join(segments)}: {what}")
        r, params = found
        if not r.public and not state.auth.check_header(request.headers.get("Authorization")):
            return envelope.error(401, "not authorized to execute this request")
        fabric = None
        if "fabric" in params:
            fabric = state.fabrics.get(params["fabric"])
            if fabric is None:
                return envelope.error(
                    404, f"fabric {params['fabric']!r} not found", envelope.ERRNUM_FABRIC_NOT_FOUND
                )
        try:
            return await r.handler(Call(request, state, params, fabric))
        except web.HTTPException as exc:  # e.g. 413 from a body over client_max_size
            return envelope.error(exc.status, exc.reason)
        except Exception as exc:
            answer = error_response(exc)
            if answer is None:
                raise
            return answer

    return dispatch
