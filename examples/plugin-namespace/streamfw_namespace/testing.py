"""``NamespaceHarness``: how streamfw's conformance kit reaches this transport.

Registered through the ``streamfw_register_harnesses`` hook, so any test suite with streamfw's
pytest plugin can run the kit on it: ``pytest --streamfw-transports=namespace``.
"""

import uuid

import streamfw
from streamfw.testing import ManualClock


class NamespaceHarness:
    """A fresh shared loopback broker on a manual clock, seen through namespace://team-a."""

    name = "namespace"
    settle = 0.02

    def __init__(self) -> None:
        self.clock = ManualClock()
        self.inner = f"loopback://ns-{uuid.uuid4().hex[:8]}"
        self._anchor = streamfw.connect(self.inner, clock=self.clock)

    def client(self) -> streamfw.Client:
        options = {"clock": self.clock}
        return streamfw.connect("namespace://team-a", inner=self.inner, inner_options=options)

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def close(self) -> None:
        self._anchor.close()
