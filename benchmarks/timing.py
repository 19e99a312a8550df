"""Interleaved timing: alternate candidate and baseline runs, keep every sample, take medians.

A 2-core machine shared with other work is noisy: a run of the candidate followed by a run
of the baseline sees roughly the same conditions, so the *ratio* of the two medians is far
steadier than either absolute figure. The order inside each round is rotated so that neither
side always goes first (warm caches, a CPU clocking up).
"""

from __future__ import annotations

import gc
import statistics
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any


def time_loop(fn: Callable[[], Any], number: int) -> float:
    """CPU seconds per call of ``fn``, over ``number`` back-to-back calls in this thread.

    CPU time rather than wall time: single-threaded work costs the same however often other
    processes on a busy machine preempt us, and preemption is most of the noise here.
    """
    gc.collect()
    start = time.thread_time()
    for _ in range(number):
        fn()
    return (time.thread_time() - start) / number


def interleave(runs: Mapping[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Call each run once per round, rotating the order; return every sample by name.

    Each run returns its own figure (seconds per operation, or a rate); the first call of
    each is a warm-up and is not kept.
    """
    names = list(runs)
    for name in names:
        runs[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            samples[name].append(runs[name]())
    return samples


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> float:
    """Half the inter-sample range relative to the median: a rough +/- figure."""
    mid = statistics.median(values)
    return (max(values) - min(values)) / 2 / mid if mid else 0.0


def run_threads(*bodies: Callable[[], None], join_timeout: float = 120.0) -> tuple[float, float]:
    """Run each body in its own thread; return (wall seconds, this process's CPU seconds).

    An exception in any body is re-raised here, in the caller, once all threads ended.
    """
    errors: list[BaseException] = []

    def guarded(fn: Callable[[], None]) -> Callable[[], None]:
        def body() -> None:
            try:
                fn()
            except BaseException as exc:  # re-raised in the calling thread below
                errors.append(exc)

        return body

    threads = [threading.Thread(target=guarded(b)) for b in bodies]
    start, cpu = time.perf_counter(), time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(join_timeout)
    elapsed, used = time.perf_counter() - start, time.process_time() - cpu
    if errors:
        raise errors[0]
    return elapsed, used
