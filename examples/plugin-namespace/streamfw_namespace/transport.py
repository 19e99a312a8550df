"""A Transport that delegates to another one, renaming streams ``name`` -> ``TEAM.name``."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import streamfw
from streamfw import ConfigError, StreamRef
from streamfw.api import (
    ConsumerLink,
    ConsumerOptions,
    ProducerLink,
    ProducerOptions,
    ReaderOptions,
    SubscriptionInfo,
    TransportConfig,
)


class NamespaceTransport:
    def __init__(self, team: str, inner: streamfw.Client) -> None:
        self._team = team
        self._inner = inner.transport
        self._client = inner

    @classmethod
    def from_config(cls, config: TransportConfig) -> NamespaceTransport:
        team = urlsplit(config.url).netloc
        options = dict(config.options)
        inner_url = options.pop("inner", None)
        if not team or not isinstance(inner_url, str):
            raise ConfigError("use namespace://TEAM with inner='<url of the shared broker>'")
        return cls(team, streamfw.connect(inner_url, **options.pop("inner_options", {})))

    def _ref(self, stream: StreamRef) -> StreamRef:
        return StreamRef(f"{self._team}.{stream.name}", stream.local)

    def create_stream(self, stream: StreamRef) -> None:
        self._inner.create_stream(self._ref(stream))

    def delete_stream(self, stream: StreamRef, *, force: bool) -> None:
        self._inner.delete_stream(self._ref(stream), force=force)

    def list_streams(self, *, local: bool | None) -> list[StreamRef]:
        prefix = self._team + "."
        return [
            StreamRef(ref.name.removeprefix(prefix), ref.local)
            for ref in self._inner.list_streams(local=local)
            if ref.name.startswith(prefix)
        ]

    def backlog(self, stream: StreamRef) -> int:
        return self._inner.backlog(self._ref(stream))

    def stats(self, stream: StreamRef) -> dict[str, Any]:
        return self._inner.stats(self._ref(stream))

    def subscriptions(self, stream: StreamRef) -> list[SubscriptionInfo]:
        return self._inner.subscriptions(self._ref(stream))

    def delete_subscription(self, stream: StreamRef, subscription: str) -> None:
        self._inner.delete_subscription(self._ref(stream), subscription)

    def clear_backlog(self, stream: StreamRef, subscription: str | None) -> None:
        self._inner.clear_backlog(self._ref(stream), subscription)

    def open_producer(self, stream: StreamRef, options: ProducerOptions) -> ProducerLink:
        return self._inner.open_producer(self._ref(stream), options)

    def open_consumer(
        self, stream: StreamRef, subscription: str, options: ConsumerOptions
    ) -> ConsumerLink:
        return self._inner.open_consumer(self._ref(stream), subscription, options)

    def open_reader(self, stream: StreamRef, options: ReaderOptions) -> ConsumerLink:
        return self._inner.open_reader(self._ref(stream), options)

    def close(self) -> None:
        self._client.close()
