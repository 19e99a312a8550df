"""The ack/exclusivity state machine, on every harness."""

import time

import pytest

from streamfw.testing import Harness
from streamfw.testing.harness import LoopbackHarness
from streamfw.testing.machine import BUDGET, run_subscription_machine

# Green runs end within the machine's own budget; the rest of this allowance is for
# hypothesis to shrink a real failure to its counterexample: the machine never cuts that
# short, and hypothesis itself stops shrinking after five minutes and reports what it has.
SHRINK_ROOM = 360.0


@pytest.mark.timeout(BUDGET + SHRINK_ROOM)
def test_subscription_invariants(harness: Harness) -> None:
    run_subscription_machine(harness, max_examples=getattr(harness, "examples", None))


def test_the_budget_bounds_a_run_that_asks_for_too_many_examples() -> None:
    harness = LoopbackHarness()
    try:
        start = time.monotonic()
        ran = run_subscription_machine(harness, max_examples=100_000, budget=2.0)
        took = time.monotonic() - start
    finally:
        harness.close()
    assert 3 <= ran < 100_000
    assert took < 2.0 + 10  # at most one batch past the budget (batches plan for 2x)
