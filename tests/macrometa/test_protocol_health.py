"""``BadFrameRun``, ``Liveness`` and ``Reconnecting``: the time is passed in, so every rule is
checked exactly."""

from __future__ import annotations

from streamfw_macrometa.protocol import BadFrameRun, Liveness, Reconnecting, Silence


def test_a_run_of_unreadable_frames_gives_up_after_its_limit() -> None:
    run = BadFrameRun(limit=10)
    assert [run.unreadable(t) for t in (0, 5, 9.9)] == [False, False, False]
    assert run.unreadable(10) is True and run.count == 4


def test_a_readable_frame_or_a_long_pause_starts_a_new_run() -> None:
    run = BadFrameRun(limit=10)
    run.unreadable(0)
    run.readable()
    assert run.unreadable(10) is False  # the run started again at 10
    assert run.unreadable(25) is False  # more than 10 s since the last: a new run
    assert run.unreadable(35) is True


def test_silence_calls_for_a_ping_then_for_a_reconnect() -> None:
    live = Liveness(ping_interval=20, timeout=10, now=0)
    assert live.check(19) is None
    assert live.check(20) is Silence.PING
    assert live.check(25) is None  # pinged at 20: not again before 40
    assert live.check(30) is Silence.DEAD


def test_any_frame_or_a_new_connection_resets_the_clock() -> None:
    live = Liveness(ping_interval=20, timeout=10, now=0)
    live.heard(15)
    assert live.check(30) is None and live.check(35) is Silence.PING
    live.connected(100)
    assert live.check(119) is None and live.check(130) is Silence.DEAD


def test_a_reconnect_gives_up_at_its_deadline_the_last_try_at_the_limit() -> None:
    plan = Reconnecting(deadline=10, busy_deadline=60, now=100)
    assert plan.attempt(100, timeout=5) == 5
    assert plan.failed(105, busy=False, backoff=2) == 2
    assert plan.attempt(107, timeout=5) == 3  # no more than what is left
    assert plan.failed(108, busy=False, backoff=8) == 2  # cut: the last try at the limit
    assert plan.attempt(110, timeout=5) == 0.1  # a last try still gets a moment
    assert plan.failed(110, busy=False, backoff=1) is None
    assert plan.attempts == 3 and plan.span == 10


def test_a_server_still_holding_the_session_earns_the_longer_deadline_for_good() -> None:
    plan = Reconnecting(deadline=10, busy_deadline=60, now=0)
    plan.attempt(0, timeout=5)
    assert plan.failed(9, busy=True, backoff=1) == 1
    plan.attempt(10, timeout=5)
    assert plan.failed(30, busy=False, backoff=4) == 4  # a timeout says nothing new
    assert plan.span == 60 and plan.failed(60, busy=False, backoff=1) is None
