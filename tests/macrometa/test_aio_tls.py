"""TLS on the native asyncio macrometa link: a private CA through ca_bundle=, verified by
default, verify=False only with a warning (as test_tls.py checks for the threaded one)."""

from __future__ import annotations

from typing import Any

import pytest
from streamfw_macrometa import InsecureTLSWarning

import streamfw.aio
from streamfw.errors import ConnectFailed
from streamfw.testing.contract import unique
from tests.macrometa.conftest import KEY
from tests.macrometa.test_tls import ca, ca_file, tls_emu  # noqa: F401 (fixtures)

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
async def test_private_ca_end_to_end(tls_emu: Any, ca_file: str, host: str) -> None:  # noqa: F811
    url = f"macrometa+https://{host}:{tls_emu.port}"
    async with streamfw.aio.connect(url, api_key=KEY, ca_bundle=ca_file, timeout=5) as client:
        assert client.native
        s = client.stream(unique("aio-tls"))
        await s.create()
        async with s.consumer("c") as c, s.producer() as p:
            await p.send("over wss")
            msg = await c.receive(timeout=5)
            assert msg is not None and msg.value == "over wss"


async def test_unknown_ca_is_refused(tls_emu: Any) -> None:  # noqa: F811
    url = f"macrometa+https://localhost:{tls_emu.port}"
    with pytest.raises(ConnectFailed, match="TLS") as e:
        await streamfw.aio.connect(url, api_key=KEY, timeout=5, retries=1)
    assert KEY not in str(e.value)


async def test_verify_false_works_but_warns(tls_emu: Any) -> None:  # noqa: F811
    url = f"macrometa+https://localhost:{tls_emu.port}"
    with pytest.warns(InsecureTLSWarning):
        opening = streamfw.aio.connect(url, api_key=KEY, verify=False, timeout=5)
        client = await opening
    try:
        s = client.stream(unique("aio-insecure"))
        await s.create()
        async with s.consumer("c") as c, s.producer() as p:
            await p.send(1)
            msg = await c.receive(timeout=5)
            assert msg is not None and msg.value == 1
    finally:
        await client.close()
