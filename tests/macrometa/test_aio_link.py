"""The native asyncio macrometa link over real sockets: what only the asyncio client shows.

Through the cutting proxy (``streamfw.testing.proxy``) in front of the module's emulator. The
scenarios both clients share run on each of them elsewhere: cuts, resends, redelivery, reader
resume and the typed give-up in test_faults.py, an OTP per connection in test_links.py, frames
in test_frames.py, TLS in test_tls.py, REST in test_rest.py.
"""

from __future__ import annotations

from typing import Any

import pytest

import streamfw.aio
from streamfw.errors import SubscriptionBusy
from streamfw.testing.contract import unique
from tests.macrometa.conftest import KEY
from tests.macrometa.proxy import Proxy

pytestmark = pytest.mark.anyio


def connect(proxy: Proxy, **options: Any) -> streamfw.aio.Opening[streamfw.aio.Client]:
    opts = {"api_key": KEY, "timeout": 5.0, "reconnect_deadline": 5.0, **options}
    return streamfw.aio.connect(f"macrometa+http://127.0.0.1:{proxy.port}", **opts)


async def test_the_link_is_native(proxy: Proxy) -> None:
    async with connect(proxy) as client:
        assert client.native


async def test_secrets_stay_out_of_reprs_and_errors(proxy: Proxy) -> None:
    """aiohttp's own errors quote the URL, OTP and all: a refused upgrade's error (the sync
    client's are checked in test_secrets.py) must carry none of them, nor chain to them."""
    async with connect(proxy, auth="otp") as client:
        s = client.stream(unique("aio-secret"))
        await s.create()
        async with s.consumer("sub"):
            with pytest.raises(SubscriptionBusy) as e:  # the upgrade is refused: 409
                await s.consumer("sub")
        chain: list[BaseException] = []
        error: BaseException | None = e.value
        while error is not None and len(chain) < 10:
            chain.append(error)
            error = error.__cause__ or error.__context__
        shown = " ".join([repr(client), *(f"{x!s} {x!r}" for x in chain)])
        assert "otp=" not in shown and "?" not in str(e.value) and KEY not in shown
