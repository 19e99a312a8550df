"""The loopback host lock: a mutex that polls instead of sleeping owning itself."""

from __future__ import annotations

import threading
import time

from streamfw_loopback.transport import _HostLock


def test_excludes_and_reports_state() -> None:
    lock = _HostLock()
    assert lock.acquire()
    assert lock.locked()
    assert not lock.acquire(blocking=False)
    start = time.monotonic()
    assert not lock.acquire(timeout=0.05)
    assert time.monotonic() - start >= 0.05
    lock.release()
    assert not lock.locked()
    with lock:
        assert lock.locked()
    assert not lock.locked()


def test_threads_never_overlap() -> None:
    lock = _HostLock()
    inside = 0
    overlaps = 0
    total = 0

    def work() -> None:
        nonlocal inside, overlaps, total
        for _ in range(5000):
            with lock:
                inside += 1
                overlaps += inside != 1
                total += 1
                inside -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (overlaps, total) == (0, 20000)


def test_a_condition_on_it_wakes_a_waiter() -> None:
    lock = _HostLock()
    ready = threading.Condition(lock)  # type: ignore[arg-type]
    box: list[int] = []

    def consume() -> None:
        with lock:
            while not box:
                ready.wait(5.0)

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(0.05)
    with lock:
        box.append(1)
        ready.notify()
    t.join(5.0)
    assert not t.is_alive()
