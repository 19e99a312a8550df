"""The transport contract, run on every harness in tests/conftest.py (same code, no copies)."""

from streamfw.testing.contract import TransportContract


class TestContract(TransportContract):
    pass
