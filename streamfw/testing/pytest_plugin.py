"""The streamfw pytest plugin (entry point ``pytest11``), active once streamfw is installed.

Fixtures:

* ``streamfw_client``: a client on a fresh loopback broker, closed after the test;
* ``streamfw_emulator``: one Macrometa emulator on 127.0.0.1 for the session (needs the
  ``emulator`` extra);
* ``streamfw_harness``: a ``Harness`` per selected transport -- each test using it runs once per
  transport. Select with ``--streamfw-transports=loopback,macrometa`` or the ini option
  ``streamfw_transports``; ``loopback`` by default. ``macrometa`` runs against a fresh emulator;
  ``gdn`` runs against a real GDN given ``STREAMFW_GDN_URL`` and ``MACROMETA_API_KEY`` (without
  them, those tests are skipped and the reason says what to set).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from streamfw.client import Client, connect
from streamfw.testing.harness import Harness, LoopbackHarness

GDN_URL_ENV = "STREAMFW_GDN_URL"
GDN_KEY_ENV = "MACROMETA_API_KEY"


class GdnHarness:
    """A real GDN account. Its clock cannot be moved: ``advance`` waits that long instead."""

    name = "gdn"
    settle = 2.0

    def __init__(self, url: str) -> None:
        self.url = url

    def client(self) -> Client:
        return connect(self.url)  # the key comes from MACROMETA_API_KEY

    def advance(self, seconds: float) -> None:
        time.sleep(seconds)

    def close(self) -> None:
        return None


def _macrometa() -> Harness:
    from streamfw_macrometa.testing import MacrometaHarness

    return MacrometaHarness()


def _gdn() -> Harness:
    url, key = os.environ.get(GDN_URL_ENV), os.environ.get(GDN_KEY_ENV)
    if not url or not key:
        pytest.skip(
            f"gdn: set {GDN_URL_ENV} (e.g. macrometa://play.paas.macrometa.io) and"
            f" {GDN_KEY_ENV} to run this against a real GDN"
        )
    return GdnHarness(url)


HARNESSES: dict[str, Callable[[], Harness]] = {
    "loopback": LoopbackHarness,
    "macrometa": _macrometa,
    "gdn": _gdn,
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("streamfw")
    group.addoption(
        "--streamfw-transports",
        metavar="NAMES",
        help=f"comma-separated transports for streamfw_harness ({', '.join(HARNESSES)})",
    )
    parser.addini(
        "streamfw_transports", "transports for streamfw_harness", type="args", default=["loopback"]
    )


def selected_transports(config: pytest.Config) -> list[str]:
    option = config.getoption("--streamfw-transports")
    names = option.split(",") if option else config.getini("streamfw_transports")
    unknown = [n for n in names if n not in HARNESSES]
    if unknown:
        raise pytest.UsageError(
            f"unknown streamfw transport(s) {', '.join(unknown)}; known: {', '.join(HARNESSES)}"
        )
    return list(names)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "streamfw_harness" in metafunc.fixturenames:
        metafunc.parametrize(
            "streamfw_harness", selected_transports(metafunc.config), indirect=True
        )


@pytest.fixture
def streamfw_harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    harness = HARNESSES[request.param]()
    try:
        yield harness
    finally:
        harness.close()


@pytest.fixture
def streamfw_client() -> Iterator[Client]:
    with connect(f"loopback://pytest-{uuid.uuid4().hex[:12]}") as client:
        yield client


@pytest.fixture(scope="session")
def streamfw_emulator() -> Iterator[Any]:
    from streamfw.emulator import Emulator

    with Emulator.start(host="127.0.0.1", port=0) as emulator:
        yield emulator
