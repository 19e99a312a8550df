"""``MacrometaTransport``: the Transport SPI over GDN's REST admin API and WebSocket streams.

REST routes (docs/protocol.md §5; ``…`` = ``/_fabric/<fabric>/_api/streams``):

============================  ==================================================
create_stream                 ``POST …/<name>?global=true|false``  (409 AlreadyExists)
delete_stream                 ``DELETE …/<topic>[?force=true]``    (404, 412 InUse)
list_streams                  ``GET …[?global=true|false]``
backlog                       ``GET …/<topic>/backlog``            (``messageBacklog``)
stats                         ``GET …/<topic>/stats``
subscriptions                 ``GET …/<topic>/subscriptions`` + ``…/stats`` for details
delete_subscription           ``DELETE …/<topic>/subscriptions/<sub>`` (404, 412)
clear_backlog(stream, None)   ``POST …/<topic>/expiry/0`` (every subscription of the stream)
clear_backlog(stream, sub)    ``POST …/clearbacklog/<sub>?global=…`` -- GDN's route is
                              fabric-wide, so it is refused (Unsupported) when another
                              stream of the same scope has a subscription of that name
============================  ==================================================
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from typing import Any

from streamfw.api import (
    ConsumerOptions,
    ProducerOptions,
    ReaderOptions,
    StreamRef,
    SubscriptionInfo,
    SubscriptionType,
    TransportConfig,
)
from streamfw.errors import (
    Closed,
    ConfigError,
    RemoteProtocolError,
    StreamNotFound,
    SubscriptionNotFound,
    Unsupported,
)
from streamfw_macrometa import config, wire
from streamfw_macrometa.consumer import MacrometaConsumer
from streamfw_macrometa.producer import MacrometaProducer
from streamfw_macrometa.rest import Rest, loads_maybe
from streamfw_macrometa.ws import Connector, Link, make_ws_base

_TYPES: dict[str, SubscriptionType] = {
    "exclusive": "exclusive",
    "failover": "failover",
    "shared": "shared",
}


def _flag(stream: StreamRef) -> dict[str, str]:
    return {"global": "false" if stream.local else "true"}


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


class MacrometaTransport:
    """The Transport SPI for ``macrometa://`` URLs. Thread-safe; ``close()`` is idempotent."""

    def __init__(self, settings: config.Settings) -> None:
        self.settings = settings
        self.rest = Rest(settings)
        self._links: weakref.WeakSet[Link] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._dc_url: str | None = None
        self._closed = False
        try:
            self.tenant = settings.tenant or self.rest.discover_tenant()
        except BaseException:
            self.rest.close()
            raise

    @classmethod
    def from_config(cls, cfg: TransportConfig) -> MacrometaTransport:
        return cls(config.parse(cfg))

    def __repr__(self) -> str:
        return f"<MacrometaTransport {self.settings.rest_url} fabric={self.settings.fabric!r}>"

    # ------------------------------------------------------------------------- admin

    def _streams(self, suffix: str = "") -> str:
        return f"/_fabric/{self.settings.fabric}/_api/streams{suffix}"

    def create_stream(self, stream: StreamRef) -> None:
        self._live().call(
            "POST", self._streams(f"/{stream.name}"), params=_flag(stream), stream=stream.name
        )

    def delete_stream(self, stream: StreamRef, *, force: bool) -> None:
        self._live().call(
            "DELETE",
            self._streams(f"/{wire.topic_name(stream)}"),
            params={"force": "true"} if force else None,
            stream=stream.name,
        )

    def list_streams(self, *, local: bool | None) -> list[StreamRef]:
        params = None if local is None else {"global": "false" if local else "true"}
        result = self._live().call("GET", self._streams(), params=params)
        refs = []
        for entry in result if isinstance(result, list) else []:
            topic = entry.get("topic") if isinstance(entry, dict) else None
            if isinstance(topic, str):
                with contextlib.suppress(ConfigError):  # a name streamfw cannot address
                    ref = wire.parse_topic_name(topic)
                    if ref is not None:
                        refs.append(ref)
        return sorted(set(refs), key=lambda r: (r.local, r.name))

    def _get(self, stream: StreamRef, what: str) -> Any:
        return loads_maybe(
            self._live().call(
                "GET",
                self._streams(f"/{wire.topic_name(stream)}/{what}"),
                params=_flag(stream),
                stream=stream.name,
            )
        )

    def backlog(self, stream: StreamRef) -> int:
        result = self._get(stream, "backlog")
        if _is_count(result):
            return int(result)
        if isinstance(result, dict):
            for key in ("messageBacklog", "msgBacklog", "backlog"):
                if _is_count(result.get(key)):
                    return int(result[key])
        subs = self._subscription_stats(stream)  # fall back: sum per subscription
        return sum(_count(s, "msgBacklog", stream) for s in subs.values())

    def stats(self, stream: StreamRef) -> dict[str, Any]:
        result = self._get(stream, "stats")
        return result if isinstance(result, dict) else {"raw": result}

    def _subscription_stats(self, stream: StreamRef) -> dict[str, dict[str, Any]]:
        """``stats.subscriptions``: subscription name -> its figures, shape checked."""
        subs = self.stats(stream).get("subscriptions") or {}
        if not isinstance(subs, dict) or not all(isinstance(d, dict) for d in subs.values()):
            raise RemoteProtocolError(
                f"stats of stream {stream.name!r}: 'subscriptions' is not an object of objects"
            )
        return subs

    def subscriptions(self, stream: StreamRef) -> list[SubscriptionInfo]:
        names = self._get(stream, "subscriptions")
        names = names if isinstance(names, list) else []
        if not all(isinstance(n, str) for n in names):
            raise RemoteProtocolError(
                f"subscriptions of stream {stream.name!r}: a name that is not a string"
            )
        details = self._subscription_stats(stream)
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

    def delete_subscription(self, stream: StreamRef, subscription: str) -> None:
        try:
            self._live().call(
                "DELETE",
                self._streams(f"/{wire.topic_name(stream)}/subscriptions/{subscription}"),
                params=_flag(stream),
                stream=stream.name,
                subscription=subscription,
                on_404=SubscriptionNotFound,
            )
        except SubscriptionNotFound as exc:
            if stream not in self.list_streams(local=stream.local):
                raise StreamNotFound(f"stream {stream} does not exist") from exc
            raise

    def clear_backlog(self, stream: StreamRef, subscription: str | None) -> None:
        rest = self._live()
        if subscription is None:
            rest.call(
                "POST",
                self._streams(f"/{wire.topic_name(stream)}/expiry/0"),
                params=_flag(stream),
                stream=stream.name,
            )
            return
        if subscription not in {s.name for s in self.subscriptions(stream)}:
            raise SubscriptionNotFound(f"stream {stream} has no subscription {subscription!r}")
        others = [
            s.name
            for s in self.list_streams(local=stream.local)
            if s != stream and subscription in {i.name for i in self.subscriptions(s)}
        ]
        if others:
            raise Unsupported(
                f"clear_backlog({subscription!r}) on stream {stream}: GDN clears a subscription"
                f" name across the fabric and streams {', '.join(sorted(others))} also have one;"
                " refusing rather than clearing those too (clear_backlog(None) is per stream)"
            )
        rest.call(
            "POST",
            self._streams(f"/clearbacklog/{subscription}"),
            params=_flag(stream),
            stream=stream.name,
            subscription=subscription,
            on_404=SubscriptionNotFound,
        )

    # ------------------------------------------------------------------------- links

    def _connector(
        self, kind: str, stream: StreamRef, params: dict[str, str], subscription: str = ""
    ) -> Connector:
        ns = wire.namespace_name(self.settings.fabric, stream.local)
        path = f"{kind}/persistent/{self.tenant}/{ns}/{wire.topic_name(stream)}"
        if subscription:
            path += "/" + subscription
        base = make_ws_base(self.settings, stream.local, self._local_dc)
        return Connector(
            self.settings,
            self.rest,
            base,
            path,
            params,
            stream=stream.name,
            subscription=subscription,
        )

    def _local_dc(self) -> str:
        if self._dc_url is None:
            self._dc_url = self._live().local_dc_url()
        return self._dc_url

    def _require(self, stream: StreamRef) -> None:
        """Check that the stream exists before attaching (GDN's answer to a WebSocket on a
        missing stream is not documented; pyC8 checks first too)."""
        if stream not in self.list_streams(local=stream.local):
            raise StreamNotFound(f"stream {stream.name!r} does not exist ({stream})")

    def _track(self, link: Link) -> None:
        with self._lock:
            if self._closed:
                link.close()
                raise Closed("client is closed")
            self._links.add(link)

    def open_producer(self, stream: StreamRef, options: ProducerOptions) -> MacrometaProducer:
        self._require(stream)
        params = {
            # Pulsar's sendTimeoutMillis 0 is "no timeout", our None
            "sendTimeoutMillis": str(round((options.send_timeout or 0) * 1000)),
            "maxPendingMessages": str(options.max_pending),
        }
        if options.name:
            params["producerName"] = options.name
        link = MacrometaProducer(self._connector("producer", stream, params), stream, options)
        self._track(link)
        return link

    def open_consumer(
        self, stream: StreamRef, subscription: str, options: ConsumerOptions
    ) -> MacrometaConsumer:
        if options.initial_position == "earliest" and not self.settings.extensions:
            raise Unsupported(
                f"initial_position='earliest' for subscription {subscription!r}: GDN's WebSocket"
                " API has no initial position (new subscriptions start at the latest message)."
                " Use a reader from 'earliest', or extensions=True (CLI: -o extensions=1) against"
                " the streamfw emulator."
            )
        # Not sent over the wire yet (issue 11): refused rather than silently dropped.
        unsent = [
            what
            for what, used in (
                ("type='key_shared'", options.type == "key_shared"),
                ("max_redeliver_count", options.max_redeliver_count is not None),
                ("pull_mode", options.pull_mode),
                ("priority_level", options.priority_level != 0),
            )
            if used
        ]
        if unsent:
            raise Unsupported(f"the macrometa transport cannot send {', '.join(unsent)} yet")
        self._require(stream)
        params = wire.consumer_query(options)
        link = MacrometaConsumer(
            self._connector("consumer", stream, params, subscription), stream, subscription
        )
        self._track(link)
        return link

    def open_reader(self, stream: StreamRef, options: ReaderOptions) -> MacrometaConsumer:
        self._require(stream)
        params = wire.reader_query(stream.name, options)
        link = MacrometaConsumer(self._connector("reader", stream, params), stream, None)
        self._track(link)
        return link

    # ------------------------------------------------------------------------- close

    def _live(self) -> Rest:
        if self._closed:
            raise Closed("client is closed")
        return self.rest

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            links = list(self._links)
        for link in links:
            link.close()
        self.rest.close()
