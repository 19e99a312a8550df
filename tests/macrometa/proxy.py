"""The cutting proxy, kept importable here for the tests; it lives in streamfw.testing.proxy."""

from streamfw.testing.proxy import Proxy

__all__ = ["Proxy"]
