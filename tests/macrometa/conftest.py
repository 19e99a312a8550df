"""Fixtures for the macrometa transport tests: emulators (plain and TLS), proxies, clients.

Everything listens on 127.0.0.1 only; every blocking call in these tests has a timeout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from streamfw.client import Client, connect
from tests.macrometa.proxy import Proxy

if TYPE_CHECKING:
    from tests.macrometa.apis import Api

KEY = "acme.example.S3cr3tK3yValue"  # distinctive, so tests can grep for leaks


@pytest.fixture(scope="module")
def emu() -> Iterator[Any]:
    """A plain-HTTP emulator for one test module, accepting ``KEY`` (tenant ``acme``)."""
    from streamfw_macrometa.emulator import Emulator

    with Emulator.start(host="127.0.0.1", port=0, api_keys=[KEY]) as e:
        yield e


@pytest.fixture
def url(emu: Any) -> str:
    return f"macrometa+http://127.0.0.1:{emu.port}"


@pytest.fixture
def make_client(url: str) -> Iterator[Callable[..., Client]]:
    """``make_client(**options)``: a client on the module emulator, closed at teardown."""
    clients: list[Client] = []

    def make(target: str | None = None, **options: Any) -> Client:
        opts = {"api_key": KEY, "timeout": 5.0, "reconnect_deadline": 5.0, **options}
        client = connect(target or url, **opts)
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def proxy(emu: Any) -> Iterator[Proxy]:
    p = Proxy(emu.port)
    yield p
    p.close()


@pytest.fixture(params=["threaded", "asyncio"])
def client_api(request: pytest.FixtureRequest) -> Iterator[Api]:
    """Each macrometa client API in turn (``tests.macrometa.apis.Api``); closes what it made."""
    from tests.macrometa.apis import Api  # it imports KEY from this module

    api = Api(request.param)
    yield api
    api.close()


@pytest.fixture
def make_api_client(client_api: Api, url: str) -> Callable[..., Client]:
    """``make_client`` of each client API in turn: a client on the module emulator."""

    def make(target: str | None = None, **options: Any) -> Client:
        opts = {"api_key": KEY, "timeout": 5.0, "reconnect_deadline": 5.0, **options}
        return client_api.connect(target or url, **opts)

    return make
