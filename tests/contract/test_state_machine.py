"""The ack/exclusivity state machine, on every harness."""

from streamfw.testing import Harness
from streamfw.testing.machine import run_subscription_machine


def test_subscription_invariants(harness: Harness) -> None:
    run_subscription_machine(harness, max_examples=getattr(harness, "examples", None))
