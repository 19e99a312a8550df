"""Test support for streamfw users and transport authors: harnesses, clocks, strategies."""

from streamfw.testing.harness import Harness, HarnessSpec, LoopbackHarness, ManualClock

__all__ = ["Harness", "HarnessSpec", "LoopbackHarness", "ManualClock"]
