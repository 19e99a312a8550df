"""The ack/exclusivity state machine, on every harness."""

import time
import uuid
from collections.abc import Callable

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


def _cut_of(harness: Harness) -> Callable[[], None] | None:
    """The harness's ``cut``: an -aio harness has one exactly when its sync harness has."""
    inner = getattr(harness, "inner", harness)  # the sync harness behind an -aio one
    cut: Callable[[], None] | None = getattr(harness, "cut", None)
    assert callable(cut) == callable(getattr(inner, "cut", None))
    return cut


def test_a_cut_loses_nothing_on_either_api(harness: Harness) -> None:
    """The ``cut`` rule runs on the asyncio API wherever it runs on the sync one: a cut drops
    the clients' real connections, what the consumer held comes back to it once it has
    reconnected, and the producer sends on."""
    cut = _cut_of(harness)
    if cut is None:
        return  # in-process (loopback): no connection to cut
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


def test_a_consumer_closed_while_it_reconnects_leaves_its_subscription(harness: Harness) -> None:
    """Closing a consumer whose link is reconnecting after a cut ends its session on the
    server too, so an Exclusive subscription takes the next consumer at once. (The asyncio
    link kept a connect that ended just as ``close()`` came: the server kept that session
    and refused the next consumer as busy.)"""
    cut = _cut_of(harness)
    if cut is None:
        return  # in-process (loopback): no connection to cut
    with harness.client() as client:
        stream = client.stream(f"cut-{uuid.uuid4().hex[:8]}").create()
        # close() lands before the reconnect, during its connect, or after it
        for delay in [0.0, 0.0005, 0.001, 0.002, 0.004] * 8:
            consumer = stream.consumer("sub", type="exclusive")  # SubscriptionBusy if kept
            cut()
            time.sleep(delay)
            consumer.close()
        stream.consumer("sub", type="exclusive").close()
