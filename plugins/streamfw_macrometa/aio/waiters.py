"""Tasks waiting for a condition on the event loop, woken when it may have changed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Waiters:
    """``wait_for(predicate, timeout)`` and ``wake()``: a cheap ``asyncio.Condition`` without
    a lock (everything runs on one loop); ``wake`` costs nothing when nobody waits."""

    def __init__(self) -> None:
        self._futures: list[asyncio.Future[None]] = []

    def wake(self) -> None:
        if self._futures:
            futures, self._futures = self._futures, []
            for future in futures:
                if not future.done():
                    future.set_result(None)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Wait until ``predicate()`` holds; False if ``timeout`` seconds passed first."""
        if predicate():
            return True
        loop = asyncio.get_running_loop()
        end = None if timeout is None else loop.time() + timeout
        while True:
            future = loop.create_future()
            self._futures.append(future)
            timer = None
            if end is not None:
                timer = loop.call_at(end, _resolve, future)
            try:
                await future
            finally:
                if timer is not None:
                    timer.cancel()
                if future in self._futures:
                    self._futures.remove(future)
            if predicate():
                return True
            if end is not None and loop.time() >= end:
                return False


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
