"""Fixtures for emulator tests (helpers live in helpers.py)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from streamfw_macrometa.emulator import Emulator

from tests.emulator.helpers import Api

_names = itertools.count()


@pytest.fixture
def name() -> str:
    """A stream/subscription name no other test uses."""
    return f"t{next(_names)}"


@pytest.fixture
def api(emulator: Emulator) -> Iterator[Api]:
    a = Api(emulator)
    yield a
    a.session.close()


@pytest.fixture
def topic(api: Api, name: str) -> str:
    """A fresh global stream on the session emulator; its topic name."""
    return api.create(name)
