"""``BadFrameRun`` and ``Liveness``: the time is passed in, so every rule is checked exactly."""

from __future__ import annotations

from streamfw_macrometa.protocol import BadFrameRun, Liveness, Silence


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
