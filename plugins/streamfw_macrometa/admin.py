"""Stream administration over GDN's REST API, sans-I/O: the calls each operation makes and
what their answers mean, written once for the threaded and the asyncio transports.

Each operation is a generator: it yields a ``Call`` (one REST request), is sent the call's
result (the envelope's ``result``) or has the call's ``StreamError`` thrown in, and returns
the operation's value. A driver makes the calls with its own REST client: ``run`` for a
blocking one; the asyncio transport awaits each call the same way. The routes are listed in
``streamfw_macrometa.transport`` (docs/protocol.md §5).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator
from typing import Any, TypeVar

import attrs

from streamfw.api import (
    ConsumerOptions,
    ProducerOptions,
    StreamRef,
    SubscriptionInfo,
    SubscriptionType,
)
from streamfw.errors import (
    ConfigError,
    RemoteProtocolError,
    StreamError,
    StreamNotFound,
    SubscriptionNotFound,
    Unsupported,
)
from streamfw_macrometa import gateway, wire
from streamfw_macrometa.rest import loads_maybe

T = TypeVar("T")

_TYPES: dict[str, SubscriptionType] = {
    "exclusive": "exclusive",
    "failover": "failover",
    "shared": "shared",
}


@attrs.frozen
class Call:
    """One REST request of an operation, with what its errors should name."""

    method: str
    path: str
    params: dict[str, str] | None = None
    stream: str = ""
    subscription: str = ""
    on_404: type[StreamError] = StreamNotFound


Operation = Generator[Call, Any, T]


def run(operation: Operation[T], call: Callable[[Call], Any]) -> T:
    """Drive ``operation`` with a blocking ``call``; its value."""
    try:
        request = next(operation)
        while True:
            try:
                result = call(request)
            except StreamError as exc:
                request = operation.throw(exc)
            else:
                request = operation.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


def session_path(
    kind: str, tenant: str, fabric: str, stream: StreamRef, subscription: str = ""
) -> str:
    """A producer, consumer or reader session's path below ``gateway.WS_ROOT`` (unquoted)."""
    ns = wire.namespace_name(fabric, stream.local)
    path = f"{kind}/persistent/{tenant}/{ns}/{wire.topic_name(stream)}"
    return path + "/" + subscription if subscription else path


def _flag(stream: StreamRef) -> dict[str, str]:
    return {"global": "false" if stream.local else "true"}


def _streams(fabric: str, suffix: str = "") -> str:
    return gateway.STREAMS_PATH.format(fabric=fabric) + suffix


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _count(figures: dict[str, Any], key: str, stream: StreamRef) -> int:
    """A non-negative integer figure (0 when absent); anything else is a protocol error."""
    value = figures.get(key, 0)
    if not _is_count(value):
        raise RemoteProtocolError(
            f"stats of stream {stream.name!r}: {key} is not a count: {str(value)[:40]!r}"
        )
    return int(value)


def create_stream(fabric: str, stream: StreamRef) -> Operation[None]:
    yield Call("POST", _streams(fabric, f"/{stream.name}"), _flag(stream), stream.name)


def delete_stream(fabric: str, stream: StreamRef, *, force: bool) -> Operation[None]:
    params = {"force": "true"} if force else None
    yield Call("DELETE", _streams(fabric, f"/{wire.topic_name(stream)}"), params, stream.name)


def list_streams(fabric: str, *, local: bool | None) -> Operation[list[StreamRef]]:
    params = None if local is None else {"global": "false" if local else "true"}
    result = yield Call("GET", _streams(fabric), params)
    refs = []
    for entry in result if isinstance(result, list) else []:
        topic = entry.get("topic") if isinstance(entry, dict) else None
        if isinstance(topic, str):
            with contextlib.suppress(ConfigError):  # a name streamfw cannot address
                ref = wire.parse_topic_name(topic)
                if ref is not None:
                    refs.append(ref)
    return sorted(set(refs), key=lambda r: (r.local, r.name))


def require(fabric: str, stream: StreamRef) -> Operation[None]:
    """Check that the stream exists before attaching (GDN's answer to a WebSocket on a
    missing stream is not documented; pyC8 checks first too)."""
    if stream not in (yield from list_streams(fabric, local=stream.local)):
        raise StreamNotFound(f"stream {stream.name!r} does not exist ({stream})")


def _get(fabric: str, stream: StreamRef, what: str) -> Operation[Any]:
    path = _streams(fabric, f"/{wire.topic_name(stream)}/{what}")
    return loads_maybe((yield Call("GET", path, _flag(stream), stream.name)))


def stats(fabric: str, stream: StreamRef) -> Operation[dict[str, Any]]:
    result = yield from _get(fabric, stream, "stats")
    return result if isinstance(result, dict) else {"raw": result}


def _subscription_stats(fabric: str, stream: StreamRef) -> Operation[dict[str, dict[str, Any]]]:
    """``stats.subscriptions``: subscription name -> its figures, shape checked."""
    subs = (yield from stats(fabric, stream)).get("subscriptions") or {}
    if not isinstance(subs, dict) or not all(isinstance(d, dict) for d in subs.values()):
        raise RemoteProtocolError(
            f"stats of stream {stream.name!r}: 'subscriptions' is not an object of objects"
        )
    return subs


def backlog(fabric: str, stream: StreamRef) -> Operation[int]:
    result = yield from _get(fabric, stream, "backlog")
    if _is_count(result):
        return int(result)
    if isinstance(result, dict):
        for key in ("messageBacklog", "msgBacklog", "backlog"):
            if _is_count(result.get(key)):
                return int(result[key])
    subs = yield from _subscription_stats(fabric, stream)  # fall back: sum per subscription
    return sum(_count(s, "msgBacklog", stream) for s in subs.values())


def subscriptions(fabric: str, stream: StreamRef) -> Operation[list[SubscriptionInfo]]:
    names = yield from _get(fabric, stream, "subscriptions")
    names = names if isinstance(names, list) else []
    if not all(isinstance(n, str) for n in names):
        raise RemoteProtocolError(
            f"subscriptions of stream {stream.name!r}: a name that is not a string"
        )
    details = yield from _subscription_stats(fabric, stream)
    infos = []
    for name in sorted(names):
        d = details.get(name) or {}
        consumers = d.get("consumers") or []
        if not isinstance(consumers, list):
            raise RemoteProtocolError(
                f"stats of stream {stream.name!r}: consumers of {name!r} is not a list"
            )
        infos.append(
            SubscriptionInfo(
                name=name,
                type=_TYPES.get(str(d.get("type", "exclusive")).lower(), "exclusive"),
                backlog=_count(d, "msgBacklog", stream),
                consumers=len(consumers),
            )
        )
    return infos


def delete_subscription(fabric: str, stream: StreamRef, subscription: str) -> Operation[None]:
    path = _streams(fabric, f"/{wire.topic_name(stream)}/subscriptions/{subscription}")
    try:
        yield Call("DELETE", path, _flag(stream), stream.name, subscription, SubscriptionNotFound)
    except SubscriptionNotFound as exc:
        if stream not in (yield from list_streams(fabric, local=stream.local)):
            raise StreamNotFound(f"stream {stream} does not exist") from exc
        raise


def clear_backlog(fabric: str, stream: StreamRef, subscription: str | None) -> Operation[None]:
    """``None``: every subscription of the stream; else one, refused (``Unsupported``) when
    another stream of the same scope has a subscription of that name (GDN's route is
    fabric-wide)."""
    if subscription is None:
        path = _streams(fabric, f"/{wire.topic_name(stream)}/expiry/0")
        yield Call("POST", path, _flag(stream), stream.name)
        return
    if subscription not in {s.name for s in (yield from subscriptions(fabric, stream))}:
        raise SubscriptionNotFound(f"stream {stream} has no subscription {subscription!r}")
    others = []
    for other in (yield from list_streams(fabric, local=stream.local)):
        if other != stream and subscription in {
            i.name for i in (yield from subscriptions(fabric, other))
        }:
            others.append(other.name)
    if others:
        raise Unsupported(
            f"clear_backlog({subscription!r}) on stream {stream}: GDN clears a subscription"
            f" name across the fabric and streams {', '.join(sorted(others))} also have one;"
            " refusing rather than clearing those too (clear_backlog(None) is per stream)"
        )
    path = _streams(fabric, f"/clearbacklog/{subscription}")
    yield Call("POST", path, _flag(stream), stream.name, subscription, SubscriptionNotFound)


def producer_query(options: ProducerOptions) -> dict[str, str]:
    """The producer session's query parameters."""
    params = {
        # Pulsar's sendTimeoutMillis 0 is "no timeout", our None
        "sendTimeoutMillis": str(round((options.send_timeout or 0) * 1000)),
        "maxPendingMessages": str(options.max_pending),
    }
    if options.name:
        params["producerName"] = options.name
    return params


def consumer_refusal(
    subscription: str, options: ConsumerOptions, *, extensions: bool
) -> Unsupported | None:
    """Why a consumer with these options cannot be opened, if it cannot."""
    if options.initial_position == "earliest" and not extensions:
        return Unsupported(
            f"initial_position='earliest' for subscription {subscription!r}: GDN's WebSocket"
            " API has no initial position (new subscriptions start at the latest message)."
            " Use a reader from 'earliest', or extensions=True (CLI: -o extensions=1) against"
            " the streamfw emulator."
        )
    return None
