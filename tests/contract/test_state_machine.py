"""The ack/exclusivity state machine, on every harness."""

import time
import uuid

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


def test_a_cut_loses_nothing_on_either_api(harness: Harness) -> None:
    """The ``cut`` rule runs on the asyncio API wherever it runs on the sync one: a cut drops
    the clients' real connections, what the consumer held comes back to it once it has
    reconnected, and the producer sends on."""
    inner = getattr(harness, "inner", harness)  # the sync harness behind an -aio one
    cut = getattr(harness, "cut", None)
    if not callable(getattr(inner, "cut", None)):
        assert cut is None  # nothing to cut: in-process, as loopback
        return
    assert callable(cut)
    with harness.client() as client:
        stream = client.stream(f"cut-{uuid.uuid4().hex[:8]}").create()
        with stream.producer() as producer, stream.consumer("sub", type="exclusive") as consumer:
            producer.send("before")
            held = consumer.receive(timeout=5)
            assert held is not None and held.value == "before"
            cut()
            producer.send("after")  # confirmed: the producer reconnected and resent
            got = [consumer.receive(timeout=5) for _ in range(2)]
            assert sorted(m.value for m in got if m is not None) == ["after", "before"]
            for m in got:
                assert m is not None
                m.ack()
            held.ack()  # the old copy too, without error
            assert consumer.receive(timeout=harness.settle) is None
