import pytest

from streamfw.testing import Harness


@pytest.fixture
def harness(streamfw_harness: Harness) -> Harness:
    """The kit asks for ``harness``: streamfw's pytest plugin gives one per selected transport
    (``streamfw_transports`` in pyproject.toml: this plugin's own ``namespace`` harness)."""
    return streamfw_harness
