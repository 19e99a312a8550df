"""The streamfw pytest plugin (entry point ``pytest11``), active once streamfw is installed.

Fixtures:

* ``streamfw_client``: a client on a fresh loopback broker, closed after the test;
* ``streamfw_harness``: a ``Harness`` per selected transport and API -- each test using it runs
  once per transport, and once more per transport on the asyncio API. Select transports with
  ``--streamfw-transports=NAME,...`` or the ini option ``streamfw_transports`` (``loopback`` by
  default) and APIs with ``--streamfw-apis=sync,aio`` or the ini option ``streamfw_apis``
  (both by default). The names are those of the harnesses that plugins register through the
  ``streamfw_register_harnesses`` hook (``streamfw plugins`` and ``pytest --help`` list them);
  a plugin's harness may skip, saying what to set, when what it needs is not there. On the
  ``aio`` API (test ids ``NAME-aio``) the harness's clients are sync facades over
  ``streamfw.aio`` (``streamfw.testing.aio_facade``), so the same sync test code checks both;
* ``streamfw_aio_client``: an async fixture, a ``streamfw.aio.Client`` on a fresh loopback
  broker. Async tests and fixtures run under anyio's pytest plugin (``anyio`` ships it; mark
  the test ``@pytest.mark.anyio``); see docs/asyncio.md for why anyio.

Plugins may add fixtures of their own through this same ``pytest11`` group.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

import streamfw.aio
from streamfw.client import Client, connect
from streamfw.extras import Missing
from streamfw.plugins import installed
from streamfw.testing.aio_facade import AioHarness
from streamfw.testing.harness import Harness, HarnessSpec

APIS = ("sync", "aio")


def harnesses() -> dict[str, HarnessSpec]:
    """The harnesses the installed plugins register, by name."""
    return installed().harnesses()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("streamfw")
    group.addoption(
        "--streamfw-transports",
        metavar="NAMES",
        help="comma-separated harnesses for streamfw_harness"
        f" (installed: {', '.join(harnesses()) or 'none'})",
    )
    parser.addini(
        "streamfw_transports", "transports for streamfw_harness", type="args", default=["loopback"]
    )
    group.addoption(
        "--streamfw-apis",
        metavar="NAMES",
        help=f"comma-separated client APIs for streamfw_harness (of: {', '.join(APIS)})",
    )
    parser.addini("streamfw_apis", "APIs for streamfw_harness", type="args", default=list(APIS))


def selected_transports(config: pytest.Config) -> list[str]:
    option = config.getoption("--streamfw-transports")
    names = option.split(",") if option else config.getini("streamfw_transports")
    known = harnesses()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise pytest.UsageError(
            f"unknown streamfw transport(s) {', '.join(unknown)}; known: {', '.join(known)}"
        )
    return list(names)


def selected_apis(config: pytest.Config) -> list[str]:
    option = config.getoption("--streamfw-apis")
    names = option.split(",") if option else config.getini("streamfw_apis")
    unknown = [n for n in names if n not in APIS]
    if unknown:
        raise pytest.UsageError(f"unknown streamfw API(s) {', '.join(unknown)}; known: sync, aio")
    return list(names)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "streamfw_harness" in metafunc.fixturenames:
        params = [
            pytest.param((name, api), id=name if api == "sync" else f"{name}-aio")
            for api in selected_apis(metafunc.config)
            for name in selected_transports(metafunc.config)
        ]
        metafunc.parametrize("streamfw_harness", params, indirect=True)


@pytest.fixture
def streamfw_harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    name, api = request.param
    try:
        harness = harnesses()[name].factory()
    except Missing as exc:  # the one command that installs it, not a traceback
        hint = str(exc)
    else:
        hint = ""
    if hint:
        pytest.fail(hint, pytrace=False)
    if api == "aio":
        if not isinstance(getattr(harness, "url", None), str):
            harness.close()
            pytest.skip(f"{name}: the harness has no url (and options) to reach its broker with")
        harness = AioHarness(harness)
    try:
        yield harness
    finally:
        harness.close()


@pytest.fixture
def streamfw_client() -> Iterator[Client]:
    with connect(f"loopback://pytest-{uuid.uuid4().hex[:12]}") as client:
        yield client


@pytest.fixture
async def streamfw_aio_client() -> AsyncIterator[streamfw.aio.Client]:
    """A ``streamfw.aio.Client`` on a fresh loopback broker (run the test under anyio)."""
    async with streamfw.aio.connect(f"loopback://pytest-{uuid.uuid4().hex[:12]}") as client:
        yield client
