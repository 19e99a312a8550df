"""WebSocket routes of docs/protocol.md §6-§7: producer, consumer and reader.

How it works. Everything that can be refused is checked *before* the upgrade and answered
with Pulsar's HTTP status (docs/protocol.md section 8.1): path (400), credentials (401),
tenant (403), fabric or stream (404), query parameters (400), and finally the broker attach
itself, whose errors get their status from the one table in ``status.py`` (``SubscriptionBusy``
the 409 of the exclusive conflict, ``LimitExceeded`` a 412). Only then is the upgrade answered
with 101.

Frames for a socket go through its ``Socket`` queue and one writer task, because deliveries
are caused by *other* connections' broker calls, in plain (non-async) code. The queue stays
bounded: a delivery uses one of the consumer's broker permits (its receiver queue size) and
the writer gives the permit back only once the frame is written to the connection, so a
client that stops reading stops getting messages (redeliveries included); answers to a
client's own frames are bounded by reading no more of its frames while ``MAX_QUEUED`` wait.
Any frame that cannot be handled -- unreadable, of the wrong shape or nested too deep -- is
answered on the same socket, which stays open: producers get Pulsar's
``{"result": "send-error:<code>", "errorMsg": …}`` receipt; consumers and readers get the
emulator's error frame ``{"error": "<text>", "code": <Pulsar code>[, "messageId": …]}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import attrs
from aiohttp import WSMsgType, web

from streamfw.api import StreamRef
from streamfw.errors import (
    ConfigError,
    InUse,
    LimitExceeded,
    LocalProtocolError,
    StreamError,
    SubscriptionBusy,
)
from streamfw_macrometa import gateway
from streamfw_macrometa.emulator import envelope
from streamfw_macrometa.emulator.edge import EDGE, close_reason
from streamfw_macrometa.emulator.state import CLOSE_GOING_AWAY, FabricHost, ServerState
from streamfw_macrometa.status import status_for
from streamfw_macrometa.wire import (
    ERR_FAILED_TO_DESERIALIZE,
    ERR_FAILED_TO_SUBSCRIBE,
    ERR_UNKNOWN,
    NAMESPACE_FORMS,
    TOPIC_FORMS,
    Ack,
    AskEndOfTopic,
    EndOfTopic,
    FrameError,
    Nack,
    Permit,
    Receipt,
    SendRefused,
    ServerError,
    Unsubscribe,
    consumer_options_from_query,
    decode_message_id,
    parse_consumer_frame,
    parse_publish,
    reader_options_from_query,
    split_namespace_name,
    split_topic_name,
    topic_name,
)

log = logging.getLogger("streamfw.emulator")

MAX_FRAME = gateway.PULSAR_MAX_TEXT_FRAME  # bytes, as Pulsar's WebSocket proxy reads
MAX_QUEUED = 1000  # receipts queued for a producer before we stop reading its frames
_KINDS = ("producer", "consumer", "reader")


class Refused(Exception):
    """A handshake answered with an HTTP status instead of 101."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    @classmethod
    def by_table(cls, exc: StreamError, message: str) -> Refused:
        """The refusal the status table gives ``exc``; 500 for one the table has no row for."""
        return cls(status_for(exc) or HTTPStatus.INTERNAL_SERVER_ERROR, message)


@attrs.frozen
class _Message:
    """A delivery frame: writing it gives its consumer's permit back."""

    frame: str


class Socket:
    """One accepted WebSocket: an outgoing queue drained by a single writer task."""

    def __init__(
        self, ws: web.WebSocketResponse, label: str, transport: asyncio.BaseTransport | None = None
    ) -> None:
        self.ws = ws
        self.label = label  # for logs: kind and topic, never the query string
        # Writing to a transport whose peer is gone does not raise: asyncio only logs
        # "socket.send() raised exception." for every write. So look before writing.
        self._transport = transport
        self.queue: asyncio.Queue[tuple[int, str] | str | _Message] = asyncio.Queue()
        self.closing = False
        self.on_written: Callable[[], object] | None = None  # a delivery reached the connection
        self._writer: asyncio.Task[None] | None = None

    def deliver(self, frame: str) -> None:
        if not self.closing:
            self.queue.put_nowait(frame)

    def deliver_message(self, frame: str) -> None:
        """Queue a delivery; its permit comes back once the writer has written it."""
        if not self.closing:
            self.queue.put_nowait(_Message(frame))

    def close_soon(self, code: int, reason: str) -> None:
        """Close after the frames already queued (e.g. when the stream is deleted)."""
        if not self.closing:
            self.closing = True
            self.queue.put_nowait((code, reason))

    async def close_now(self, code: int, reason: str) -> None:
        self.closing = True
        await self.ws.close(code=code, message=close_reason(reason))

    def start(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._write())

    async def stop(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        self._abandon()  # whatever is still queued can never be written: let it go

    async def _write(self) -> None:
        while True:
            item = await self.queue.get()
            try:
                if isinstance(item, tuple):
                    code, reason = item
                    await self.ws.close(code=code, message=close_reason(reason))
                    return
                if self._transport is not None and self._transport.is_closing():
                    raise ConnectionResetError("the peer has gone")
                if isinstance(item, _Message):
                    # send_str waits while the connection's write buffer is full, so a
                    # client that does not read holds the permit here.
                    await self.ws.send_str(item.frame)
                    if self.on_written is not None:
                        self.on_written()
                else:
                    await self.ws.send_str(item)
            except (ConnectionError, RuntimeError) as exc:  # peer gone mid-send
                log.info("%s: write failed: %s", self.label, exc)
                self._abandon()
                return
            except Exception:
                # A frame we cannot write is a bug of ours; a socket nobody writes to any more
                # would hang its client silently. Close it: the client reconnects and what it
                # had not acknowledged is redelivered.
                log.exception("%s: cannot write a frame; closing the socket (1011)", self.label)
                self._abandon()
                with contextlib.suppress(Exception):
                    await self.ws.close(code=1011, message=b"internal error")
                return
            finally:
                self.queue.task_done()

    def _abandon(self) -> None:
        """The socket is dead: drop what is queued so no ``queue.join()`` waits forever."""
        self.closing = True
        while not self.queue.empty():
            self.queue.get_nowait()
            self.queue.task_done()


def _parse_path(
    segments: list[str], state: ServerState
) -> tuple[str, FabricHost, StreamRef, str | None]:
    """``_ws/ws/v2/<kind>/persistent/<tenant>/<ns>.<fabric>/<topic>[/<sub>]``."""
    if len(segments) < 4 or segments[1:3] != ["ws", "v2"] or segments[3] not in _KINDS:
        raise Refused(
            HTTPStatus.NOT_FOUND,
            "no such WebSocket endpoint: use /_ws/ws/v2/"
            "{producer|consumer|reader}/persistent/<tenant>/<namespace>/<topic>",
        )
    kind = segments[3]
    want = 9 if kind == "consumer" else 8
    if len(segments) == want - 1 and split_namespace_name(segments[5]) is not None:
        raise Refused(
            HTTPStatus.FORBIDDEN,
            "Not authorized: the tenant segment is empty "
            f"(this emulator serves tenant {state.auth.tenant!r})",
        )
    if len(segments) != want:
        missing = "subscription name is missing" if kind == "consumer" else "wrong path"
        raise Refused(HTTPStatus.BAD_REQUEST, f"Invalid query params: {missing}")
    if segments[4] != "persistent":
        raise Refused(
            HTTPStatus.BAD_REQUEST, "Invalid query params: only persistent topics exist on GDN"
        )
    if segments[5] != state.auth.tenant:
        raise Refused(
            HTTPStatus.FORBIDDEN,
            f"Not authorized: tenant {segments[5]!r} is not served here "
            f"(this emulator serves tenant {state.auth.tenant!r})",
        )
    namespace = split_namespace_name(segments[6])
    if namespace is None or not namespace[0]:
        raise Refused(
            HTTPStatus.BAD_REQUEST,
            f"Invalid query params: namespace {segments[6]!r} is not {NAMESPACE_FORMS}",
        )
    fabric_name, ns_local = namespace
    fabric = state.fabrics.get(fabric_name)
    if fabric is None:
        raise Refused(HTTPStatus.NOT_FOUND, f"Namespace {segments[6]!r} does not exist")
    topic = segments[7]
    split = split_topic_name(topic)
    if split is None:
        raise Refused(
            HTTPStatus.NOT_FOUND,
            f"Topic {topic!r} does not exist (topics are {TOPIC_FORMS};"
            " collection streams are not emulated)",
        )
    name, local = split
    if local != ns_local:
        raise Refused(
            HTTPStatus.BAD_REQUEST,
            f"Invalid query params: topic {topic!r} does not belong in namespace {segments[6]!r}",
        )
    try:
        ref = StreamRef(name, local)
    except ConfigError as exc:
        raise Refused(HTTPStatus.BAD_REQUEST, f"Invalid query params: {exc}") from exc
    return kind, fabric, ref, segments[8] if kind == "consumer" else None


async def handle(
    request: web.Request, state: ServerState, segments: list[str], authenticated: bool
) -> web.StreamResponse:
    """Entry point for every path under ``/_ws``; the dispatcher checked the credentials."""
    heartbeat = request.app[EDGE].heartbeat(segments)  # no pong in time: the peer is dropped
    max_frame = request.app[EDGE].max_frame
    ws = web.WebSocketResponse(max_msg_size=max_frame, heartbeat=heartbeat, autoping=True)
    try:
        if not authenticated:
            raise Refused(HTTPStatus.UNAUTHORIZED, "Failed to authenticate")
        kind, fabric, ref, sub = _parse_path(segments, state)
        attach = _attacher(kind, request, fabric, ref, sub)  # parses the query: 400
        if not ws.can_prepare(request).ok:
            raise Refused(HTTPStatus.BAD_REQUEST, "expected a WebSocket upgrade request")
        if not fabric.broker.has_stream(ref):
            if not state.auto_create:
                raise Refused(
                    HTTPStatus.NOT_FOUND,
                    f"Topic {topic_name(ref)} does not exist in fabric {fabric.name}",
                )
            try:
                fabric.call(lambda: fabric.broker.create_stream(ref))
            except LimitExceeded as exc:
                raise Refused.by_table(exc, str(exc)) from exc
            log.info("auto-created stream %s in fabric %s", topic_name(ref), fabric.name)
        label = f"{kind} {fabric.name}/{topic_name(ref)}" + (f"/{sub}" if sub else "")
        sock = Socket(ws, label, request.transport)
        broker_id = fabric.call(lambda: attach(sock))
    except Refused as exc:
        log.info("refused %s %s: %d %s", request.method, request.path, exc.status, exc)
        return envelope.refuse(exc.status, str(exc))
    return await _serve(request, state, fabric, ref, kind, sock, broker_id)


def _attacher(
    kind: str, request: web.Request, fabric: FabricHost, ref: StreamRef, sub: str | None
) -> Callable[[Socket], int]:
    """Parse the query now; return what attaches the socket to the broker later."""
    query = request.query
    broker = fabric.broker
    pull = False  # pull mode: permits come from permit frames only
    if kind == "producer":
        open_: Callable[[], int] = lambda: broker.open_producer(ref)  # noqa: E731
    elif kind == "consumer":
        assert sub is not None
        try:
            options = consumer_options_from_query(query)
        except (ValueError, OverflowError) as exc:  # ConfigError, or int() of an infinity
            raise Refused(HTTPStatus.BAD_REQUEST, f"Invalid query params: {exc}") from exc
        pull = options.pull_mode
        open_ = lambda: broker.subscribe(ref, sub, options)  # noqa: E731
    else:
        try:
            options_r = reader_options_from_query(ref.name, query)
        except (FrameError, ValueError) as exc:
            raise Refused(HTTPStatus.BAD_REQUEST, f"Invalid query params: {exc}") from exc
        open_ = lambda: broker.open_reader(ref, options_r)  # noqa: E731

    def attach(sock: Socket) -> int:
        try:
            broker_id = open_()
        except (SubscriptionBusy, LimitExceeded) as exc:
            raise Refused.by_table(exc, f"Failed to subscribe: {exc}") from exc
        except (ConfigError, LocalProtocolError) as exc:
            raise Refused.by_table(exc, f"Invalid query params: {exc}") from exc
        fabric.sessions[broker_id] = sock  # before call() routes the first deliveries
        # A frame written frees its permit; in pull mode only a permit frame gives one.
        if kind != "producer" and not pull:
            sock.on_written = lambda: fabric.call(lambda: broker.grant(broker_id))
        return broker_id

    return attach


async def _serve(
    request: web.Request,
    state: ServerState,
    fabric: FabricHost,
    ref: StreamRef,
    kind: str,
    sock: Socket,
    broker_id: int,
) -> web.StreamResponse:
    state.sockets.add(sock)
    try:
        await sock.ws.prepare(request)
        log.info("%s: attached", sock.label)
        sock.start()
        if kind == "producer":
            await _producer_loop(fabric, ref, sock)
        else:
            await _consumer_loop(fabric, ref, sock, broker_id, kind)
    finally:
        state.sockets.discard(sock)
        fabric.sessions.pop(broker_id, None)
        close = fabric.broker.close_producer if kind == "producer" else fabric.broker.close_consumer
        fabric.call(lambda: close(broker_id))  # unacked messages go back to the subscription
        await sock.stop()
        if sock.ws.prepared and not sock.ws.closed:  # unprepared: the peer left mid-upgrade
            await sock.ws.close(code=CLOSE_GOING_AWAY)
        log.info("%s: detached", sock.label)
    return sock.ws


async def _frames(sock: Socket) -> Any:
    """Text (or binary) frames; ends on close or on an unreadable/oversized frame."""
    async for msg in sock.ws:
        if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
            yield msg.data
        elif msg.type == WSMsgType.ERROR:
            log.info("%s: closing after a bad frame: %s", sock.label, sock.ws.exception())
            return


async def _producer_loop(fabric: FabricHost, ref: StreamRef, sock: Socket) -> None:
    async for data in _frames(sock):
        if sock.closing:
            return
        try:
            sock.deliver(_producer_frame(fabric, ref, data))
        except Exception:  # a bug of ours: log it, answer, and keep the socket open
            log.exception("%s: frame not handled", sock.label)
            sock.deliver(SendRefused.with_code(None, ERR_UNKNOWN, "the emulator failed").encode())
        if sock.queue.qsize() >= MAX_QUEUED:  # a producer that never reads its receipts
            await sock.queue.join()


def _producer_frame(fabric: FabricHost, ref: StreamRef, data: str | bytes) -> str:
    """The receipt for one producer frame: a message id or ``send-error``."""
    try:
        publish = parse_publish(data)
    except FrameError as exc:
        return SendRefused.with_code(exc.context, exc.code, str(exc)).encode()
    except _UNREADABLE as exc:
        return SendRefused.with_code(None, ERR_FAILED_TO_DESERIALIZE, _unreadable(exc)).encode()
    context = publish.context
    try:
        mid = fabric.call(lambda: fabric.broker.publish(ref, publish.envelope))
    except StreamError as exc:  # e.g. BacklogQuotaExceeded: Pulsar's UnknownError receipt
        return SendRefused.with_code(context, ERR_UNKNOWN, str(exc)).encode()
    return Receipt(context, mid).encode()


# What a parser may raise on input it cannot read, beyond FrameError: the frame is refused.
_UNREADABLE = (ValueError, TypeError, KeyError, RecursionError, MemoryError)


def _unreadable(exc: BaseException) -> str:
    return f"cannot read the frame: {type(exc).__name__}: {str(exc)[:200]}"


async def _consumer_loop(
    fabric: FabricHost, ref: StreamRef, sock: Socket, cid: int, kind: str
) -> None:
    async for data in _frames(sock):
        if sock.closing:
            return
        if sock.queue.qsize() >= 2 * MAX_QUEUED:  # answers pile up: the client is not reading
            await sock.queue.join()
        try:
            _consumer_frame(fabric, ref, sock, cid, kind, data)
        except Exception:  # a bug of ours: log it, answer, and keep the socket open
            log.exception("%s: frame not handled", sock.label)
            sock.deliver(
                ServerError(ERR_UNKNOWN, "the emulator failed to handle the frame").encode()
            )


def _consumer_frame(
    fabric: FabricHost, ref: StreamRef, sock: Socket, cid: int, kind: str, data: str | bytes
) -> None:
    """Act on one consumer or reader frame; answers (if any) go to ``sock``."""
    broker = fabric.broker
    try:
        cmd = parse_consumer_frame(data)
    except FrameError as exc:
        sock.deliver(ServerError(exc.code, str(exc)).encode())
        return
    except _UNREADABLE as exc:
        sock.deliver(ServerError(ERR_FAILED_TO_DESERIALIZE, _unreadable(exc)).encode())
        return
    if isinstance(cmd, AskEndOfTopic):
        sock.deliver(EndOfTopic(False).encode())  # streams are never terminated
    elif isinstance(cmd, Unsubscribe) and kind == "consumer":
        try:
            fabric.call(lambda: broker.unsubscribe(cid))
        except (InUse, LocalProtocolError) as exc:
            sock.deliver(ServerError(ERR_FAILED_TO_SUBSCRIBE, str(exc)).encode())
            return
        sock.close_soon(1000, "unsubscribed")
    elif isinstance(cmd, Permit) and sock.on_written is None and kind == "consumer":
        count = cmd.count
        fabric.call(lambda: broker.grant(cid, count))  # pull mode (docs/protocol.md §15.5)
    elif isinstance(cmd, Ack) or (isinstance(cmd, Nack) and kind == "consumer"):
        try:
            mid = decode_message_id(ref.name, cmd.message_id)
            act = broker.ack if isinstance(cmd, Ack) else broker.nack
            log.debug("%s: %s (consumer %d)", sock.label, cmd, cid)
            fabric.call(lambda: act(cid, mid))
        except (FrameError, LocalProtocolError) as exc:
            sock.deliver(ServerError(ERR_FAILED_TO_DESERIALIZE, str(exc), cmd.message_id).encode())
    else:
        sock.deliver(
            ServerError(
                ERR_FAILED_TO_DESERIALIZE,
                f"frame type {type(cmd).__name__} is not supported on a {kind}",
            ).encode()
        )
