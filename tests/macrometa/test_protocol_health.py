"""``BadFrameRun`` and ``Liveness``: the time is passed in, so every rule is checked exactly.
(``Reconnecting``: test_protocol_reconnect.py.)"""

from __future__ import annotations

import math

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


def test_time_spent_reconnecting_is_no_quiet_spell() -> None:
    """Junk, then a reconnect that took longer than the limit, then junk: still one run (the
    server did not get better while we were away), given up at once."""
    run = BadFrameRun(limit=10)
    assert run.unreadable(0) is False
    run.connected(15)  # closing, backing off and connecting took 15 s
    assert run.unreadable(15.5) is True


def test_a_quiet_spell_counts_from_the_connect() -> None:
    run = BadFrameRun(limit=10)
    run.unreadable(0)
    run.connected(15)
    assert run.length(25) == 1 and run.left(25) == 0  # connected 10 s: not yet a quiet spell
    assert run.length(25.5) == 0 and run.left(25.5) == math.inf
    assert run.unreadable(25.5) is False  # a new run


def test_the_run_going_on_its_length_and_time_left() -> None:
    run = BadFrameRun(limit=10)
    assert run.length(0) == 0 and run.left(0) == math.inf
    run.unreadable(1)
    run.unreadable(4)
    assert run.length(4) == 2 and run.left(4) == 7
    assert run.left(12) == 0  # past the limit: the next unreadable frame gives up
    run.readable()
    assert run.length(5) == 0 and run.left(5) == math.inf and run.count == 2


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
