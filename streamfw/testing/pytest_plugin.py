"""The streamfw pytest plugin (entry point ``pytest11``), active once streamfw is installed.

Fixtures:

* ``streamfw_client``: a client on a fresh loopback broker, closed after the test;
* ``streamfw_harness``: a ``Harness`` per selected transport -- each test using it runs once per
  transport. Select with ``--streamfw-transports=NAME,...`` or the ini option
  ``streamfw_transports``; ``loopback`` by default. The names are those of the harnesses that
  plugins register through the ``streamfw_register_harnesses`` hook (``streamfw plugins`` and
  ``pytest --help`` list them); a plugin's harness may skip, saying what to set, when what it
  needs is not there.

Plugins may add fixtures of their own through this same ``pytest11`` group.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from streamfw.client import Client, connect
from streamfw.extras import Missing
from streamfw.plugins import installed
from streamfw.testing.harness import Harness, HarnessSpec


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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "streamfw_harness" in metafunc.fixturenames:
        metafunc.parametrize(
            "streamfw_harness", selected_transports(metafunc.config), indirect=True
        )


@pytest.fixture
def streamfw_harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    try:
        harness = harnesses()[request.param].factory()
    except Missing as exc:  # the one command that installs it, not a traceback
        hint = str(exc)
    else:
        hint = ""
    if hint:
        pytest.fail(hint, pytrace=False)
    try:
        yield harness
    finally:
        harness.close()


@pytest.fixture
def streamfw_client() -> Iterator[Client]:
    with connect(f"loopback://pytest-{uuid.uuid4().hex[:12]}") as client:
        yield client
