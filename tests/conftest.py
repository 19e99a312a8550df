"""Shared fixtures. streamfw's own pytest plugin (streamfw.testing.pytest_plugin) provides the
transport selection: pyproject.toml selects loopback and macrometa (against the emulator)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from streamfw.testing import Harness

settings.register_profile("dev", max_examples=30, deadline=None)
settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def harness(streamfw_harness: Harness) -> Harness:
    """The kit's contract tests ask for ``harness``; ours is the plugin's, per transport."""
    return streamfw_harness


@pytest.fixture(scope="session")
def emulator(streamfw_emulator: Any) -> Any:
    return streamfw_emulator
