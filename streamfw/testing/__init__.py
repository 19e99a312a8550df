"""Test support for streamfw users and transport authors: harnesses, clocks, strategies."""

from streamfw.testing.harness import Harness, LoopbackHarness, ManualClock

__all__ = ["Harness", "LoopbackHarness", "ManualClock"]
