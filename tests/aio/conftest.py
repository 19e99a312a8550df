"""Targets for the asyncio tests: each transport natively and through the thread adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import attrs
import pytest

import streamfw.aio
from streamfw.testing.harness import Harness
from streamfw.testing.pytest_plugin import harnesses

# (harness, threads): loopback and macrometa natively, and both through the thread adapter
TARGETS = [
    pytest.param(("loopback", False), id="loopback"),
    pytest.param(("loopback", True), id="loopback-threads"),
    pytest.param(("macrometa", False), id="macrometa"),
    pytest.param(("macrometa", True), id="macrometa-threads"),
]


@attrs.frozen
class Target:
    harness: Harness
    threads: bool

    def connect(self) -> streamfw.aio.Opening[streamfw.aio.Client]:
        options = getattr(self.harness, "options", {})
        return streamfw.aio.connect(
            getattr(self.harness, "url"),  # noqa: B009
            threads=self.threads,
            **options,
        )


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    name, threads = request.param
    harness = harnesses()[name].factory()
    try:
        yield Target(harness, threads)
    finally:
        harness.close()


@pytest.fixture
async def client(target: Target) -> AsyncIterator[streamfw.aio.Client]:
    async with target.connect() as client:
        assert client.native is not target.threads
        yield client
