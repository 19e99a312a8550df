"""REST on the native asyncio macrometa transport: what only asyncio has, a cancelled call.

Every other REST scenario (retries, one deadline per call, bounded answers, errors that name
where and never a secret) runs on both client APIs in test_rest.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

import streamfw.aio
from tests.macrometa.conftest import KEY
from tests.macrometa.fake_http import FakeServer

pytestmark = pytest.mark.anyio


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    server = FakeServer()
    yield server
    server.close()


async def test_a_cancelled_admin_call_leaves_the_client_usable(fake: FakeServer) -> None:
    path = "/_fabric/_system/_api/streams"
    fake.answers[("GET", path)] = [(200, {"result": []})]
    url = f"macrometa+http://127.0.0.1:{fake.port}"
    async with streamfw.aio.connect(url, api_key=KEY, timeout=2.0) as client:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.streams(), 0)
        assert await client.streams() == []
