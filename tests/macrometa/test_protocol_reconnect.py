"""``Reconnecting`` and ``Backoff``: how long a reconnect waits and how long it may go on. The
time and the randomness are passed in, so every rule is checked exactly."""

from __future__ import annotations

from streamfw_macrometa.protocol import BadFrameRun
from streamfw_macrometa.protocol.reconnect import Backoff, Reconnecting


def full(initial: float, cap: float) -> Backoff:
    """A backoff whose jitter always picks the whole step."""
    return Backoff(initial, cap, rng=lambda: 1.0)


def plan_at(now: float, backoff: Backoff, bad: BadFrameRun | None = None) -> Reconnecting:
    return Reconnecting(
        deadline=10, busy_deadline=60, backoff=backoff, bad=bad or BadFrameRun(10), now=now
    )


def test_the_backoff_doubles_up_to_its_cap_with_jitter() -> None:
    assert [full(0.1, 2).delay(n) for n in (1, 2, 3, 4, 5, 6)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2]
    assert Backoff(0.1, 2, rng=lambda: 0.0).delay(1) == 0.05  # at least half the step
    assert full(0.1, 2).delay(10_000) == 2  # no overflow far past the cap
    assert full(0.1, 2).delay(0) == 0.1


def test_a_reconnect_gives_up_at_its_deadline_the_last_try_at_the_limit() -> None:
    plan = plan_at(100, full(2, 8))
    assert plan.first(100) == 0  # after a cut: at once
    assert plan.attempt(100, timeout=5) == 5
    assert plan.failed(105, busy=False) == 2
    assert plan.attempt(107, timeout=5) == 3  # no more than what is left
    assert plan.failed(108, busy=False) == 2  # 4, cut: the last try at the limit
    assert plan.attempt(110, timeout=5) == 0.1  # a last try still gets a moment
    assert plan.failed(110, busy=False) is None
    assert plan.attempts == 3 and plan.span == 10


def test_a_server_still_holding_the_session_earns_the_longer_deadline_for_good() -> None:
    plan = plan_at(0, full(1, 4))
    plan.attempt(0, timeout=5)
    assert plan.failed(9, busy=True) == 1
    plan.attempt(10, timeout=5)
    assert plan.failed(30, busy=False) == 2  # a timeout says nothing new
    assert plan.span == 60 and plan.failed(60, busy=False) is None


def test_after_bad_frames_the_first_attempt_waits_as_after_failed_ones() -> None:
    """Each reconnect of a run of bad frames counts as a failed attempt: the waits grow."""
    bad = BadFrameRun(10)
    for t in (0, 0.1, 0.3):
        bad.unreadable(t)
    plan = plan_at(0.3, full(0.1, 2), bad)
    assert plan.first(0.3) == 0.4  # the third of the run: 0.1, 0.2, 0.4
    plan.attempt(0.7, timeout=5)
    assert plan.failed(0.8, busy=False) == 0.8  # and on from there


def test_the_first_wait_is_cut_to_the_end_of_the_run() -> None:
    """The last try comes when the run would be given up, not a backoff later."""
    bad = BadFrameRun(10)
    bad.unreadable(0)
    for _ in range(9):
        bad.unreadable(9)
    assert plan_at(9, full(1, 8), bad).first(9) == 1


def test_a_cut_long_after_bad_frames_reconnects_at_once() -> None:
    bad = BadFrameRun(10)
    bad.unreadable(0)
    bad.connected(1)
    assert plan_at(5, full(1, 8), bad).first(5) == 1  # the run still goes on
    assert plan_at(12, full(1, 8), bad).first(12) == 0  # connected and quiet for 11 s
    bad.unreadable(12)
    bad.readable()
    assert plan_at(12, full(1, 8), bad).first(12) == 0  # a readable frame ended it
