"""What every producer, consumer and reader shares, sync or asyncio: its link, codec pipeline,
stream and message hooks, whether it is closed, and the name it goes by in errors and reprs."""

from __future__ import annotations

from typing import ClassVar, Generic, TypeVar

from streamfw.api import StreamRef
from streamfw.codec import Pipeline
from streamfw.errors import Closed
from streamfw.plugins import MessageHooks

L = TypeVar("L")  # the link, sync or asyncio


class EndpointCore(Generic[L]):
    """The state and names common to ``ProducerCore`` and ``ConsumerCore``.

    A subclass says what it is in ``_what()`` (errors) and ``_describe()`` (its repr), and
    adds its own state in ``_setup``.
    """

    _KIND: ClassVar[str] = ""  # the repr's name of the class

    def __init__(self, link: L, stream: StreamRef, pipeline: Pipeline, hooks: MessageHooks) -> None:
        self._link = link
        self._pipeline = pipeline
        self.stream = stream
        self._closed = False
        self._hooks = hooks

    def _setup(self) -> None:
        """The subclass's own state, set once the shared state is."""

    @property
    def transport(self) -> str:
        """The URL scheme of the transport this one works over (``loopback``, ...)."""
        return self._hooks.transport

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<{self._KIND} {self._describe()} {state}>"

    def _check_open(self) -> None:
        if self._closed:
            raise Closed(f"{self._what()} is closed")

    def _what(self) -> str:
        raise NotImplementedError

    def _describe(self) -> str:
        return self._what()
