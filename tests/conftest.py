"""Shared fixtures. ``harness`` runs a test once per transport (see streamfw.testing)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, settings

from streamfw.testing import Harness, LoopbackHarness

settings.register_profile("dev", max_examples=30, deadline=None)
settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

# Transport name -> harness factory. The macrometa entry (emulator-backed) is added in
# tests/macrometa_harness.py once that transport exists.
HARNESSES: dict[str, Callable[[pytest.FixtureRequest], Harness]] = {
    "loopback": lambda request: LoopbackHarness(),
    "macrometa": lambda request: __import__(
        "streamfw_macrometa.testing"
    ).testing.MacrometaHarness(),
}


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    h = HARNESSES[request.param](request)
    try:
        yield h
    finally:
        h.close()


@pytest.fixture(scope="session")
def emulator() -> Iterator[object]:
    """One emulator per test session on 127.0.0.1, a free port, plain HTTP/WS."""
    from streamfw.emulator import Emulator

    with Emulator.start(host="127.0.0.1", port=0) as emu:
        yield emu
